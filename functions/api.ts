import { join } from "node:path";
import { handle } from "hono/aws-lambda";
import { createAwsClients } from "../lib/compute/clients.js";
import { loadConfig } from "../lib/config.js";
import { openDb, STATEMENT_TIMEOUT_MS } from "../lib/db/client.js";
import { systemClock } from "../lib/deps.js";
import { createApp } from "../lib/http/app.js";
import { createLog } from "../lib/log.js";

// Built once per container and reused across warm invocations (a new Neon connection costs far
// more than a query).
const config = loadConfig(process.env, "lambda");
const log = createLog("api", config.logLevel);
const { db } = await openDb(config.databaseUrl, {
  driver: config.databaseDriver,
  statementTimeoutMs: STATEMENT_TIMEOUT_MS,
  onPoolError: (err) => log.warn("database connection dropped", { error: err.message }),
});
const aws = createAwsClients({ region: config.awsRegion, log });

// The reference UI's script, copied into the package beside the bundle (infra/api.ts copyFiles);
// LAMBDA_TASK_ROOT is where the package is unpacked
// (docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime).
const referenceUi = {
  file: join(process.env.LAMBDA_TASK_ROOT ?? ".", "reference-ui/standalone.js"),
};

export const handler = handle(
  createApp({ db, aws, clock: systemClock, log, config }, { referenceUi }),
);
