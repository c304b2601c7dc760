import { loadConfig } from "../lib/config.js";
import { exitOnDatabaseStartError, openMigratedDb } from "../lib/db/start.js";

// `npm run db:migrate`: applies the committed migrations to DATABASE_URL (Neon or any PostgreSQL
// in deployments) once, before a deploy's new code serves; the local mode migrates at start-up
// instead. A database that cannot be reached or migrated ends it with one line (exit code 2).
const config = loadConfig(process.env, "local");
const opened = await openMigratedDb(config.databaseUrl, { driver: config.databaseDriver }).catch(
  exitOnDatabaseStartError,
);
console.log(`migrations applied (${opened.kind})`);
await opened.close();
