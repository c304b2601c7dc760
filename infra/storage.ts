import { COMMAND_OUTPUT_PREFIX } from "./permissions.js";

/**
 * How long commands' output is kept: as long as SSM keeps their history ("Command history is
 * kept for 30 days", docs.aws.amazon.com/systems-manager/latest/userguide/run-command.html).
 */
export const COMMAND_OUTPUT_DAYS = 30;

/**
 * The staging bucket: plugin archives on their way to instances and external agents, fetched
 * through presigned GETs (lib/compute/staging-bucket.ts). Archives are kept: a restarted
 * workspace's plugins are re-applied from them by the sweep, long after the install. They are
 * content-addressed (`plugins/<name>/<sha256>.tar.gz`), so the bucket holds each version of
 * each plugin once, however many workspaces install it. Commands' whole output, which the
 * instances upload under `commands/`, expires after {@link COMMAND_OUTPUT_DAYS} days — a rule
 * for that prefix only. SST blocks public access and denies plain-HTTP requests by default; no
 * browser reads it, so no CORS.
 */
export const stagingBucket = new sst.aws.Bucket("StagingBucket", {
  cors: false,
  lifecycle: [
    {
      id: "expire-command-output",
      prefix: COMMAND_OUTPUT_PREFIX,
      expiresIn: `${COMMAND_OUTPUT_DAYS} days`,
    },
  ],
});
