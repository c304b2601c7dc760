import type { TestProject } from "vitest/node";
import { startPostgres } from "./postgres.js";
import { startWsRelay } from "./ws-relay.js";

/**
 * vitest globalSetup for the `db:postgres` and `db:neon` projects: one PostgreSQL server and one
 * relay for the project's run (start-up is the expensive part); each test file then calls
 * `createTestDatabase(inject("pgUrl"))` for isolation, and over Neon
 * `useNeonRelay(inject("pgRelayPort"))` (openTestDb in context.ts does both).
 */
declare module "vitest" {
  export interface ProvidedContext {
    /** Admin URL (role `wcp`, may CREATE DATABASE) of the run's PostgreSQL 15 server. */
    pgUrl: string;
    /** Port of the WebSocket→TCP relay on 127.0.0.1, for useNeonRelay(). */
    pgRelayPort: number;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startPostgres();
  let relay: Awaited<ReturnType<typeof startWsRelay>>;
  try {
    relay = await startWsRelay();
  } catch (error) {
    await server.stop();
    throw error;
  }
  project.provide("pgUrl", server.url);
  project.provide("pgRelayPort", relay.port);
  return async () => {
    // Relay first, so no client is mid-query when the server goes away.
    await relay.close();
    await server.stop();
  };
}
