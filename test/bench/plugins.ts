import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create as createTar } from "tar";
import { createApp } from "../../lib/http/app.js";
import { adminHeaders, createWorld, median, onlineWorkspace, round } from "./support.js";

export interface PluginFigures {
  label: string;
  archiveBytes: number;
  runs: number;
  medianMs: number;
  maxMs: number;
}

/** A GitHub-style tarball (one top-level folder) with `bytes` of incompressible content. */
async function tarball(dir: string, version: string, bytes: number): Promise<Buffer> {
  const root = join(dir, `bench-${version}`);
  mkdirSync(join(root, "data"), { recursive: true });
  writeFileSync(
    join(root, "plugin.yaml"),
    `name: bench\nversion: "${version}"\ndescription: bench plugin\nauthor: bench\ntags: []\nskills: []\nruntimes: [langgraph]\n`,
  );
  writeFileSync(join(root, "data", "blob.bin"), randomBytes(bytes));
  const file = join(dir, `bench-${version}.tar.gz`);
  await createTar({ gzip: true, file, cwd: dir }, [`bench-${version}`]);
  return readFileSync(file);
}

/**
 * End-to-end install time through the API: fetch from a loopback "GitHub", stage, pack, put to
 * the local cloud's S3, one SSM command that downloads, verifies and swaps it in.
 */
export async function benchPluginInstall(runs = 5): Promise<PluginFigures[]> {
  const dir = mkdtempSync(join(tmpdir(), "wcp-bench-plugin-"));
  const archives = new Map<string, Buffer>();
  const github = createServer((req, res) => {
    const ref = req.url?.split("/").at(-1) ?? "";
    const body = archives.get(ref);
    if (!body) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/gzip" }).end(body);
  });
  await new Promise<void>((r) => github.listen(0, "127.0.0.1", r));
  const base = `http://127.0.0.1:${(github.address() as AddressInfo).port}`;
  const world = await createWorld({ GITHUB_TARBALL_BASE: base });
  const app = createApp(world.deps);
  try {
    const workspace = await onlineWorkspace(world, app);

    const figures: PluginFigures[] = [];
    for (const [label, bytes] of [
      ["10 KB", 10 * 1024],
      ["5 MB", 5 * 1024 * 1024],
    ] as const) {
      const times: number[] = [];
      let archiveBytes = 0;
      for (let run = 0; run < runs; run++) {
        const version = `${label.replace(" ", "")}-${run}`;
        const archive = await tarball(dir, version, bytes);
        archiveBytes = archive.length;
        archives.set(version, archive);
        const started = performance.now();
        const res = await app.request(`/workspaces/${workspace.id}/plugins`, {
          method: "POST",
          headers: adminHeaders,
          body: JSON.stringify({ source: `github://bench/plugin#${version}` }),
        });
        const elapsed = performance.now() - started;
        if (res.status !== 200)
          throw new Error(`bench: install answered ${res.status}: ${await res.text()}`);
        times.push(elapsed);
      }
      figures.push({
        label,
        archiveBytes,
        runs,
        medianMs: round(median(times)),
        maxMs: round(Math.max(...times)),
      });
    }
    return figures;
  } finally {
    github.close();
    await world.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
