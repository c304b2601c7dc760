import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";

/**
 * The canonical digest of a plugin: what `X-Plugin-Digest`, `workspace_plugins.digest` and an
 * install request's `sha256` are.
 *
 * Definition: lowercase hex SHA-256 over the plugin's regular files in ascending byte order of
 * their relative paths (UTF-8, `/`-separated, no leading `./`), each contributing
 *
 *     path bytes ‖ 0x00 ‖ content length in decimal ASCII ‖ 0x00 ‖ content bytes
 *
 * A path cannot contain NUL, so the first 0x00 ends it; the length then says exactly where the
 * content ends, so no two different file sets hash the same bytes (without the length,
 * { `a`: "xb\0y" } and { `a`: "x", `b`: "y" } would both hash `a\0xb\0y`). Directories (empty
 * ones included), modes and times are not part of the plugin and not part of the digest. Any
 * tool can recompute it from an unpacked download.
 */
export async function pluginDigest(root: string, files: readonly StagedFile[]): Promise<string> {
  const hash = createHash("sha256");
  for (const file of sortByPath(files)) {
    hash.update(file.path, "utf8");
    hash.update(`\0${file.size}\0`, "utf8");
    let seen = 0;
    for await (const chunk of createReadStream(join(root, file.path))) {
      seen += (chunk as Buffer).length;
      hash.update(chunk as Buffer);
    }
    // The tree is ours while staged; a size change means something else touched it.
    if (seen !== file.size) throw new Error(`staged file ${file.path} changed while hashing`);
  }
  return hash.digest("hex");
}

export interface StagedFile {
  /** Relative, `/`-separated. */
  path: string;
  size: number;
}

/** Ascending byte order of the UTF-8 paths — the digest's and the packed archive's order. */
export function sortByPath<T extends { path: string }>(items: readonly T[]): T[] {
  return [...items].sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
}

export type TreeWalk =
  | { kind: "walked"; files: StagedFile[]; directories: string[]; bytes: number }
  | { kind: "rejected"; code: "PLUGIN_TOO_LARGE" | "INVALID_ARCHIVE"; message: string };

/**
 * Lists a directory tree without following anything: regular files and directories only (a
 * symlink, device, FIFO or socket → INVALID_ARCHIVE), stopping as soon as the entry count or
 * the byte total passes its cap (→ PLUGIN_TOO_LARGE). Files come back sorted by path.
 */
export async function walkTree(
  root: string,
  limits: { maxBytes: number; maxEntries: number },
): Promise<TreeWalk> {
  const files: StagedFile[] = [];
  const directories: string[] = [];
  let bytes = 0;
  const pending = [""];
  while (pending.length > 0) {
    const rel = pending.pop() as string;
    const entries = await readdir(join(root, rel), { withFileTypes: true });
    for (const entry of entries) {
      const path = rel === "" ? entry.name : `${rel}/${entry.name}`;
      if (files.length + directories.length + 1 > limits.maxEntries) {
        return {
          kind: "rejected",
          code: "PLUGIN_TOO_LARGE",
          message: `The plugin has more than ${limits.maxEntries} entries.`,
        };
      }
      if (entry.isDirectory()) {
        directories.push(path);
        pending.push(path);
      } else if (entry.isFile()) {
        const { size } = await lstat(join(root, path));
        bytes += size;
        if (bytes > limits.maxBytes) {
          return {
            kind: "rejected",
            code: "PLUGIN_TOO_LARGE",
            message: `The plugin's files exceed ${limits.maxBytes} bytes.`,
          };
        }
        files.push({ path, size });
      } else {
        const what = entry.isSymbolicLink() ? "a symlink" : "not a regular file or directory";
        return {
          kind: "rejected",
          code: "INVALID_ARCHIVE",
          message: `"${path.slice(0, 200)}" is ${what}.`,
        };
      }
    }
  }
  return { kind: "walked", files: sortByPath(files), directories: directories.sort(), bytes };
}
