import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  buildLambdaBundle,
  LAMBDA_ENTRIES,
  type LambdaBundle,
  type LambdaName,
} from "../bench/bundle.js";
import { ROOT } from "./aws-calls.js";

// What each Lambda's cold start carries, read from esbuild's metafile by module name (never by
// size or time): the sweep ships none of the plugin staging, archive, YAML, OpenAPI or HTTP
// code, nor zod's locales; the api loads what only some routes need (lib/http/on-demand.ts) in
// chunks of their own, outside what a cold start evaluates.

/** Modules that must not reach a bundle, by what they are. */
const ARCHIVE = /(^|\/)node_modules\/tar\//;
const YAML = /(^|\/)node_modules\/yaml\//;
const OPENAPI = /(^|\/)node_modules\/(@asteasolutions\/zod-to-openapi|@hono\/zod-openapi)\//;
const REFERENCE_UI = /(^|\/)node_modules\/@scalar\//;
const HTTP = /(^|\/)node_modules\/hono\/|^lib\/http\//;
const PLUGIN_STAGING = /^lib\/plugins\/(staging|archive|manifest|download|install|registry)\.ts$/;
/**
 * Every zod locale but English: classic zod registers `en` when it builds its first schema
 * (zod/v4/classic/schemas.js) and our settings' messages are English. The others come in
 * through `import { z } from "zod"` (https://github.com/colinhacks/zod/issues/6597) or any
 * use of zod's namespace as a value; infra/esbuild-plugins.mjs keeps them out of the api.
 */
// (The locale index itself may ship, reduced to English by the plugin.)
const ZOD_LOCALES = /(^|\/)node_modules\/zod\/v4\/locales\/(?!(en|index)\.js$)/;

const names = Object.keys(LAMBDA_ENTRIES) as LambdaName[];
const rel = (file: string) => relative(ROOT, file);

/** Modules with code in `outputs` (a module esbuild read but shook out entirely is not there). */
function modulesIn(bundle: LambdaBundle, outputs: string[]): string[] {
  const wanted = new Set(outputs.map(rel));
  return Object.entries(bundle.metafile.outputs)
    .filter(([out]) => wanted.has(out))
    .flatMap(([, o]) => Object.keys(o.inputs));
}

describe("what a cold start carries", () => {
  const bundles = {} as Record<LambdaName, LambdaBundle>;
  let dir = "";

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "wcp-contents-"));
    for (const name of names) bundles[name] = await buildLambdaBundle(name, dir);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("the sweep ships no archive, YAML, OpenAPI, HTTP or plugin staging code", () => {
    // Every chunk counts: anything shipped could be loaded by some pass.
    const shipped = modulesIn(bundles.sweep, bundles.sweep.files);
    expect(shipped.some((p) => p.startsWith("lib/sweep/"))).toBe(true); // the metafile is read
    for (const forbidden of [ARCHIVE, YAML, OPENAPI, REFERENCE_UI, HTTP, PLUGIN_STAGING]) {
      expect(shipped.filter((p) => forbidden.test(p))).toEqual([]);
    }
  });

  it.each(names)("%s ships no zod locale but English", (name) => {
    const shipped = modulesIn(bundles[name], bundles[name].files);
    expect(shipped.some((p) => p.endsWith("zod/v4/locales/en.js"))).toBe(true);
    expect(shipped.filter((p) => ZOD_LOCALES.test(p))).toEqual([]);
  });

  it("the api's cold start loads no archive, YAML, reference UI or plugin staging code", () => {
    const api = bundles.api;
    const atStart = modulesIn(api, api.initialFiles);
    const shipped = modulesIn(api, api.files);
    expect(atStart.some((p) => p.startsWith("lib/http/"))).toBe(true);
    for (const lazy of [ARCHIVE, YAML, REFERENCE_UI, PLUGIN_STAGING]) {
      expect(atStart.filter((p) => lazy.test(p))).toEqual([]);
      expect(shipped.some((p) => lazy.test(p))).toBe(true); // still shipped, in a lazy chunk
    }
  });

  it("every module the api loads on demand stays out of its cold start", () => {
    // Prepare: the modules lib/http/on-demand.ts names, as esbuild resolved them
    const api = bundles.api;
    const onDemand = api.metafile.inputs["lib/http/on-demand.ts"]?.imports ?? [];
    const targets = onDemand.filter((i) => i.kind === "dynamic-import").map((i) => i.path);
    expect(targets.length).toBeGreaterThanOrEqual(4);

    // Assess
    const atStart = new Set(modulesIn(api, api.initialFiles));
    const shipped = new Set(modulesIn(api, api.files));
    expect(targets.filter((t) => atStart.has(t))).toEqual([]);
    expect(targets.filter((t) => !shipped.has(t))).toEqual([]);
  });
});
