import { defineConfig } from "vitest/config";

// PGlite costs ~200 MiB per instance and never gives it back, so workers are capped and each
// test file opens one database. Suites under test/integration/db/ run twice: once over PGlite,
// once over real PostgreSQL 15 through node-postgres (a plain postgres:// URL, as RDS, Aurora or
// a local server is reached; see test/support/postgres.ts).
const dbSuites = "test/integration/db/**/*.test.ts";
// Suites about the real server only (killed connections, the driver's pool, concurrent writers).
const postgresSuites = "test/integration/postgres/**/*.test.ts";
// The Neon driver's path (WebSocket Pool through the relay in test/support/ws-relay.ts): the
// suites about the driver and one full db suite, which is what differs between the drivers;
// every db suite again over the relay would add time and find nothing new.
const neonSuites = [postgresSuites, "test/integration/db/workspaces.test.ts"];
// The model-based test is about the product's behaviour under concurrency, not about a driver:
// once, on node-postgres.
const modelSuite = "test/integration/postgres/model.test.ts";

export default defineConfig({
  test: {
    maxWorkers: 2,
    testTimeout: 30_000,
    // The tests run on Node 20 on purpose (the oldest runtime we support).
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" },
    hookTimeout: 60_000,
    projects: [
      { extends: true, test: { name: "unit", include: ["test/unit/**/*.test.ts"] } },
      { extends: true, test: { name: "infra", include: ["test/infra/**/*.test.ts"] } },
      {
        extends: true,
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          exclude: [dbSuites, postgresSuites],
        },
      },
      {
        extends: true,
        test: { name: "db:pglite", include: [dbSuites], env: { TEST_DB: "pglite" } },
      },
      {
        extends: true,
        test: {
          name: "db:postgres",
          include: [dbSuites, postgresSuites],
          env: { TEST_DB: "postgres" },
          globalSetup: ["test/support/postgres-global.ts"],
        },
      },
      {
        extends: true,
        test: {
          name: "db:neon",
          include: neonSuites,
          exclude: [modelSuite],
          env: { TEST_DB: "neon" },
          globalSetup: ["test/support/postgres-global.ts"],
        },
      },
    ],
  },
});
