/**
 * The staging bucket: plugin archives on their way to instances and external agents, fetched
 * through presigned GETs (lib/compute/staging-bucket.ts). Nothing deletes objects; the
 * lifecycle rule does, a day after they were written. SST blocks public access and denies
 * plain-HTTP requests by default; no browser reads it, so no CORS.
 */
export const stagingBucket = new sst.aws.Bucket("StagingBucket", {
  cors: false,
  lifecycle: [{ id: "expire-staged-plugins", expiresIn: "1 day" }],
});
