/**
 * The two secrets, set per stage with `npx sst secret set DatabaseUrl …` / `AdminToken …`.
 *
 * How the code reads them: `lib/config.ts` parses plain environment variables, so the functions
 * receive the values as `DATABASE_URL` / `ADMIN_TOKEN` through `environment` (see
 * infra/lambda.ts). Linking and reading `Resource.DatabaseUrl` would put `sst` imports into the
 * runtime code for no gain: a linked value is as readable to whoever can read the function's
 * configuration (its decryption key travels in the same environment). Lambda encrypts the
 * environment at rest.
 */
export const databaseUrl = new sst.Secret("DatabaseUrl");
export const adminToken = new sst.Secret("AdminToken");
