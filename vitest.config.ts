import { defineConfig } from "vitest/config";

// PGlite costs ~200 MiB per instance and never gives it back, so workers are capped and each
// test file opens one database. Suites under test/integration/db/ run twice: once over PGlite,
// once over real PostgreSQL 15 reached through the Neon driver (see test/support/postgres.ts).
const dbSuites = "test/integration/db/**/*.test.ts";

export default defineConfig({
  test: {
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    projects: [
      { extends: true, test: { name: "unit", include: ["test/unit/**/*.test.ts"] } },
      {
        extends: true,
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          exclude: [dbSuites],
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
          include: [dbSuites],
          env: { TEST_DB: "postgres" },
          globalSetup: ["test/support/postgres-global.ts"],
        },
      },
    ],
  },
});
