import { randomBytes } from "node:crypto";
import pg from "pg";

/**
 * Creates a fresh, uniquely named database owned by the URL's role and returns its URL, so each
 * test file gets its own database and files running in parallel never see each other's rows.
 *
 * Connects with node-postgres directly (no relay needed), whichever driver the test then uses.
 * The database lives until the server stops; the server's temp dir is deleted then.
 */
export async function createTestDatabase(adminUrl: string): Promise<string> {
  // Lowercase hex only: a valid unquoted identifier, and safe to splice into the statement.
  const name = `t_${randomBytes(8).toString("hex")}`;
  const client = new pg.Client({ connectionString: adminUrl });
  // Without a listener, a connection error outside a query would crash the test process.
  client.on("error", () => {});
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
