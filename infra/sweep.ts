import { api } from "./api.js";
import { lambdaDefaults, lambdaEnvironment, permissionTargets } from "./lambda.js";
import { SWEEP_ACTIONS, statementsFor } from "./permissions.js";

/** The schedule period; the function's timeout stays below it so runs never overlap by design. */
export const SWEEP_SCHEDULE = "rate(1 minute)";

/**
 * The sweep (functions/sweep.ts) every minute through EventBridge Scheduler. Every pass is safe
 * to run twice (Scheduler may deliver twice); reserved concurrency 1 keeps a slow run and the
 * next from racing anyway, and the runs stop taking batches 10 s before the timeout.
 */
export const sweep = new sst.aws.CronV2("Sweep", {
  schedule: SWEEP_SCHEDULE,
  // A missed minute is covered by the next one; Scheduler retries would only pile up.
  retries: 0,
  function: {
    ...lambdaDefaults,
    handler: "functions/sweep.handler",
    timeout: "50 seconds",
    memory: "512 MB",
    concurrency: { reserved: 1 },
    // Scheduler invokes asynchronously: an invocation throttled by the reservation would wait
    // in Lambda's queue for up to 6 h. Drop it after a minute instead; the next one is due.
    retries: 0,
    transform: {
      ...lambdaDefaults.transform,
      eventInvokeConfig: { maximumEventAgeInSeconds: 60 },
    },
    // The sweep hands PLATFORM_URL to re-driven launches, which must send the same user data
    // as the API's first attempt under the same ClientToken.
    environment: lambdaEnvironment(api.url),
    permissions: statementsFor(SWEEP_ACTIONS, permissionTargets),
  },
});
