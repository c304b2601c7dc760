import { lstat, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Config } from "../config.js";
import type { Log } from "../deps.js";
import {
  MANIFEST_FILE,
  MAX_MANIFEST_BYTES,
  type PluginManifest,
  parseManifest,
} from "./manifest.js";
import { isValidPluginName, normalizeRuntime } from "./names.js";

/** One plugin of the curated registry (`PLUGINS_DIR`), as `GET /plugins` lists it. */
export type RegistryEntry = PluginManifest;

/**
 * Lists the `PLUGINS_DIR` registry: every directory whose name is a valid plugin name and whose
 * `plugin.yaml` is valid and names that directory, sorted by name. A broken entry is skipped
 * with a warning rather than failing the whole list (installing it still reports why).
 *
 * `runtime` keeps the plugins that declare it (`-` and `_` compare equal) or declare none (a
 * plugin without `runtimes` restricts nothing). A missing registry directory is an empty list.
 */
export async function listRegistry(
  deps: { config: Config; log: Log },
  opts: { runtime?: string } = {},
): Promise<RegistryEntry[]> {
  const dir = deps.config.pluginsDir;
  let names: string[];
  try {
    names = (await readdir(dir, { withFileTypes: true }))
      .filter((d) => d.isDirectory() && isValidPluginName(d.name))
      .map((d) => d.name)
      .sort();
  } catch (err) {
    if ((err as { code?: string }).code === "ENOENT") return [];
    throw err;
  }
  const wanted = opts.runtime === undefined ? null : normalizeRuntime(opts.runtime);
  const entries: RegistryEntry[] = [];
  for (const name of names) {
    const manifest = await readManifest(join(dir, name), name, deps.log);
    if (!manifest) continue;
    if (
      wanted !== null &&
      manifest.runtimes.length > 0 &&
      !manifest.runtimes.some((r) => normalizeRuntime(r) === wanted)
    ) {
      continue;
    }
    entries.push(manifest);
  }
  return entries;
}

async function readManifest(dir: string, name: string, log: Log): Promise<PluginManifest | null> {
  const file = join(dir, MANIFEST_FILE);
  try {
    const info = await lstat(file);
    if (!info.isFile() || info.size > MAX_MANIFEST_BYTES) {
      log.warn("registry plugin skipped", { plugin: name, reason: `${MANIFEST_FILE} unusable` });
      return null;
    }
  } catch {
    log.warn("registry plugin skipped", { plugin: name, reason: `no ${MANIFEST_FILE}` });
    return null;
  }
  const parsed = parseManifest(await readFile(file, "utf8"));
  if (parsed.kind === "invalid") {
    log.warn("registry plugin skipped", { plugin: name, reason: parsed.message });
    return null;
  }
  if (parsed.manifest.name !== name) {
    log.warn("registry plugin skipped", {
      plugin: name,
      reason: `${MANIFEST_FILE} names "${parsed.manifest.name}"`,
    });
    return null;
  }
  return parsed.manifest;
}
