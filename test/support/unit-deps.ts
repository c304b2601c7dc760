import { createAwsClients } from "../../lib/compute/clients.js";
import type { Db } from "../../lib/db/client.js";
import { type Deps, silentLog, systemClock } from "../../lib/deps.js";
import { testConfig } from "./context.js";

/**
 * Deps for unit tests that must not touch a database or AWS: any use of `db` throws, and the
 * AWS clients point at a closed port.
 */
export function unitDeps(overrides: Partial<Deps> = {}): Deps {
  const db = new Proxy({} as Db, {
    get(_target, prop) {
      throw new Error(`unit test touched the database (db.${String(prop)})`);
    },
  });
  return {
    db,
    aws: createAwsClients({
      region: "us-east-1",
      endpoint: "http://127.0.0.1:9",
      credentials: { accessKeyId: "test", secretAccessKey: "test" },
      maxAttempts: 1,
    }),
    clock: systemClock,
    log: silentLog,
    config: testConfig(),
    ...overrides,
  };
}
