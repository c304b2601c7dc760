import { Logger } from "@aws-lambda-powertools/logger";
import type { Config } from "./config.js";
import type { Log } from "./deps.js";
import { redactFields, redactText } from "./redact.js";

/**
 * Structured JSON logs (one object per line), as CloudWatch Logs Insights reads them. Every line
 * goes through {@link redactingLog}, so whatever a caller hands over (a raw driver error, an
 * error's text) reaches the log without secrets.
 */
export function createLog(serviceName: string, level: Config["logLevel"]): Log {
  return redactingLog(new Logger({ serviceName, logLevel: level }));
}

/**
 * `inner` with every message and field redacted first (`redactFields`): errors become their safe
 * description — the Powertools logger would otherwise print an error's message, stack and every
 * own property, a failed query's parameters among them.
 */
export function redactingLog(inner: Log): Log {
  const wrap =
    (level: keyof Log) =>
    (message: string, ...extra: Record<string, unknown>[]) =>
      inner[level](
        redactText(message),
        ...extra.map((e) => redactFields(e) as Record<string, unknown>),
      );
  return { debug: wrap("debug"), info: wrap("info"), warn: wrap("warn"), error: wrap("error") };
}
