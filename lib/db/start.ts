import { sql } from "drizzle-orm";
import { type OpenDbOptions, type OpenedDb, openDb } from "./client.js";

/**
 * The database could not be used at start-up: unreachable, refused the login, no such
 * database, or the migrations failed. The message is one line that names `DATABASE_URL`, shows
 * the URL without its password and says what failed; the driver's error is the `cause`.
 */
export class DatabaseStartError extends Error {
  override name = "DatabaseStartError";
}

/**
 * Opens `url`, proves it answers (`select 1`) and applies the migrations — what `npm start` and
 * `npm run db:migrate` do before anything else, so a wrong password or an unreachable host stops
 * them at once with a readable line instead of a stack from deep inside a driver.
 * @throws DatabaseStartError when the database cannot be reached or migrated (the pool is closed).
 */
export async function openMigratedDb(url: string, opts: OpenDbOptions = {}): Promise<OpenedDb> {
  const opened = await openDb(url, opts);
  let step = "cannot connect";
  try {
    await opened.db.execute(sql`select 1`);
    step = "migrations failed";
    await opened.migrate();
    return opened;
  } catch (err) {
    await opened.close().catch(() => {});
    throw new DatabaseStartError(
      `DATABASE_URL ${redactedUrl(url)} (${opened.kind}): ${step}: ${whatFailed(err, url)}`,
      { cause: err },
    );
  }
}

/** The URL as an operator recognises it, without the password. */
export function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    // Query parameters may carry credentials too (`?password=`, `?sslkey=`).
    if (u.password === "" && u.search === "") return url;
    u.password = "";
    u.search = "";
    return u.toString();
  } catch {
    return "(unparsable)";
  }
}

/** System errors a driver reports when the server is not there, in words. */
const SYSTEM_ERRORS: Record<
  string,
  (e: { hostname?: string; address?: string; port?: number }) => string
> = {
  ECONNREFUSED: (e) => `connection refused by ${e.address ?? "the host"}:${e.port ?? "?"}`,
  ENOTFOUND: (e) => `host ${e.hostname ?? "?"} not found`,
  EAI_AGAIN: (e) => `host ${e.hostname ?? "?"} could not be resolved (DNS lookup failed)`,
  ETIMEDOUT: () => "connection timed out",
  EHOSTUNREACH: () => "host unreachable",
  ENETUNREACH: () => "network unreachable",
  ECONNRESET: () => "connection reset by the server",
};

/**
 * The driver's own words for the failure, one line, without SQL (drizzle's wrapper quotes the
 * statement and its parameters) and without the password, should a driver ever echo it.
 */
function whatFailed(err: unknown, url: string): string {
  const chain: Record<string, unknown>[] = [];
  for (let e: unknown = err; e instanceof Error && chain.length < 8; e = e.cause) {
    chain.push(e as unknown as Record<string, unknown>);
  }
  // The innermost error that carries a code is the driver's (or the system's); else the last.
  const driver = chain.findLast((e) => typeof e.code === "string") ?? chain.at(-1);
  let text = "unknown error";
  if (driver) {
    const code = String(driver.code ?? "");
    const system = SYSTEM_ERRORS[code];
    if (system) text = `${system(driver as Parameters<typeof system>[0])} [${code}]`;
    else if (/^[0-9A-Z]{5}$/.test(code)) text = `${String(driver.message)} [SQLSTATE ${code}]`;
    else text = String(driver.message);
  }
  return scrub(text, url);
}

function scrub(text: string, url: string): string {
  let out = text.replace(/\s+/g, " ").trim().replaceAll(url, redactedUrl(url));
  try {
    const password = decodeURIComponent(new URL(url).password);
    if (password !== "") out = out.replaceAll(password, "***");
  } catch {}
  return out.slice(0, 300);
}
