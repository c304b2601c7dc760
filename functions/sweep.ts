import type { Context } from "aws-lambda";
import { createAwsClients } from "../lib/compute/clients.js";
import { loadConfig } from "../lib/config.js";
import { openDb, STATEMENT_TIMEOUT_MS } from "../lib/db/client.js";
import { systemClock } from "../lib/deps.js";
import { createLog } from "../lib/log.js";
import { emfSweepMetrics } from "../lib/sweep/metrics.js";
import { runSweep } from "../lib/sweep/run.js";

// The scheduled sweep (every minute). Built once per container; each invocation is one run.
const config = loadConfig(process.env, "lambda");
const log = createLog("sweep", config.logLevel);
const { db } = await openDb(config.databaseUrl, {
  driver: config.databaseDriver,
  statementTimeoutMs: STATEMENT_TIMEOUT_MS,
  onPoolError: (err) => log.warn("database connection dropped", { error: err.message }),
});
const aws = createAwsClients({ region: config.awsRegion, log });
const metrics = emfSweepMetrics("WorkspaceControlPlane", config.deploymentId);
const deps = { db, aws, clock: systemClock, log, config };

// Finish well inside the function timeout: stop taking batches 10 s before it.
const MARGIN_MS = 10_000;

export const handler = async (_event: unknown, context: Context) => {
  const summary = await runSweep(deps, {
    budget: { remainingMs: () => context.getRemainingTimeInMillis() - MARGIN_MS },
    metrics,
    runId: context.awsRequestId,
  });
  return { degraded: summary.degraded, durationMs: summary.durationMs };
};
