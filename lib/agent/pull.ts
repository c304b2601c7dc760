import { randomBytes } from "node:crypto";
import { mkdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { extractTarGz } from "../plugins/archive.js";
import { pluginDigest, walkTree } from "../plugins/digest.js";
import { isValidPluginName } from "../plugins/names.js";

/** What an agent pulls: a plugin by name, from its default source or a named one. */
export interface PluginWanted {
  name: string;
  /** `local://NAME` when absent; `github://OWNER/REPO#REF` and the like otherwise. */
  source?: string;
}

export interface PullOptions {
  baseUrl: string;
  /** The workspace's own token. */
  token: string;
  workspaceId: string;
  /** Plugins land in `dir/<name>`. */
  dir: string;
  /** Caps on the unpacked plugin, as the control plane's PLUGIN_MAX_BYTES / PLUGIN_MAX_FILES. */
  maxBytes: number;
  maxFiles: number;
  fetch?: typeof fetch;
  signal?: AbortSignal;
}

export type PullResult =
  | { kind: "pulled"; name: string; version: string; digest: string; path: string }
  /** Worth another try later: the control plane (or the bucket) did not answer. */
  | { kind: "unavailable"; message: string }
  /** Not worth retrying as is: refused, corrupt, too large, or not the digest it claims. */
  | { kind: "refused"; code: string; message: string };

const DIGEST = /^[0-9a-f]{64}$/;

/**
 * Downloads one plugin through `GET /workspaces/{id}/plugins/{name}/download` (following a 302
 * to the presigned URL without the token), unpacks it under the caps with the control plane's
 * own extractor (no links, devices, absolute paths or `..`; sizes capped while streaming),
 * recomputes its digest over the unpacked files and compares it with `X-Plugin-Digest`, and only
 * then swaps it into `dir/<name>` by renames — a failed pull leaves the previous version intact.
 */
export async function pullPlugin(want: PluginWanted, opts: PullOptions): Promise<PullResult> {
  if (!isValidPluginName(want.name)) {
    return {
      kind: "refused",
      code: "INVALID_PLUGIN_NAME",
      message: `Not a plugin name: ${want.name.slice(0, 130)}.`,
    };
  }
  const doFetch = opts.fetch ?? globalThis.fetch;
  const url = new URL(
    `${opts.baseUrl}/workspaces/${encodeURIComponent(opts.workspaceId)}/plugins/${want.name}/download`,
  );
  if (want.source) url.searchParams.set("source", want.source);
  let res: Response;
  try {
    res = await doFetch(url, {
      headers: { authorization: `Bearer ${opts.token}` },
      redirect: "manual",
      ...(opts.signal && { signal: opts.signal }),
    });
  } catch (err) {
    return {
      kind: "unavailable",
      message: `Cannot reach the control plane (${(err as Error).message}).`,
    };
  }
  if (res.status !== 200 && res.status !== 302) return refusedOrUnavailable(res);
  const digest = res.headers.get("x-plugin-digest") ?? "";
  const version = res.headers.get("x-plugin-version") ?? "";
  if (!DIGEST.test(digest)) {
    await res.body?.cancel();
    return {
      kind: "refused",
      code: "BAD_ANSWER",
      message: "The download carries no X-Plugin-Digest.",
    };
  }
  if (res.status === 302) {
    const location = res.headers.get("location");
    if (!location)
      return { kind: "refused", code: "BAD_ANSWER", message: "A 302 without Location." };
    try {
      // The presigned URL is its own credential: the token is not sent to the bucket.
      res = await doFetch(location, opts.signal ? { signal: opts.signal } : {});
    } catch (err) {
      return {
        kind: "unavailable",
        message: `Cannot reach the bucket (${(err as Error).message}).`,
      };
    }
    if (!res.ok) {
      await res.body?.cancel();
      return { kind: "unavailable", message: `The bucket answered ${res.status}.` };
    }
  }
  if (!res.body)
    return { kind: "refused", code: "BAD_ANSWER", message: "The download has no body." };

  await mkdir(opts.dir, { recursive: true, mode: 0o700 });
  const suffix = randomBytes(6).toString("hex");
  const staging = join(opts.dir, `.pull-${want.name}-${suffix}`);
  const previous = join(opts.dir, `.old-${want.name}-${suffix}`);
  const target = join(opts.dir, want.name);
  await mkdir(staging, { mode: 0o700 });
  try {
    const limits = { maxBytes: opts.maxBytes, maxEntries: opts.maxFiles };
    const extracted = await extractTarGz(res.body, staging, limits);
    if (extracted.kind === "source-error") {
      return { kind: "unavailable", message: "The download broke off." };
    }
    if (extracted.kind === "rejected") {
      return { kind: "refused", code: extracted.code, message: extracted.message };
    }
    const tree = await walkTree(staging, limits);
    if (tree.kind === "rejected")
      return { kind: "refused", code: tree.code, message: tree.message };
    const actual = await pluginDigest(staging, tree.files);
    if (actual !== digest) {
      return {
        kind: "refused",
        code: "INTEGRITY_MISMATCH",
        message: `The unpacked plugin's digest is ${actual}, not the ${digest} the control plane sent.`,
      };
    }
    const hadOne = await rename(target, previous).then(
      () => true,
      (err: NodeJS.ErrnoException) => {
        if (err.code === "ENOENT") return false;
        throw err;
      },
    );
    await rename(staging, target);
    if (hadOne) await rm(previous, { recursive: true, force: true });
    return { kind: "pulled", name: want.name, version, digest, path: target };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

async function refusedOrUnavailable(res: Response): Promise<PullResult> {
  const text = await res.text().catch(() => "");
  let code = `HTTP_${res.status}`;
  let message = `The control plane answered ${res.status}.`;
  try {
    const body = JSON.parse(text) as { error?: { code?: string; message?: string } };
    if (body.error?.code) code = body.error.code;
    if (body.error?.message) message = body.error.message;
  } catch {
    // Not this API's error body (a proxy's page, say): the status says enough.
  }
  const transient = res.status >= 500 || res.status === 408 || res.status === 429;
  return transient
    ? { kind: "unavailable", message: `${code}: ${message}` }
    : { kind: "refused", code, message };
}
