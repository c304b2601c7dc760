import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// The module rules of SPEC §1, read from the source text: import specifiers (static, dynamic,
// re-exports) and the names of the SDK commands a module sends. TypeScript 7 ships no JS compiler
// API, so this scans text; the self-checks below make sure the scanner sees what it must.

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const SCANNED = ["lib", "functions", "infra"];

const AWS_PACKAGES = [
  "@aws-sdk/client-ec2",
  "@aws-sdk/client-ssm",
  "@aws-sdk/client-s3",
  "@aws-sdk/s3-request-presigner",
];

interface SourceFile {
  /** Repository-relative, with forward slashes. */
  path: string;
  text: string;
}

/** Source without comments, so a TSDoc example is never read as code. */
function stripComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
}

/** Every module specifier a file imports or re-exports, statically or dynamically. */
function importSpecifiers(text: string): string[] {
  const code = stripComments(text);
  const patterns = [
    // import x from "m"; import { a,\n b } from "m"; import type …; export { a } from "m"; export * from "m"
    /(?:^|[;\n])\s*(?:import|export)\b[^;"'`]*?\bfrom\s*["']([^"']+)["']/g,
    // import "m";
    /(?:^|[;\n])\s*import\s*["']([^"']+)["']/g,
    // import("m"), require("m")
    /\b(?:import|require)\s*\(\s*["']([^"']+)["']\s*\)/g,
  ];
  const found: string[] = [];
  for (const re of patterns) for (const m of code.matchAll(re)) if (m[1]) found.push(m[1]);
  return found;
}

/** The repository path a relative specifier points at (`.js` → `.ts`), or null for packages. */
function resolveSpecifier(from: string, specifier: string): string | null {
  if (!specifier.startsWith(".")) return null;
  const target = resolve(ROOT, dirname(from), specifier).replace(/\.js$/, ".ts");
  return relative(ROOT, target).split(sep).join("/");
}

function walk(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const full = join(dir, name);
    if (name === "node_modules" || name.startsWith(".")) return [];
    if (statSync(full).isDirectory()) return walk(full);
    return /\.(ts|mts|cts|tsx)$/.test(name) && !name.endsWith(".d.ts") ? [full] : [];
  });
}

function sources(): SourceFile[] {
  const files = SCANNED.flatMap((d) => walk(join(ROOT, d)));
  if (existsSync(join(ROOT, "sst.config.ts"))) files.push(join(ROOT, "sst.config.ts"));
  return files.map((full) => ({
    path: relative(ROOT, full).split(sep).join("/"),
    text: readFileSync(full, "utf8"),
  }));
}

const FILES = sources();

const importsOf = (file: SourceFile) => importSpecifiers(file.text);
const localImportsOf = (file: SourceFile) =>
  importsOf(file)
    .map((s) => resolveSpecifier(file.path, s))
    .filter((p): p is string => p !== null);

/** Files whose code (comments aside) matches `re`. */
const filesMatching = (re: RegExp) =>
  FILES.filter((f) => re.test(stripComments(f.text)))
    .map((f) => f.path)
    .sort();

// Ways to send an SDK command: its Command class, and the paginators, waiters and aggregated
// client methods that send it without naming the class.
const SENDS_DESCRIBE_INSTANCES =
  /\bDescribeInstancesCommand\b|\bpaginateDescribeInstances\b|\bwaitUntilInstance\w*\b|\.describeInstances\s*\(/;
const SENDS_SEND_COMMAND = /\bSendCommandCommand\b|\bwaitUntilCommandExecuted\b/;

describe("the scanner", () => {
  it("reads static, multi-line, type-only, re-exported and dynamic imports, and skips comments", () => {
    const text = [
      'import a from "pkg-a";',
      "import {",
      "  B,",
      "  type C,",
      '} from "./b.js";',
      'import type { D } from "../d.js";',
      'export { E } from "pkg-e";',
      'export * from "./f.js";',
      'import "side-effect";',
      'const g = await import("./g.js");',
      '/* import x from "commented-out"; */',
      '// import y from "also-commented";',
      'const s = "from \\"not-an-import\\"";',
    ].join("\n");

    expect(importSpecifiers(text)).toEqual(
      expect.arrayContaining([
        "pkg-a",
        "./b.js",
        "../d.js",
        "pkg-e",
        "./f.js",
        "side-effect",
        "./g.js",
      ]),
    );
    expect(importSpecifiers(text)).not.toContain("commented-out");
    expect(importSpecifiers(text)).not.toContain("also-commented");
    expect(importSpecifiers(text)).toHaveLength(7);
  });

  it("sees the modules the rules are about (a blind scanner would pass every rule)", () => {
    const paths = FILES.map((f) => f.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        "lib/compute/instances.ts",
        "lib/compute/commands.ts",
        "lib/compute/clients.ts",
        "lib/config.ts",
        "functions/local.ts",
        "lib/localcloud/index.ts",
      ]),
    );
    const instances = FILES.find((f) => f.path === "lib/compute/instances.ts");
    expect(instances && importsOf(instances)).toContain("@aws-sdk/client-ec2");
    const local = FILES.find((f) => f.path === "functions/local.ts");
    expect(local && localImportsOf(local)).toContain("lib/localcloud/index.ts");
  });
});

describe("module rules (SPEC §1)", () => {
  it("only lib/compute/ imports the EC2, SSM and S3 clients and the presigner", () => {
    const offenders = FILES.flatMap((f) =>
      importsOf(f)
        .filter((s) => AWS_PACKAGES.some((p) => s === p || s.startsWith(`${p}/`)))
        .filter(() => !f.path.startsWith("lib/compute/"))
        .map((s) => `${f.path} imports ${s}`),
    );

    expect(offenders).toEqual([]);
  });

  it("exactly one module sends DescribeInstancesCommand: lib/compute/instances.ts", () => {
    expect(filesMatching(SENDS_DESCRIBE_INSTANCES)).toEqual(["lib/compute/instances.ts"]);
  });

  it("exactly one module sends SendCommandCommand: lib/compute/commands.ts", () => {
    expect(filesMatching(SENDS_SEND_COMMAND)).toEqual(["lib/compute/commands.ts"]);
  });

  it("what commands.ts sends is a Program made by the quoting builder", () => {
    const commands = FILES.find((f) => f.path === "lib/compute/commands.ts")?.text ?? "";
    expect(commands).toMatch(/import type \{ Program \} from "\.\/script\.js"/);
    expect(commands).toMatch(/export async function sendCommand\([^)]*\bscript: Program\b/);
    expect(commands).toMatch(/commands: \[script\.text\]/);
  });

  it("no module builds an aggregated EC2 or SSM client, which sends commands by method name", () => {
    expect(filesMatching(/\bnew\s+(?:EC2|SSM)\s*\(/)).toEqual([]);
  });

  it("nothing but functions/local.ts imports lib/localcloud/", () => {
    const importers = FILES.filter((f) => !f.path.startsWith("lib/localcloud/"))
      .filter((f) => localImportsOf(f).some((p) => p.startsWith("lib/localcloud/")))
      .map((f) => f.path);

    expect(importers).toEqual(["functions/local.ts"]);
  });

  it("lib/localcloud/ imports nothing else from lib/", () => {
    const offenders = FILES.filter((f) => f.path.startsWith("lib/localcloud/")).flatMap((f) =>
      localImportsOf(f)
        .filter((p) => !p.startsWith("lib/localcloud/"))
        .map((p) => `${f.path} imports ${p}`),
    );

    expect(offenders).toEqual([]);
  });

  it("no process.env in lib/ outside lib/config.ts", () => {
    // Allowed, and nothing wider: the standalone local cloud entry reads its port and dir, and
    // the local cloud hands the host's PATH to the shells it runs as simulated instances.
    const allowed: Record<string, RegExp> = {
      "lib/config.ts": /.*/,
      "lib/localcloud/main.ts": /.*/,
      "lib/localcloud/fleet.ts": /^process\.env\.PATH$/,
      "lib/localcloud/runcommand.ts": /^process\.env\.PATH$/,
    };
    const uses =
      /process\s*(?:\.\s*env(?:\s*\.\s*\w+)?|\[\s*["']env["']\s*\])|\{[^}]*\benv\b[^}]*\}\s*=\s*process\b/g;
    const offenders = FILES.filter((f) => f.path.startsWith("lib/")).flatMap((f) =>
      [...stripComments(f.text).matchAll(uses)]
        .map((m) => m[0].replace(/\s+/g, ""))
        .filter((use) => !allowed[f.path]?.test(use))
        .map((use) => `${f.path}: ${use}`),
    );

    expect(offenders).toEqual([]);
  });
});
