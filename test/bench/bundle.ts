import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { build, type Metafile } from "esbuild";
import { LAMBDA_EXTERNALS, SST_ESM_BANNER } from "../../infra/bundling.js";

// The Lambda bundles as SST builds them (pkg/runtime/node/build.go in sst/sst 4.17: ESM, platform
// node, target esnext, keepNames, the createRequire banner, minified, `sharp` and `pg-native`
// plus our externals left out), and what they cost: size and the time to import one — most of a
// cold start's own work. Used by test/infra/bundle.test.ts and readable by the bench.

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
  DATABASE_URL: "postgres://u:p@127.0.0.1:1/db",
  STAGING_BUCKET: "wcp-bundle-check",
  AWS_REGION: "us-east-1",
  DEPLOYMENT_ID: "bundle-check",
  PLATFORM_URL: "https://api.example.test",
};

export interface LambdaBundle {
  file: string;
  bytes: number;
  metafile: Metafile;
}

/**
 * Builds one function into `outdir`. `minify: false` keeps esbuild's `// path` module markers and
 * identifier names (the IAM test reads which SDK commands each bundle sends).
 */
export async function buildLambdaBundle(
  name: LambdaName,
  outdir: string,
  opts: { minify?: boolean } = {},
): Promise<LambdaBundle> {
  const minify = opts.minify ?? true;
  const file = join(outdir, `${name}.mjs`);
  const result = await build({
    entryPoints: [join(ROOT, LAMBDA_ENTRIES[name])],
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
    outfile: file,
    write: true,
    logLevel: "silent",
  });
  return { file, bytes: statSync(file).size, metafile: result.metafile };
}

export interface ImportResult {
  importMs: number;
  handlerType: string;
}

/**
 * Imports a bundle in a fresh Node process whose working directory holds no node_modules — as on
 * Lambda, where only the bundle exists — with `env` as the whole environment (plus PATH).
 */
export async function importBundle(
  file: string,
  env: Record<string, string> = LAMBDA_TEST_ENV,
): Promise<ImportResult> {
  const script = [
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
  return JSON.parse(lastLine) as ImportResult;
}

export interface BundleFigures {
  bytes: number;
  importMs: number;
}

/**
 * Builds both functions the way SST deploys them (minified) into a temp dir outside the project
 * and imports each once. Import time is the median of `runs` fresh processes.
 */
export async function bundleStats(runs = 3): Promise<Record<LambdaName, BundleFigures>> {
  const dir = mkdtempSync(join(tmpdir(), "wcp-bundle-"));
  try {
    const figures = {} as Record<LambdaName, BundleFigures>;
    for (const name of Object.keys(LAMBDA_ENTRIES) as LambdaName[]) {
      const bundle = await buildLambdaBundle(name, dir);
      const times: number[] = [];
      for (let i = 0; i < runs; i++) times.push((await importBundle(bundle.file)).importMs);
      times.sort((a, b) => a - b);
      figures[name] = {
        bytes: bundle.bytes,
        importMs: Math.round(times[Math.floor(times.length / 2)] ?? Number.NaN),
      };
    }
    return figures;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Writes figures where the bench reads them ({@link BUNDLE_STATS_FILE}). */
export function recordBundleStats(figures: Record<LambdaName, BundleFigures>): void {
  mkdirSync(dirname(BUNDLE_STATS_FILE), { recursive: true });
  writeFileSync(
    BUNDLE_STATS_FILE,
    `${JSON.stringify({ measuredAt: new Date().toISOString(), ...figures }, null, 2)}\n`,
  );
}
