import type { Log } from "../deps.js";
import { awsErrorCode, awsFailureOutcome } from "./errors.js";

/** What the middleware sees of a call: the SDK's handler context and the answer's metadata. */
interface CallContext {
  clientName?: string;
  commandName?: string;
}
type Metadata = { $metadata?: { httpStatusCode?: number; attempts?: number } };
type Handler = (args: unknown) => Promise<{ output: unknown }>;

/** The part of an SDK v3 client this needs: its middleware stack. */
export interface WithMiddleware {
  middlewareStack: {
    add(
      middleware: (next: Handler, context: CallContext) => Handler,
      options: { step: "initialize"; name: string; override?: boolean },
    ): void;
  };
}

/**
 * Logs one DEBUG line per AWS call of `client`, after its retries: the service, the operation,
 * its outcome class (ok, transient, refused, rejected, unknown — `AwsOutcome`), the HTTP status
 * and error code when there is one, the attempts and the time taken. Never the call's input or
 * output: RunInstances' user data and SendCommand's script hold secrets.
 *
 * It sits at the `initialize` step, outside the retry middleware, so a call throttled twice and
 * then served is one `ok` line with `attempts: 3`.
 */
export function logAwsCalls(client: WithMiddleware, log: Log): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const started = performance.now();
      const call = {
        awsService: context.clientName?.replace(/Client$/, ""),
        operation: context.commandName,
      };
      try {
        const result = await next(args);
        const meta = (result.output as Metadata | undefined)?.$metadata;
        log.debug("aws call", {
          ...call,
          outcome: "ok",
          httpStatus: meta?.httpStatusCode,
          attempts: meta?.attempts,
          ms: Math.round(performance.now() - started),
        });
        return result;
      } catch (err) {
        const meta = (err as Metadata | undefined)?.$metadata;
        log.debug("aws call", {
          ...call,
          outcome: awsFailureOutcome(err),
          code: awsErrorCode(err),
          httpStatus: meta?.httpStatusCode,
          attempts: meta?.attempts,
          ms: Math.round(performance.now() - started),
        });
        throw err;
      }
    },
    { step: "initialize", name: "wcpCallOutcomeLog", override: true },
  );
}
