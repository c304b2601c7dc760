import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { LAMBDA_EXTERNALS, SST_ESM_BANNER } from "../../infra/bundling.js";
import { bundleStats, importBundle } from "./bundle.js";
import { median } from "./support.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface ColdStartFigures {
  name: string;
  bytes: number;
  importMs: number;
}

/** Minified bundle size and import-to-ready time: the api and sweep bundles vs a bare Hono Lambda. */
export async function benchColdStart(runs = 5): Promise<ColdStartFigures[]> {
  const dir = mkdtempSync(join(tmpdir(), "wcp-cold-"));
  try {
    const file = join(dir, "bare.mjs");
    await build({
      entryPoints: [join(ROOT, "test/bench/bare-lambda.ts")],
      absWorkingDir: ROOT,
      platform: "node",
      format: "esm",
      target: "esnext",
      external: ["sharp", "pg-native", ...LAMBDA_EXTERNALS],
      keepNames: true,
      bundle: true,
      minify: true,
      banner: { js: SST_ESM_BANNER },
      outfile: file,
      logLevel: "silent",
    });
    const times: number[] = [];
    for (let i = 0; i < runs; i++) times.push((await importBundle(file, {})).importMs);
    const product = await bundleStats(runs);
    return [
      {
        name: "bare Hono Lambda (baseline)",
        bytes: statSync(file).size,
        importMs: Math.round(median(times)),
      },
      { name: "api (functions/api.ts)", ...product.api },
      { name: "sweep (functions/sweep.ts)", ...product.sweep },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
