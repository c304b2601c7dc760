import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import type { Config } from "../config.js";
import { isValidPluginName, pluginNameProblem } from "./names.js";

/**
 * Where plugins come from. A source is written `SCHEME://REST` (a bare `NAME` means
 * `local://NAME`). Parsing a source is pure and cheap — the install route parses before the
 * running check and the external-runtime guard runs before either — while *opening* it is
 * the fetch, which only staging does.
 *
 * Built in: `local://NAME` (the `PLUGINS_DIR` registry) and `github://OWNER/REPO#REF` (a tarball
 * from `GITHUB_TARBALL_BASE`, codeload's layout). A deployment adds its own schemes by
 * registering a {@link SourceResolver} on a {@link SourceRegistry} and passing that registry to
 * the plugin routes.
 */

/** Why a source string was refused; each code is the API's error code. */
export interface SourceParseFailure {
  kind: "invalid";
  code: "UNKNOWN_SOURCE_SCHEME" | "INVALID_PLUGIN_NAME" | "UNPINNED_SOURCE" | "VALIDATION_FAILED";
  message: string;
}

export type SourceParse = { kind: "parsed"; source: PluginSource } | SourceParseFailure;

/** Why opening a source failed; each code is the API's error code. */
export interface FetchFailure {
  kind: "failed";
  code: "PLUGIN_NOT_FOUND" | "SOURCE_FETCH_FAILED" | "SOURCE_FETCH_TIMEOUT";
  message: string;
}

/**
 * What an opened source yields: a directory to copy from, or a gzipped tar stream (with the
 * number of leading path components to strip, 1 for GitHub's `OWNER-REPO-SHA/` directory).
 * Staging applies the same caps and entry checks to both.
 */
export type SourceContent =
  | { kind: "directory"; path: string }
  | { kind: "tar.gz"; body: AsyncIterable<Uint8Array>; stripComponents: number }
  | FetchFailure;

export interface OpenContext {
  config: Config;
  /** Aborts at `PLUGIN_FETCH_TIMEOUT_SECONDS`, the body included. */
  signal: AbortSignal;
  fetch: typeof fetch;
}

/** A parsed source. Opening it is the only step that touches the network or the disk. */
export interface PluginSource {
  scheme: string;
  /** The canonical spelling: recorded in `workspace_plugins.source` and `X-Plugin-Source`. */
  canonical: string;
  /** The plugin's name when the source says it (`local://NAME`), null when only the manifest can. */
  name: string | null;
  open(ctx: OpenContext): Promise<SourceContent>;
}

/** Parses what follows `SCHEME://`. Pure: no I/O. */
export type SourceResolver = (rest: string, config: Config) => SourceParse;

const SCHEME = /^[a-z][a-z0-9+.-]{0,31}$/;

/** The schemes one deployment accepts. */
export class SourceRegistry {
  readonly #schemes = new Map<string, SourceResolver>();

  /** Adds a scheme. Registering one twice is a bug (the second would silently win). */
  register(scheme: string, resolver: SourceResolver): this {
    if (!SCHEME.test(scheme)) throw new Error(`invalid source scheme "${scheme}"`);
    if (this.#schemes.has(scheme)) throw new Error(`source scheme "${scheme}" already registered`);
    this.#schemes.set(scheme, resolver);
    return this;
  }

  schemes(): string[] {
    return [...this.#schemes.keys()].sort();
  }

  /**
   * Parses a source string: `SCHEME://REST` by its scheme's resolver, a bare `NAME` as
   * `local://NAME`. Unknown scheme → UNKNOWN_SOURCE_SCHEME; bad name → INVALID_PLUGIN_NAME.
   */
  parse(raw: string, config: Config): SourceParse {
    const sep = raw.indexOf("://");
    if (sep < 0) {
      const local = this.#schemes.get("local");
      if (!local) return unknownScheme("local", this.schemes());
      return local(raw, config);
    }
    const scheme = raw.slice(0, sep).toLowerCase();
    const resolver = this.#schemes.get(scheme);
    if (!resolver) return unknownScheme(scheme, this.schemes());
    return resolver(raw.slice(sep + 3), config);
  }
}

function unknownScheme(scheme: string, known: string[]): SourceParseFailure {
  return {
    kind: "invalid",
    code: "UNKNOWN_SOURCE_SCHEME",
    message: `Unknown source scheme "${scheme.slice(0, 32)}"; known: ${known.map((s) => `${s}://`).join(", ")}.`,
  };
}

function invalidName(name: string): SourceParseFailure {
  return {
    kind: "invalid",
    code: "INVALID_PLUGIN_NAME",
    message: `Invalid plugin name "${name.slice(0, 140)}": it ${pluginNameProblem(name)}.`,
  };
}

/** `local://NAME`: a directory of the `PLUGINS_DIR` registry. */
export const localSource: SourceResolver = (rest, config) => {
  if (!isValidPluginName(rest)) return invalidName(rest);
  const name = rest;
  return {
    kind: "parsed",
    source: {
      scheme: "local",
      canonical: `local://${name}`,
      name,
      async open() {
        // The name is validated, so this stays inside the registry.
        const path = resolve(config.pluginsDir, name);
        try {
          if ((await stat(path)).isDirectory()) return { kind: "directory", path };
        } catch {
          // Missing or unreadable: either way the registry has no such plugin.
        }
        return {
          kind: "failed",
          code: "PLUGIN_NOT_FOUND",
          message: `No plugin "${name}" in the registry.`,
        };
      },
    },
  };
};

// GitHub's own rules: owners are 1-39 alphanumerics or single hyphens; repositories 1-100 of
// [A-Za-z0-9._-]. Refs are checked more tightly than git does (no `..`, no leading `-` or `/`).
const OWNER = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$/;
const REPO = /^[A-Za-z0-9._-]{1,100}$/;
const REF = /^[A-Za-z0-9._/+-]{1,255}$/;
const MAX_REDIRECTS = 5;

function badGithub(message: string): SourceParseFailure {
  return {
    kind: "invalid",
    code: "VALIDATION_FAILED",
    message: `${message} GitHub sources look like github://OWNER/REPO#REF.`,
  };
}

/**
 * `github://OWNER/REPO#REF`: the tarball `${GITHUB_TARBALL_BASE}/OWNER/REPO/tar.gz/REF`
 * (codeload's layout, so no `git` binary is needed). REF is required unless
 * `PLUGIN_ALLOW_UNPINNED` (then the default branch, `HEAD`).
 */
export const githubSource: SourceResolver = (rest, config) => {
  const hash = rest.indexOf("#");
  const path = hash < 0 ? rest : rest.slice(0, hash);
  const ref = hash < 0 ? "" : rest.slice(hash + 1);
  const [owner = "", repo = "", ...extra] = path.split("/");
  if (extra.length > 0 || !OWNER.test(owner) || !REPO.test(repo) || repo === "." || repo === "..") {
    // The rejected text is not quoted back: it may hold credentials (`user:token@owner/repo`).
    return badGithub("The path is not OWNER/REPO.");
  }
  if (ref === "") {
    if (!config.pluginAllowUnpinned) {
      return {
        kind: "invalid",
        code: "UNPINNED_SOURCE",
        message: `github://${owner}/${repo} names no ref; pin a tag or commit: github://${owner}/${repo}#REF.`,
      };
    }
  } else if (
    !REF.test(ref) ||
    ref.includes("..") ||
    ref.includes("//") ||
    /^[-/]|\/$/.test(ref) ||
    ref.endsWith(".lock")
  ) {
    return badGithub("The ref is not a valid git ref (letters, digits, . _ / + -).");
  }
  const canonical = `github://${owner}/${repo}${ref === "" ? "" : `#${ref}`}`;
  const refPath = (ref === "" ? "HEAD" : ref).split("/").map(encodeURIComponent).join("/");
  const url = `${config.githubTarballBase}/${owner}/${repo}/tar.gz/${refPath}`;
  return {
    kind: "parsed",
    source: {
      scheme: "github",
      canonical,
      name: null,
      open: (ctx) => openTarball(ctx, url, canonical),
    },
  };
};

/**
 * GETs a tarball, following redirects by hand and only within the base URL's origin: codeload
 * redirects between its own paths, and anything leaving that origin (a redirect to an internal
 * address, say) is refused without being requested.
 */
async function openTarball(ctx: OpenContext, url: string, label: string): Promise<SourceContent> {
  const origin = new URL(ctx.config.githubTarballBase).origin;
  let current = new URL(url);
  try {
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const res = await ctx.fetch(current, { redirect: "manual", signal: ctx.signal });
      if ([301, 302, 303, 307, 308].includes(res.status)) {
        await res.body?.cancel();
        const location = res.headers.get("location");
        let next: URL | null = null;
        try {
          next = location ? new URL(location, current) : null;
        } catch {
          next = null;
        }
        if (next === null || next.origin !== origin) {
          return {
            kind: "failed",
            code: "SOURCE_FETCH_FAILED",
            message: `${label}: refused a redirect away from ${origin}.`,
          };
        }
        current = next;
        continue;
      }
      if (res.status === 404) {
        await res.body?.cancel();
        return {
          kind: "failed",
          code: "PLUGIN_NOT_FOUND",
          message: `${label}: not found upstream.`,
        };
      }
      if (!res.ok || res.body === null) {
        await res.body?.cancel();
        return {
          kind: "failed",
          code: "SOURCE_FETCH_FAILED",
          message: `${label}: upstream answered HTTP ${res.status}.`,
        };
      }
      return { kind: "tar.gz", body: res.body, stripComponents: 1 };
    }
    return {
      kind: "failed",
      code: "SOURCE_FETCH_FAILED",
      message: `${label}: more than ${MAX_REDIRECTS} redirects.`,
    };
  } catch (err) {
    return fetchError(ctx.signal, err, label);
  }
}

/** Classifies a failed fetch: the deadline's abort is a timeout, anything else a fetch failure. */
export function fetchError(signal: AbortSignal, err: unknown, label: string): FetchFailure {
  if (signal.aborted) {
    return {
      kind: "failed",
      code: "SOURCE_FETCH_TIMEOUT",
      message: `${label}: no complete answer within the fetch deadline.`,
    };
  }
  const detail =
    err instanceof Error
      ? err.cause instanceof Error
        ? err.cause.message
        : err.message
      : String(err);
  return {
    kind: "failed",
    code: "SOURCE_FETCH_FAILED",
    message: `${label}: fetch failed (${detail.slice(0, 200)}).`,
  };
}

/** The registry with the built-in schemes; a deployment may register more on it. */
export function defaultSourceRegistry(): SourceRegistry {
  return new SourceRegistry().register("local", localSource).register("github", githubSource);
}
