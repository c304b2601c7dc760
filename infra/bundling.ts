/**
 * How the Lambda functions are built and run — pure data, shared by infra/lambda.ts and the
 * bundle check (test/bench/bundle.ts), so the check builds what SST deploys.
 *
 * - Runtime `nodejs22.x`: Node 20 is deprecated on Lambda; the code is tested on Node 20 and uses
 *   nothing Node 22 removed.
 * - `arm64` (Graviton): about 20 % cheaper per GB-second than x86_64, and the bundle is plain
 *   JavaScript — no native module ships (PGlite, the only WebAssembly dependency, is left out).
 * - ESM, minified, built by SST's esbuild. For ESM SST's Node runtime prepends the `createRequire`
 *   banner that bundled CommonJS dependencies (ws, the Neon driver's) need; a `banner` of ours
 *   would declare `require` a second time. The AWS SDK is bundled rather than taken from the
 *   runtime: the SDK version we test is the one that runs, and tree-shaking keeps it small.
 * - PGlite never ships: `lib/db/client.ts` imports it — and drizzle's PGlite driver, which imports
 *   it statically — only for `file://` and `memory://` URLs, and a Lambda's DATABASE_URL is
 *   `postgres://`. Marked external they stay lazy `import()` calls that are never taken.
 *   (`nodejs.install` would instead copy the package into the function.)
 * - Code splitting (`nodejs.splitting`, https://sst.dev/docs/component/aws/function/#nodejs-splitting):
 *   a dynamic `import()` becomes its own chunk beside the entry file, loaded the first time it is
 *   taken, so what only some routes need (plugin staging's tar and YAML, the reference UI) and
 *   the database driver a URL does not pick cost a cold start nothing. SST then builds with
 *   esbuild's `outdir` and `.mjs` chunks (pkg/runtime/node/build.go); splitting needs the ESM
 *   format (https://esbuild.github.io/api/#splitting).
 */
export const LAMBDA_RUNTIME = "nodejs22.x";
export const LAMBDA_ARCHITECTURE = "arm64";

/**
 * The esbuild plugins SST builds with (`nodejs.plugins`, a path from the project root; the
 * list is infra/esbuild-plugins.mjs): zod's English locale only.
 */
export const LAMBDA_ESBUILD_PLUGINS = "infra/esbuild-plugins.mjs";

/** Dynamic imports become chunks loaded on demand (see above). */
export const LAMBDA_SPLITTING = true;

/** Imports left out of the Lambda bundles (see above). */
export const LAMBDA_EXTERNALS = [
  "@electric-sql/pglite",
  "@electric-sql/pglite/*",
  "drizzle-orm/pglite",
  "drizzle-orm/pglite/*",
];

/**
 * The banner SST 4.17's Node runtime puts before every ESM bundle (pkg/runtime/node/build.go in
 * sst/sst): CommonJS code inside an ES module gets `require`, `__filename` and `__dirname`.
 */
export const SST_ESM_BANNER = [
  "import { createRequire as topLevelCreateRequire } from 'module';",
  "const require = topLevelCreateRequire(import.meta.url);",
  `import { fileURLToPath as topLevelFileUrlToPath, URL as topLevelURL } from "url"`,
  "const __filename = topLevelFileUrlToPath(import.meta.url)",
  `const __dirname = topLevelFileUrlToPath(new topLevelURL(".", import.meta.url))`,
].join("\n");

/**
 * The reference UI's script, copied beside the API's bundle (SST `copyFiles`; `to` is relative to
 * the function's root, LAMBDA_TASK_ROOT at run time) rather than bundled: ~4 MB that only `/docs`
 * reads (lib/http/reference-ui.ts). functions/api.ts names the same `to`.
 */
export const REFERENCE_UI_COPY = {
  from: "node_modules/@scalar/api-reference/dist/browser/standalone.js",
  to: "reference-ui/standalone.js",
};
