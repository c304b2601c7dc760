import { loadConfig } from "../lib/config.js";
import { openMigratedDb } from "../lib/db/start.js";
import { exitOnStartError } from "../lib/startup.js";

// `npm run db:migrate`: applies the committed migrations to DATABASE_URL (Neon or any PostgreSQL
// in deployments) once, before a deploy's new code serves; the local mode migrates at start-up
// instead. A database that cannot be reached or migrated ends it with one line (exit code 2).
const config = (() => {
  try {
    return loadConfig(process.env, "local");
  } catch (err) {
    return exitOnStartError(err);
  }
})();
const opened = await openMigratedDb(config.databaseUrl, { driver: config.databaseDriver }).catch(
  exitOnStartError,
);
console.log(`migrations applied (${opened.kind})`);
await opened.close();
