import { sql } from "drizzle-orm";
import type { Db } from "../db/client.js";
import { rowsOf } from "../workspaces/transition.js";

/**
 * Takes the named lease for `ttlSeconds` if it is free, expired, or already ours. EventBridge may
 * invoke a schedule more than once and runs can overlap; the lease makes each pass run once at a
 * time. A row with a conditional upsert behaves the same on PostgreSQL and PGlite (advisory locks
 * and SKIP LOCKED do not contend on PGlite's single session).
 */
export async function acquireLease(
  db: Db,
  name: string,
  holder: string,
  ttlSeconds: number,
): Promise<boolean> {
  const result = await db.execute(sql`
    insert into sweep_leases (name, holder, expires_at)
    values (${name}, ${holder}, now() + make_interval(secs => ${ttlSeconds}))
    on conflict (name) do update
      set holder = excluded.holder, expires_at = excluded.expires_at
      where sweep_leases.expires_at < now() or sweep_leases.holder = excluded.holder
    returning holder`);
  return rowsOf(result).length === 1;
}

/** Gives the lease back early so the next run need not wait for it to expire. */
export async function releaseLease(db: Db, name: string, holder: string): Promise<void> {
  await db.execute(sql`delete from sweep_leases where name = ${name} and holder = ${holder}`);
}

/**
 * Extends a lease we hold by `ttlSeconds` from now. False when it is no longer ours (it expired
 * and another run took it): the pass must stop taking work.
 */
export async function renewLease(
  db: Db,
  name: string,
  holder: string,
  ttlSeconds: number,
): Promise<boolean> {
  const result = await db.execute(sql`
    update sweep_leases set expires_at = now() + make_interval(secs => ${ttlSeconds})
    where name = ${name} and holder = ${holder}
    returning holder`);
  return rowsOf(result).length === 1;
}
