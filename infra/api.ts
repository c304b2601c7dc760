import { REFERENCE_UI_COPY } from "./bundling.js";
import { lambdaDefaults, lambdaEnvironment, permissionTargets } from "./lambda.js";
import { API_ACTIONS, statementsFor } from "./permissions.js";

/**
 * Stage-wide throttling (HTTP API default route settings): a token bucket in front of the
 * function so a runaway client cannot exhaust Lambda concurrency or the database's connections.
 */
export const API_THROTTLE = { burstLimit: 100, rateLimit: 50 } as const;

/**
 * The HTTP API: one `$default` route to the Hono app (functions/api.ts), which does its own
 * routing, auth and OpenAPI. No CORS: callers are servers and tools, not browsers.
 */
export const api = new sst.aws.ApiGatewayV2("Api", {
  cors: false,
  transform: {
    stage: {
      defaultRouteSettings: {
        throttlingBurstLimit: API_THROTTLE.burstLimit,
        throttlingRateLimit: API_THROTTLE.rateLimit,
      },
    },
  },
});

api.route("$default", {
  ...lambdaDefaults,
  handler: "functions/api.handler",
  // API Gateway gives up on the integration after 30 s; a longer run would only be wasted.
  // Installs answer 202 after INSTALL_SYNC_WAIT_SECONDS (at most 25) and the sweep finishes them.
  timeout: "29 seconds",
  // Plugin staging packs archives in memory; Lambda CPU grows with memory.
  memory: "1024 MB",
  environment: lambdaEnvironment(api.url),
  copyFiles: [REFERENCE_UI_COPY],
  permissions: statementsFor(API_ACTIONS, permissionTargets),
});
