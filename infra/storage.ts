/**
 * The staging bucket: plugin archives on their way to instances and external agents, fetched
 * through presigned GETs (lib/compute/staging-bucket.ts). Archives are kept: a restarted
 * workspace's plugins are re-applied from them by the sweep, long after the install. They are
 * content-addressed (`plugins/<name>/<sha256>.tar.gz`), so the bucket holds each version of
 * each plugin once, however many workspaces install it. SST blocks public access and denies
 * plain-HTTP requests by default; no browser reads it, so no CORS.
 */
export const stagingBucket = new sst.aws.Bucket("StagingBucket", {
  cors: false,
});
