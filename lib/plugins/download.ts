import { presignGet, putStagedObject } from "../compute/staging-bucket.js";
import type { Deps } from "../deps.js";
import { isPluginAllowed } from "./allowlist.js";
import { stagedArchiveKey } from "./install.js";
import type { PluginSource } from "./sources.js";
import { packPlugin, type StageFailure, type StageOptions, stagePlugin } from "./staging.js";

/** How long a redirect to a large download stays valid. */
export const DOWNLOAD_PRESIGN_SECONDS = 300;

/** What every successful download says about itself (the `X-Plugin-*` headers). */
export interface DownloadMeta {
  name: string;
  version: string;
  /** The canonical source. */
  source: string;
  /** The canonical digest of the plugin's files (not of the archive). */
  digest: string;
  /** `<name>-<version>.tar.gz`. */
  fileName: string;
}

export type DownloadOutcome =
  | ({ kind: "inline"; archive: Buffer } & DownloadMeta)
  | ({ kind: "redirect"; url: string } & DownloadMeta)
  | { kind: "name-mismatch"; expected: string; actual: string }
  | { kind: "not-allowed"; name: string }
  | { kind: "stage-failed"; failure: StageFailure }
  | { kind: "upload-failed"; transient: boolean; error: { code: string; message: string } };

/**
 * Prepares a plugin for an external agent to pull: the same staging, caps and allowlist as an
 * install, packed to the same deterministic tar.gz.
 *
 * Contract: a source naming another plugin, or a manifest naming another plugin, than `name` →
 * `name-mismatch` (the first without fetching); not allowed → `not-allowed`; an archive of at
 * most `DOWNLOAD_INLINE_MAX_BYTES` → `inline` (Lambda's response limit is ~6 MB, ~4.5 MB of it
 * binary); larger → put to the staging bucket and `redirect` to a presigned GET.
 */
export async function preparePluginDownload(
  deps: Deps,
  input: { name: string; source: PluginSource; stage?: StageOptions },
): Promise<DownloadOutcome> {
  const { name, source } = input;
  if (source.name !== null && source.name !== name) {
    return { kind: "name-mismatch", expected: name, actual: source.name };
  }
  if (!(await isPluginAllowed(deps.db, name))) return { kind: "not-allowed", name };
  // The put and presign of a large archive must still fit in the request after the fetch.
  const fetchBy = deps.deadline === undefined ? {} : { fetchBy: deps.deadline.at - 4_000 };
  const staged = await stagePlugin(deps, source, { ...fetchBy, ...input.stage });
  if (staged.kind === "failed") return { kind: "stage-failed", failure: staged };
  const plugin = staged.plugin;
  try {
    const { manifest } = plugin;
    if (manifest.name !== name) {
      return { kind: "name-mismatch", expected: name, actual: manifest.name };
    }
    const packed = await packPlugin(plugin);
    const meta: DownloadMeta = {
      name,
      version: manifest.version,
      source: source.canonical,
      digest: plugin.digest,
      fileName: `${name}-${manifest.version}.tar.gz`,
    };
    if (packed.archive.byteLength <= deps.config.downloadInlineMaxBytes) {
      return { kind: "inline", archive: packed.archive, ...meta };
    }
    const key = stagedArchiveKey(name, packed.sha256);
    const put = await putStagedObject(deps, key, packed.archive, "application/gzip");
    if (put.kind === "failed") {
      return { kind: "upload-failed", transient: put.transient, error: put.error };
    }
    const url = await presignGet(deps, key, DOWNLOAD_PRESIGN_SECONDS, meta.fileName);
    return { kind: "redirect", url, ...meta };
  } finally {
    await plugin.cleanup();
  }
}
