import { execFile } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { build, type Metafile } from "esbuild";
import { LAMBDA_EXTERNALS, LAMBDA_SPLITTING, SST_ESM_BANNER } from "../../infra/bundling.js";
import lambdaPlugins from "../../infra/esbuild-plugins.mjs";

// The Lambda bundles as SST builds them (pkg/runtime/node/build.go in sst/sst 4.17: ESM, platform
// node, target esnext, keepNames, the createRequire banner, minified, `sharp` and `pg-native`
// plus our externals left out; with splitting, an `outdir` and `.mjs` chunks), and what they
// cost: size and the time to import one — most of a cold start's own work. Used by
// test/infra/bundle.test.ts and readable by the bench.

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export const LAMBDA_ENTRIES = {
  api: "functions/api.ts",
  sweep: "functions/sweep.ts",
  "ec2-events": "functions/ec2-events.ts",
} as const;
export type LambdaName = keyof typeof LAMBDA_ENTRIES;

/** Where the test leaves the last figures for the bench (git-ignored). */
export const BUNDLE_STATS_FILE = join(ROOT, ".data", "bench", "bundle-stats.json");

/** The settings a Lambda needs to start (lib/config.ts, lambda mode); the Pool connects lazily. */
export const LAMBDA_TEST_ENV = {
  ADMIN_TOKEN: "bundle-check-admin-token-0123456789",
  // A Neon host, so the Lambda's own driver is the one measured (SPEC §2; lib/db/client.ts picks
  // by host). Nothing resolves or connects it: the first query would.
  DATABASE_URL: "postgres://u:p@ep-bundle-check.us-east-1.aws.neon.tech/db",
  STAGING_BUCKET: "wcp-bundle-check",
  AWS_REGION: "us-east-1",
  DEPLOYMENT_ID: "bundle-check",
  PLATFORM_URL: "https://api.example.test",
};

export interface LambdaBundle {
  /** The entry file, the one Lambda imports. */
  file: string;
  /** Bytes a cold start loads: the entry and the chunks it imports statically. */
  bytes: number;
  /** Bytes shipped: every output file, lazily loaded chunks included. */
  totalBytes: number;
  /** Every output file, entry first. */
  files: string[];
  /** The output files a cold start loads ({@link bytes}), entry first. */
  initialFiles: string[];
  metafile: Metafile;
}

/**
 * The outputs a cold start evaluates: `entry` and, transitively, the chunks it imports with
 * static `import` statements; chunks reached only through `import()` wait for their first use.
 */
export function initialOutputs(metafile: Metafile, entry: string): string[] {
  const seen = new Set<string>();
  const visit = (out: string) => {
    if (seen.has(out)) return;
    seen.add(out);
    for (const i of metafile.outputs[out]?.imports ?? []) {
      if (i.kind === "import-statement" && !i.external) visit(i.path);
    }
  };
  visit(entry);
  return [...seen];
}

/**
 * Builds one function into its own directory under `outdir`, as SST does. `minify: false` keeps
 * esbuild's `// path` module markers and identifier names (the IAM test reads which SDK commands
 * each bundle sends, in every chunk).
 */
export async function buildLambdaBundle(
  name: LambdaName,
  outdir: string,
  opts: { minify?: boolean } = {},
): Promise<LambdaBundle> {
  return buildAsSst(join(ROOT, LAMBDA_ENTRIES[name]), join(outdir, name), opts);
}

/**
 * Builds `entry` (an absolute path) into `dir` with SST's settings for our functions; the
 * entry's output is `dir/<entry's base name>.mjs`.
 */
export async function buildAsSst(
  entry: string,
  dir: string,
  opts: { minify?: boolean } = {},
): Promise<LambdaBundle> {
  const minify = opts.minify ?? true;
  const name = basename(entry).replace(/\.[cm]?[jt]s$/, "");
  const result = await build({
    entryPoints: [entry],
    absWorkingDir: ROOT,
    platform: "node",
    format: "esm",
    target: "esnext",
    mainFields: ["module", "main"],
    external: ["sharp", "pg-native", ...LAMBDA_EXTERNALS],
    keepNames: true,
    bundle: true,
    metafile: true,
    minify,
    banner: { js: SST_ESM_BANNER },
    plugins: lambdaPlugins,
    ...(LAMBDA_SPLITTING
      ? { splitting: true, outdir: dir, outExtension: { ".js": ".mjs" } }
      : { outfile: join(dir, `${name}.mjs`) }),
    write: true,
    logLevel: "silent",
  });
  return describeOutputs(result.metafile, join(dir, `${name}.mjs`));
}

/** Sizes and files of a build whose entry output is `file` (an absolute path). */
export function describeOutputs(metafile: Metafile, file: string): LambdaBundle {
  const abs = (out: string) => join(ROOT, out);
  const outputs = Object.keys(metafile.outputs).filter((o) => !o.endsWith(".map"));
  const entry = outputs.find((o) => abs(o) === file);
  if (entry === undefined) throw new Error(`no output ${file} in the metafile`);
  const initial = initialOutputs(metafile, entry);
  const size = (outs: string[]) => outs.reduce((n, o) => n + statSync(abs(o)).size, 0);
  return {
    file,
    bytes: size(initial),
    totalBytes: size(outputs),
    files: [entry, ...outputs.filter((o) => o !== entry)].map(abs),
    initialFiles: initial.map(abs),
    metafile,
  };
}

export interface ImportResult {
  importMs: number;
  handlerType: string;
  /** With `trace`: every file Node loaded until the handler was ready, in load order. */
  loaded?: string[];
}

/**
 * Records each file URL Node's ESM loader loads (module.register load hook, run off the main
 * thread, https://nodejs.org/api/module.html#customization-hooks) into `log`.
 */
const loadTracer = (log: string) =>
  `data:text/javascript,${encodeURIComponent(
    [
      'import { appendFileSync } from "node:fs";',
      "export async function load(url, context, next) {",
      `  if (url.startsWith("file:")) appendFileSync(${JSON.stringify(log)}, url + "\\n");`,
      "  return next(url, context);",
      "}",
    ].join("\n"),
  )}`;

/**
 * Imports a bundle in a fresh Node process whose working directory holds no node_modules — as on
 * Lambda, where only the bundle exists — with `env` as the whole environment (plus PATH).
 * `trace` also lists the files the import loaded (the tracer slows it: time untraced runs).
 */
export async function importBundle(
  file: string,
  env: Record<string, string> = LAMBDA_TEST_ENV,
  opts: { trace?: boolean } = {},
): Promise<ImportResult> {
  const log = join(dirname(file), `.loaded-${process.pid}-${Date.now()}.txt`);
  const script = [
    ...(opts.trace
      ? ['import { register } from "node:module";', `register(${JSON.stringify(loadTracer(log))});`]
      : []),
    "const t0 = performance.now();",
    `const mod = await import(${JSON.stringify(pathToFileURL(file).href)});`,
    "const importMs = performance.now() - t0;",
    "console.log(JSON.stringify({ importMs, handlerType: typeof mod.handler }));",
    "process.exit(0);",
  ].join("\n");
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ["--input-type=module", "-e", script],
    {
      cwd: dirname(file),
      env: { PATH: process.env.PATH ?? "", ...env },
      timeout: 60_000,
    },
  );
  const lastLine = stdout.trim().split("\n").at(-1) ?? "";
  const result = JSON.parse(lastLine) as ImportResult;
  if (opts.trace) {
    const urls = readFileSync(log, "utf8").split("\n").filter(Boolean);
    rmSync(log, { force: true });
    result.loaded = [...new Set(urls)].map((u) => fileURLToPath(u));
  }
  return result;
}

export interface BundleFigures {
  /** Loaded by a cold start (entry and its static chunks). */
  bytes: number;
  /** Shipped (lazy chunks included). */
  totalBytes: number;
  importMs: number;
}

/** Writes figures where the bench reads them ({@link BUNDLE_STATS_FILE}). */
export function recordBundleStats(figures: Record<LambdaName, BundleFigures>): void {
  mkdirSync(dirname(BUNDLE_STATS_FILE), { recursive: true });
  writeFileSync(
    BUNDLE_STATS_FILE,
    `${JSON.stringify({ measuredAt: new Date().toISOString(), ...figures }, null, 2)}\n`,
  );
}
