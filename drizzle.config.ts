import { defineConfig } from "drizzle-kit";

// Migrations are generated offline from the schema (`npm run db:generate`) and committed.
export default defineConfig({
  dialect: "postgresql",
  schema: "./lib/db/schema.ts",
  out: "./lib/db/migrations",
});
