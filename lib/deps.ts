import type { AwsClients } from "./compute/clients.js";
import type { Config } from "./config.js";
import type { Db } from "./db/client.js";
import type { Deadline } from "./deadline.js";

/** Structured logging; the Powertools `Logger` satisfies it, tests pass a quiet one. */
export interface Log {
  debug(message: string, ...extra: Record<string, unknown>[]): void;
  info(message: string, ...extra: Record<string, unknown>[]): void;
  warn(message: string, ...extra: Record<string, unknown>[]): void;
  error(message: string, ...extra: Record<string, unknown>[]): void;
}

export interface Clock {
  now(): Date;
}

/**
 * Everything a verb may touch, built once per Lambda container (or per `npm start`) in
 * `functions/` and passed down. `lib/` holds no singletons.
 */
export interface Deps {
  db: Db;
  aws: AwsClients;
  clock: Clock;
  log: Log;
  config: Config;
  /**
   * When the current unit of work (a request, a sweep run) must be done; every AWS call and wait
   * takes at most what remains. Set per request / per run, never at build time.
   */
  deadline?: Deadline;
}

export const systemClock: Clock = { now: () => new Date() };

export const silentLog: Log = { debug() {}, info() {}, warn() {}, error() {} };
