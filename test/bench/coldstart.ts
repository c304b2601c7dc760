import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import {
  buildAsSst,
  buildLambdaBundle,
  importBundle,
  LAMBDA_TEST_ENV,
  type LambdaBundle,
  type LambdaName,
} from "./bundle.js";
import { buildFloorBundle, floorSpec } from "./floor.js";
import { median } from "./support.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface ColdStartFigures {
  name: string;
  /** Bytes of the files Node loaded until the handler was ready. */
  bytes: number;
  /** Bytes shipped (every chunk). */
  totalBytes: number;
  /** Median import-to-ready time. */
  importMs: number;
}

export interface FunctionColdStart {
  fn: LambdaName;
  real: ColdStartFigures;
  floor: ColdStartFigures;
  /** What the real cold start loads beyond its floor: package (or lib folder) → bytes, largest first. */
  beyondFloor: Array<{ module: string; bytes: number }>;
  /** SDK commands the function sends (the floor carries exactly these). */
  actions: string[];
}

export interface ColdStartReport {
  bare: ColdStartFigures;
  functions: FunctionColdStart[];
}

interface Measured {
  name: string;
  bundle: LambdaBundle;
  env: Record<string, string>;
  loaded: string[];
  times: number[];
}

/** A module's package (`@aws-sdk/client-ec2`), or its folder for our own code (`lib/http`). */
const moduleGroup = (path: string) => {
  const pkg = path.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/);
  return pkg ? (pkg[1] ?? path) : path.split("/").slice(0, 2).join("/");
};

/** Bytes in the loaded outputs of `m`, by module group (from the metafile). */
function groupBytes(m: Measured): Map<string, number> {
  const loaded = new Set(m.loaded.map((f) => relative(ROOT, f)));
  const bytes = new Map<string, number>();
  for (const [out, o] of Object.entries(m.bundle.metafile.outputs)) {
    if (!loaded.has(out)) continue;
    for (const [input, i] of Object.entries(o.inputs)) {
      const g = moduleGroup(input);
      bytes.set(g, (bytes.get(g) ?? 0) + i.bytesInOutput);
    }
  }
  return bytes;
}

/**
 * Each function against its floor (test/bench/floor.ts) and the bare Hono Lambda, built as SST
 * builds them, in one run. Bytes are what a cold start loads (traced once per bundle); import
 * time is the median of `runs` fresh processes, the bundles taken in turn each round so the
 * machine's noise falls on all of them alike.
 */
export async function benchColdStart(
  runs = 5,
  progress: (msg: string) => void = () => {},
): Promise<ColdStartReport> {
  const dir = mkdtempSync(join(tmpdir(), "wcp-cold-"));
  try {
    progress("building the bare Hono Lambda, the api, the sweep and their floors");
    const specs = {
      api: await floorSpec("api", join(dir, "unminified")),
      sweep: await floorSpec("sweep", join(dir, "unminified")),
    };
    const measured: Measured[] = [];
    const add = (name: string, bundle: LambdaBundle, env: Record<string, string>) =>
      measured.push({ name, bundle, env, loaded: [], times: [] });
    add("bare", await buildAsSst(join(ROOT, "test/bench/bare-lambda.ts"), join(dir, "bare")), {});
    for (const fn of ["api", "sweep"] as const) {
      add(fn, await buildLambdaBundle(fn, dir), LAMBDA_TEST_ENV);
      add(`${fn}-floor`, await buildFloorBundle(fn, specs[fn], dir), LAMBDA_TEST_ENV);
    }
    for (const m of measured) {
      const traced = await importBundle(m.bundle.file, m.env, { trace: true });
      if (traced.handlerType !== "function") throw new Error(`${m.name} exports no handler`);
      m.loaded = (traced.loaded ?? []).filter((f) => m.bundle.files.includes(f));
    }
    for (let i = 0; i < runs; i++) {
      progress(`import round ${i + 1}/${runs}`);
      for (const m of measured) m.times.push((await importBundle(m.bundle.file, m.env)).importMs);
    }
    const figures = (m: Measured, name: string): ColdStartFigures => ({
      name,
      bytes: m.loaded.reduce((n, f) => n + statSync(f).size, 0),
      totalBytes: m.bundle.totalBytes,
      importMs: Math.round(median(m.times)),
    });
    const find = (name: string) => {
      const m = measured.find((x) => x.name === name);
      if (m === undefined) throw new Error(`not measured: ${name}`);
      return m;
    };
    const functions = (["api", "sweep"] as const).map((fn): FunctionColdStart => {
      const real = find(fn);
      const floor = find(`${fn}-floor`);
      const floorGroups = groupBytes(floor);
      const beyondFloor = [...groupBytes(real)]
        .map(([module, bytes]) => ({ module, bytes: bytes - (floorGroups.get(module) ?? 0) }))
        .filter((g) => g.bytes > 1024)
        .sort((a, b) => b.bytes - a.bytes);
      return {
        fn,
        real: figures(real, `${fn} (functions/${fn}.ts)`),
        floor: figures(floor, `${fn} floor`),
        beyondFloor,
        actions: specs[fn].actions,
      };
    });
    return { bare: figures(find("bare"), "bare Hono Lambda (baseline)"), functions };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
