import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { create as createTar } from "tar";
import type { Config } from "../config.js";
import { extractTarGz } from "./archive.js";
import { pluginDigest, type StagedFile, walkTree } from "./digest.js";
import {
  MANIFEST_FILE,
  MAX_MANIFEST_BYTES,
  type PluginManifest,
  parseManifest,
} from "./manifest.js";
import { fetchError, type PluginSource } from "./sources.js";

/**
 * Staging: a source's content, fetched into a fresh temp dir under the caps and checked, with
 * its manifest and canonical digest. Shared by install and download, so both refuse the same
 * archives and agree on the digest.
 */

export type { StagedFile } from "./digest.js";

export interface StagedPlugin {
  source: PluginSource;
  manifest: PluginManifest;
  /** The plugin's root in a temp dir; gone after {@link StagedPlugin.cleanup}. */
  dir: string;
  /** Regular files, sorted by path. */
  files: readonly StagedFile[];
  bytes: number;
  /** The canonical digest (see `pluginDigest`). */
  digest: string;
  /** Removes the temp dir. Callers call it in `finally`. */
  cleanup(): Promise<void>;
}

/** Each code is the API's error code. */
export interface StageFailure {
  kind: "failed";
  code:
    | "PLUGIN_NOT_FOUND"
    | "SOURCE_FETCH_FAILED"
    | "SOURCE_FETCH_TIMEOUT"
    | "PLUGIN_TOO_LARGE"
    | "INVALID_ARCHIVE"
    | "INVALID_MANIFEST"
    | "INTEGRITY_MISMATCH"
    | "PLUGIN_NAME_MISMATCH";
  message: string;
}

export type StageResult = { kind: "staged"; plugin: StagedPlugin } | StageFailure;

export interface StageOptions {
  /** Expected canonical digest (hex, any case); a different one → INTEGRITY_MISMATCH. */
  sha256?: string;
  /** Where the temp dir goes (default: the OS temp dir). */
  tempParent?: string;
  /** The fetch used by network sources (default: the global one). */
  fetch?: typeof fetch;
  /**
   * When the fetch must be over at the latest (the request's deadline less what must follow it);
   * the fetch ends at the earlier of this and `PLUGIN_FETCH_TIMEOUT_SECONDS`.
   */
  fetchBy?: number;
}

/**
 * Stages `source` into a fresh temp dir.
 *
 * Contract: the fetch, body included, ends within `PLUGIN_FETCH_TIMEOUT_SECONDS` and by
 * `fetchBy` (→ SOURCE_FETCH_TIMEOUT); unpacked bytes and entries stay within `PLUGIN_MAX_BYTES` /
 * `PLUGIN_MAX_FILES` while streaming (→ PLUGIN_TOO_LARGE); only regular files and directories
 * with safe relative paths are accepted (→ INVALID_ARCHIVE); `plugin.yaml` must parse and
 * validate, and each declared skill must have `skills/<skill>/SKILL.md` (→ INVALID_MANIFEST); a
 * source that names the plugin must agree with the manifest (→ PLUGIN_NAME_MISMATCH); a given
 * `sha256` must equal the digest (→ INTEGRITY_MISMATCH). On any failure the temp dir is already
 * removed; on success the caller owns it and must call `cleanup()`.
 */
export async function stagePlugin(
  deps: { config: Config },
  source: PluginSource,
  opts: StageOptions = {},
): Promise<StageResult> {
  const tmp = await mkdtemp(join(opts.tempParent ?? tmpdir(), "wcp-plugin-"));
  const cleanup = () => rm(tmp, { recursive: true, force: true, maxRetries: 3 });
  try {
    const root = join(tmp, "plugin");
    await mkdir(root, { mode: 0o755 });
    const outcome = await stageInto(deps.config, source, root, opts);
    if (outcome.kind === "failed") {
      await cleanup();
      return outcome;
    }
    return { kind: "staged", plugin: { ...outcome, source, dir: root, cleanup } };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

type Staged = Omit<StagedPlugin, "source" | "dir" | "cleanup"> & { kind: "staged" };

async function stageInto(
  config: Config,
  source: PluginSource,
  root: string,
  opts: StageOptions,
): Promise<Staged | StageFailure> {
  const limits = { maxBytes: config.pluginMaxBytes, maxEntries: config.pluginMaxFiles };
  const budgetMs = Math.min(
    config.pluginFetchTimeoutSeconds * 1000,
    opts.fetchBy === undefined ? Number.POSITIVE_INFINITY : opts.fetchBy - Date.now(),
  );
  const signal = AbortSignal.timeout(Math.max(1, Math.floor(budgetMs)));
  const content = await source.open({ config, signal, fetch: opts.fetch ?? fetch });
  switch (content.kind) {
    case "failed":
      return content;
    case "directory": {
      const copied = await copyTree(content.path, root, limits);
      if (copied) return copied;
      break;
    }
    case "tar.gz": {
      const extracted = await extractTarGz(content.body, root, limits, {
        stripComponents: content.stripComponents,
      });
      if (extracted.kind === "source-error") {
        return fetchError(signal, extracted.error, source.canonical);
      }
      if (extracted.kind === "rejected") return { ...extracted, kind: "failed" };
      break;
    }
    default: {
      const unreachable: never = content;
      throw new Error(`unhandled source content ${JSON.stringify(unreachable)}`);
    }
  }

  // Listed again from disk: what is hashed and packed is exactly what is there.
  const tree = await walkTree(root, limits);
  if (tree.kind === "rejected") return { ...tree, kind: "failed" };
  // Modes are not part of a plugin: whatever the source or the umask said, the packed archive
  // carries 0644 files and 0755 directories.
  for (const file of tree.files) await chmod(join(root, file.path), 0o644);
  for (const dir of tree.directories) await chmod(join(root, dir), 0o755);
  const manifestFile = tree.files.find((f) => f.path === MANIFEST_FILE);
  if (!manifestFile) {
    return {
      kind: "failed",
      code: "INVALID_MANIFEST",
      message: `The plugin has no ${MANIFEST_FILE}.`,
    };
  }
  if (manifestFile.size > MAX_MANIFEST_BYTES) {
    return {
      kind: "failed",
      code: "INVALID_MANIFEST",
      message: `${MANIFEST_FILE} is larger than ${MAX_MANIFEST_BYTES} bytes.`,
    };
  }
  const parsed = parseManifest(await readFile(join(root, MANIFEST_FILE), "utf8"));
  if (parsed.kind === "invalid") {
    return { kind: "failed", code: "INVALID_MANIFEST", message: parsed.message };
  }
  const manifest = parsed.manifest;
  if (source.name !== null && manifest.name !== source.name) {
    return {
      kind: "failed",
      code: "PLUGIN_NAME_MISMATCH",
      message: `${source.canonical} holds plugin "${manifest.name}", not "${source.name}".`,
    };
  }
  const paths = new Set(tree.files.map((f) => f.path));
  const missing = manifest.skills.filter((s) => !paths.has(`skills/${s}/SKILL.md`));
  if (missing.length > 0) {
    return {
      kind: "failed",
      code: "INVALID_MANIFEST",
      message: `${MANIFEST_FILE} declares skills without skills/<skill>/SKILL.md: ${missing.join(", ")}.`,
    };
  }
  const digest = await pluginDigest(root, tree.files);
  if (opts.sha256 !== undefined && opts.sha256.toLowerCase() !== digest) {
    return {
      kind: "failed",
      code: "INTEGRITY_MISMATCH",
      message: `The plugin's digest is ${digest}, not the expected ${opts.sha256.toLowerCase()}.`,
    };
  }
  return { kind: "staged", manifest, files: tree.files, bytes: tree.bytes, digest };
}

/** Copies a registry directory under the same rules an archive gets. */
async function copyTree(
  from: string,
  to: string,
  limits: { maxBytes: number; maxEntries: number },
): Promise<StageFailure | null> {
  const tree = await walkTree(from, limits);
  if (tree.kind === "rejected") return { ...tree, kind: "failed" };
  for (const dir of tree.directories) await mkdir(join(to, dir), { recursive: true, mode: 0o755 });
  for (const file of tree.files) {
    await mkdir(dirname(join(to, file.path)), { recursive: true, mode: 0o755 });
    await copyFile(join(from, file.path), join(to, file.path), constants.COPYFILE_EXCL);
  }
  return null;
}

/** A staged plugin packed for delivery. */
export interface PackedPlugin {
  /** The gzipped tarball. */
  archive: Buffer;
  /** SHA-256 of the tarball's bytes (what the install script checks with `sha256sum`). */
  sha256: string;
}

// The epoch as every entry's mtime: the same files always pack to the same bytes.
const FIXED_MTIME = new Date(0);

/**
 * Packs a staged plugin into a deterministic tar.gz: its files only (directories are implied),
 * in the digest's path order, mtime 0, no owner, mode 0644 — the same plugin always gives the
 * same bytes, hence the same content-addressed key in the staging bucket.
 */
export async function packPlugin(plugin: StagedPlugin): Promise<PackedPlugin> {
  const stream = createTar(
    { cwd: plugin.dir, gzip: true, portable: true, mtime: FIXED_MTIME, noDirRecurse: true },
    plugin.files.map((f) => f.path),
  );
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  const archive = Buffer.concat(chunks);
  return { archive, sha256: createHash("sha256").update(archive).digest("hex") };
}
