import { Logger } from "@aws-lambda-powertools/logger";
import type { Config } from "./config.js";
import type { Log } from "./deps.js";

/** Structured JSON logs (one object per line), as CloudWatch Logs Insights reads them. */
export function createLog(serviceName: string, level: Config["logLevel"]): Log {
  return new Logger({ serviceName, logLevel: level });
}
