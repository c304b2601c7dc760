import { loadConfig } from "../lib/config.js";
import { openDb } from "../lib/db/client.js";

// `npm run db:migrate`: applies the committed migrations to DATABASE_URL (Neon in deployments)
// once, before a deploy's new code serves; the local mode migrates at start-up instead.
const config = loadConfig(process.env, "local");
const opened = await openDb(config.databaseUrl);
try {
  await opened.migrate();
  console.log(`migrations applied (${opened.kind})`);
} finally {
  await opened.close();
}
