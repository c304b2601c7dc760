import { mkdtempSync, rmSync } from "node:fs";
import { isBuiltin } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LAMBDA_EXTERNALS } from "../../infra/bundling.js";
import {
  type BundleFigures,
  buildLambdaBundle,
  importBundle,
  LAMBDA_ENTRIES,
  type LambdaBundle,
  type LambdaName,
  recordBundleStats,
} from "../bench/bundle.js";

// The Lambda bundles as SST builds them: PGlite and the local cloud stay out, PGlite is reachable
// only through a lazy import() that a postgres:// DATABASE_URL never takes, and each bundle
// imports on its own — no node_modules beside it, as on Lambda — and exports `handler`.

/**
 * Optional native add-ons, required inside try/catch: ws falls back without the first two, and
 * node-postgres loads `pg-native` only when `pg.native` is asked for, which nothing does.
 */
const OPTIONAL_REQUIRES = new Set(["bufferutil", "utf-8-validate", "pg-native"]);
const names = Object.keys(LAMBDA_ENTRIES) as LambdaName[];
const isLambdaExternal = (path: string) =>
  LAMBDA_EXTERNALS.some((e) => (e.endsWith("/*") ? path.startsWith(e.slice(0, -1)) : path === e));

describe("Lambda bundles", () => {
  const bundles = {} as Record<LambdaName, LambdaBundle>;
  const figures = {} as Record<LambdaName, BundleFigures>;
  let dir = "";

  beforeAll(async () => {
    // Outside the project on purpose: nothing can be resolved from the project's node_modules.
    dir = mkdtempSync(join(tmpdir(), "wcp-lambda-"));
    for (const name of names) bundles[name] = await buildLambdaBundle(name, dir);
  });
  afterAll(() => {
    if (Object.keys(figures).length === names.length) recordBundleStats(figures);
    rmSync(dir, { recursive: true, force: true });
  });

  it.each(names)("%s leaves PGlite, drizzle's PGlite driver and the local cloud out", (name) => {
    const inputs = Object.keys(bundles[name].metafile.inputs);
    expect(inputs.some((p) => p.startsWith("lib/compute/"))).toBe(true); // the metafile is read
    expect(inputs.filter((p) => /@electric-sql[\\/]pglite/.test(p))).toEqual([]);
    expect(inputs.filter((p) => /drizzle-orm[\\/]pglite/.test(p))).toEqual([]);
    expect(inputs.filter((p) => p.startsWith("lib/localcloud/"))).toEqual([]);
  });

  it.each(names)("%s reaches PGlite only through a lazy import()", (name) => {
    const imports = Object.values(bundles[name].metafile.outputs).flatMap((o) => o.imports);
    const external = imports.filter((i) => i.external && !isBuiltin(i.path));
    const unexpected = external.filter(
      (i) =>
        !(i.kind === "dynamic-import" && isLambdaExternal(i.path)) &&
        !(i.kind === "require-call" && OPTIONAL_REQUIRES.has(i.path)),
    );
    expect(unexpected).toEqual([]);
    expect(external.filter((i) => i.kind === "dynamic-import").map((i) => i.path)).toContain(
      "@electric-sql/pglite",
    );
  });

  it.each(names)("%s imports with the Lambda settings and exports a handler", async (name) => {
    // Act
    const result = await importBundle(bundles[name].file);

    // Assess
    expect(result.handlerType).toBe("function");
    figures[name] = {
      bytes: bundles[name].bytes,
      totalBytes: bundles[name].totalBytes,
      importMs: Math.round(result.importMs),
    };
    console.log(
      `${name}: ${(bundles[name].bytes / 1024).toFixed(0)} KiB, import ${result.importMs.toFixed(0)} ms`,
    );
  });

  it("refuses to start without the required settings, naming them", async () => {
    await expect(importBundle(bundles.api.file, {})).rejects.toThrow(
      /ADMIN_TOKEN: is required.*DATABASE_URL: is required.*STAGING_BUCKET: is required/s,
    );
  });
});
