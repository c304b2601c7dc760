import { createWriteStream } from "node:fs";
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGzip, gzipSync, constants as zlibConstants } from "node:zlib";
import { Header, type HeaderData } from "tar";

/** Helpers for plugin tests: plugin directories, hand-made tarballs, a loopback tarball server. */

export interface PluginSpec {
  name: string;
  version?: string;
  skills?: string[];
  runtimes?: string[];
  /** Extra files, path → content. */
  files?: Record<string, string>;
  /** Replaces the generated plugin.yaml. */
  manifest?: string;
}

export function manifestYaml(spec: PluginSpec): string {
  return [
    `name: ${spec.name}`,
    `version: "${spec.version ?? "1.0.0"}"`,
    `description: Test plugin ${spec.name}`,
    "author: tests",
    "tags: [test]",
    `skills: [${(spec.skills ?? []).join(", ")}]`,
    `runtimes: [${(spec.runtimes ?? []).join(", ")}]`,
    "",
  ].join("\n");
}

/** The files of a plugin, path → content (plugin.yaml, README, one SKILL.md per skill). */
export function pluginFiles(spec: PluginSpec): Record<string, string> {
  const files: Record<string, string> = {
    "plugin.yaml": spec.manifest ?? manifestYaml(spec),
    "README.md": `# ${spec.name} ${spec.version ?? "1.0.0"}\n`,
  };
  for (const skill of spec.skills ?? []) {
    files[`skills/${skill}/SKILL.md`] =
      `---\nname: ${skill}\ndescription: ${skill} of ${spec.name} ${spec.version ?? "1.0.0"}\n---\n`;
  }
  return { ...files, ...spec.files };
}

/** Writes a plugin directory under `registry/<name>/`. */
export async function writePluginDir(registry: string, spec: PluginSpec): Promise<string> {
  const root = join(registry, spec.name);
  for (const [path, content] of Object.entries(pluginFiles(spec))) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  }
  return root;
}

/** One entry of a hand-made tar. Bodies are strings or buffers; `size` may lie on purpose. */
export interface RawEntry extends HeaderData {
  path: string;
  body?: string | Buffer;
}

function headerBlock(entry: RawEntry, size: number): Buffer {
  const block = Buffer.alloc(512);
  const header = new Header({
    mode: entry.type === "Directory" ? 0o755 : 0o644,
    mtime: new Date(0),
    uid: 0,
    gid: 0,
    ...entry,
    size,
  });
  header.encode(block, 0);
  return block;
}

/** A tar stream built block by block, so it can hold anything an attacker could write. */
export function rawTar(entries: RawEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    const body = entry.body === undefined ? Buffer.alloc(0) : Buffer.from(entry.body);
    parts.push(headerBlock(entry, entry.size ?? body.length));
    if (body.length > 0) {
      parts.push(body, Buffer.alloc((512 - (body.length % 512)) % 512));
    }
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export const rawTarGz = (entries: RawEntry[]): Buffer => gzipSync(rawTar(entries));

/** Entries for a plugin's files, under `prefix/` (GitHub's `OWNER-REPO-SHA/`) when given. */
export function pluginEntries(spec: PluginSpec, prefix?: string): RawEntry[] {
  const entries: RawEntry[] = [];
  if (prefix !== undefined) entries.push({ path: `${prefix}/`, type: "Directory" });
  for (const [path, body] of Object.entries(pluginFiles(spec))) {
    entries.push({ path: prefix === undefined ? path : `${prefix}/${path}`, type: "File", body });
  }
  return entries;
}

/** One pax record, `<length> key=value\n`, where the length counts itself. */
export function paxRecord(key: string, value: string): string {
  const rest = ` ${key}=${value}\n`;
  let len = rest.length + 1;
  while (String(len).length + rest.length !== len) len++;
  return `${len}${rest}`;
}

/** A GitHub-style tarball of a plugin: a global pax header (the commit), one top-level directory. */
export const githubTarball = (spec: PluginSpec, prefix = "acme-plugins-0123abc"): Buffer =>
  rawTarGz([
    {
      path: "pax_global_header",
      type: "GlobalExtendedHeader",
      body: paxRecord("comment", "0123abc0123abc0123abc0123abc0123abc0123a"),
    },
    ...pluginEntries(spec, prefix),
  ]);

/**
 * Writes a gzipped tar whose one file holds `bytes` zero bytes, streaming (never `bytes` in
 * memory): 1 GiB compresses to about 1 MiB. `headerSize` makes the header claim another size.
 */
export async function writeZeroBomb(
  file: string,
  bytes: number,
  opts: { path?: string; headerSize?: number } = {},
): Promise<void> {
  const chunk = Buffer.alloc(1 << 20);
  const header = headerBlock(
    { path: opts.path ?? "zeros.bin", type: "File" },
    opts.headerSize ?? bytes,
  );
  async function* body() {
    yield header;
    let left = bytes;
    while (left > 0) {
      const n = Math.min(left, chunk.length);
      yield n === chunk.length ? chunk : chunk.subarray(0, n);
      left -= n;
    }
    yield Buffer.alloc(1024);
  }
  await pipeline(
    body(),
    createGzip({ level: zlibConstants.Z_BEST_COMPRESSION }),
    createWriteStream(file),
  );
}

/** A loopback HTTP server that counts requests; the handler decides the answer. */
export interface TarballServer {
  url: string;
  requests: { method: string; path: string }[];
  close(): Promise<void>;
}

export async function startTarballServer(
  handler: (req: IncomingMessage, res: ServerResponse) => unknown,
): Promise<TarballServer> {
  const requests: { method: string; path: string }[] = [];
  const server: Server = createServer((req, res) => {
    requests.push({ method: req.method ?? "", path: req.url ?? "" });
    Promise.resolve(handler(req, res)).catch(() => {
      res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Every path under `dir` (files and directories), relative, sorted; [] when it is gone. */
export async function listTree(dir: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { recursive: true });
    return entries.map(String).sort();
  } catch (err) {
    if ((err as { code?: string }).code === "ENOENT") return [];
    throw err;
  }
}
