/**
 * Evaluates the SST program (sst.config.ts + infra/) offline, the way `sst deploy` would run it,
 * but against Pulumi's mocks instead of AWS: no credentials, no network.
 *
 * The build mirrors the SST 4.17 CLI (pkg/project/run.go and pkg/js/js.go in sst/sst): esbuild
 * bundles an entry that imports `platform/src/auto/run.ts` and `sst.config.ts`, with `$app`,
 * `$cli` and `$dev` defined, `platform/src/shim/run.js` injected, the provider namespaces
 * (`aws`, `sst`) imported at the top of every project file, and Pulumi, the AWS SDK and a few
 * build tools left external (resolved from `.sst/platform/node_modules`). It depends on these
 * SST internals: `sst` is pinned exactly, expect to adjust this file when upgrading it.
 *
 * Needs `sst install` to have populated `.sst/platform` (see .ci/run).
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { build, type Plugin } from "esbuild";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const PLATFORM_DIR = join(ROOT, ".sst", "platform");

export interface RecordedResource {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
}

export interface ProgramSnapshot {
  resources: RecordedResource[];
  /** Calls the platform code made to the CLI (function builds, bootstrap lookups). */
  rpcCalls: { method: string; args: unknown }[];
  /** Provider functions invoked (getPartition, getPolicyDocument, …). */
  invokes: string[];
  /** What `run()` returned, resolved. */
  outputs: Record<string, unknown>;
}

/** Handed to sst-program-child.ts. */
export interface ProgramRequest {
  bundle: string;
  platformDir: string;
  workDir: string;
  app: string;
  stage: string;
  secrets: Record<string, string>;
  out: string;
}

export interface AppConfig {
  name: string;
  removal: string;
  protect: boolean;
  home: string;
  providers: Record<string, { version?: string }>;
}

export function sstInstalled(): boolean {
  return existsSync(join(PLATFORM_DIR, "src", "auto", "run.ts"));
}

/** `app()` of sst.config.ts for `stage` (it uses no SST globals, so `$config` is the identity). */
export async function appConfig(stage: string): Promise<AppConfig> {
  const dir = mkdtempSync(join(tmpdir(), "wcp-sst-app-"));
  try {
    const out = join(dir, "config.mjs");
    await build({
      entryPoints: [join(ROOT, "sst.config.ts")],
      bundle: true,
      format: "esm",
      platform: "node",
      outfile: out,
      logLevel: "silent",
      banner: { js: "const $config = (config) => config;" },
    });
    const mod = (await import(pathToFileURL(out).href)) as {
      default: { app(input: { stage: string }): AppConfig | Promise<AppConfig> };
    };
    return await mod.default.app({ stage });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Prepends the provider namespaces to every project file, as the CLI's InjectGlobals plugin. */
function injectGlobals(globals: string): Plugin {
  return {
    name: "InjectGlobals",
    setup(b) {
      b.onLoad({ filter: /\.(js|ts|jsx|tsx)$/ }, (args) => {
        const contents = readFileSync(args.path, "utf8");
        const loader = args.path.endsWith("x") ? "tsx" : args.path.endsWith(".ts") ? "ts" : "js";
        return {
          contents: args.path.includes(".sst") ? contents : `${globals}\n${contents}`,
          loader,
        };
      });
    },
  };
}

/**
 * Bundles and runs the program for `stage` under mocks; answers what it registered.
 * @param secrets the values `sst secret set` would hold for the stage
 */
export async function evaluateSstProgram(
  stage: string,
  secrets: Record<string, string>,
): Promise<ProgramSnapshot> {
  const app = await appConfig(stage);
  const workDir = mkdtempSync(join(tmpdir(), "wcp-sst-run-"));
  const bundle = join(PLATFORM_DIR, `sst.config.infra-test-${process.pid}-${Date.now()}.mjs`);
  try {
    const lock = JSON.parse(readFileSync(join(ROOT, ".sst", "provider-lock.json"), "utf8")) as {
      alias: string;
      package: string;
    }[];
    const globals = [
      ...lock.map((p) => `import * as ${p.alias} from "${p.package}";`),
      `import * as sst from "${join(PLATFORM_DIR, "src", "components")}";`,
    ].join("\n");
    const cli = {
      command: "deploy",
      dev: false,
      paths: { home: workDir, root: ROOT, work: workDir, platform: PLATFORM_DIR },
      state: { version: {} },
    };
    await build({
      stdin: {
        contents: [
          `import { run } from "${join(PLATFORM_DIR, "src", "auto", "run.ts")}";`,
          `import mod from "${join(ROOT, "sst.config.ts")}";`,
          "const result = await run(mod.run);",
          "export default result;",
        ].join("\n"),
        resolveDir: ROOT,
        sourcefile: "eval.ts",
        loader: "ts",
      },
      banner: {
        js: [
          `import { createRequire as topLevelCreateRequire } from 'module';`,
          "const require = topLevelCreateRequire(import.meta.url);",
          `import { fileURLToPath as topLevelFileUrlToPath, URL as topLevelURL } from "url"`,
          "const __filename = topLevelFileUrlToPath(import.meta.url)",
          `const __dirname = topLevelFileUrlToPath(new topLevelURL(".", import.meta.url))`,
        ].join("\n"),
      },
      mainFields: ["module", "main"],
      format: "esm",
      platform: "node",
      nodePaths: [join(PLATFORM_DIR, "node_modules")],
      plugins: [injectGlobals(globals)],
      external: [
        "@pulumi/*",
        "undici",
        "@pulumiverse/*",
        "@sst-provider/*",
        "@aws-sdk/*",
        "esbuild",
        "archiver",
        "glob",
        "vite",
      ],
      define: {
        $app: JSON.stringify({ ...app, stage }),
        $cli: JSON.stringify(cli),
        $dev: "false",
      },
      inject: [join(PLATFORM_DIR, "src", "shim", "run.js")],
      outfile: bundle,
      bundle: true,
      write: true,
      logLevel: "silent",
    });

    const request: ProgramRequest = {
      bundle,
      platformDir: PLATFORM_DIR,
      workDir,
      app: app.name,
      stage,
      secrets,
      out: join(workDir, "snapshot.json"),
    };
    const requestFile = join(workDir, "request.json");
    writeFileSync(requestFile, JSON.stringify(request));
    await promisify(execFile)(
      process.execPath,
      [
        "--import",
        "tsx",
        fileURLToPath(new URL("./sst-program-child.ts", import.meta.url)),
        requestFile,
      ],
      { cwd: ROOT, timeout: 120_000, maxBuffer: 64 * 1024 * 1024 },
    );
    return JSON.parse(readFileSync(request.out, "utf8")) as ProgramSnapshot;
  } finally {
    rmSync(bundle, { force: true });
    rmSync(workDir, { recursive: true, force: true });
  }
}
