import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The IAM actions the code needs, derived from the code itself: every `new XxxCommand(` sent
 * through an AWS SDK v3 client in `lib/` (the local cloud excepted: it serves these calls, it
 * does not send them), plus the permissions AWS checks implicitly for some of those calls.
 */

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** SDK client package → IAM service prefix. A new client must be added here on purpose. */
const SERVICE_PREFIX: Record<string, string> = {
  "client-ec2": "ec2",
  "client-ssm": "ssm",
  "client-s3": "s3",
};

/** `lib/**\/*.ts` outside `lib/localcloud/`, relative to the project root. */
export function sourceFiles(): string[] {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      const rel = relative(ROOT, path);
      if (entry.isDirectory()) {
        if (rel !== join("lib", "localcloud")) walk(path);
      } else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts")) {
        files.push(rel);
      }
    }
  };
  walk(join(ROOT, "lib"));
  return files.sort();
}

/** Names imported from `@aws-sdk/client-*` in a source text, with their package. */
function sdkImports(text: string): Map<string, string> {
  const names = new Map<string, string>();
  for (const m of text.matchAll(
    /import\s*(?:type\s*)?\{([^}]*)\}\s*from\s*"@aws-sdk\/(client-[\w-]+)"/g,
  )) {
    for (const spec of (m[1] ?? "").split(",")) {
      const local = spec
        .trim()
        .replace(/^type\s+/, "")
        .split(/\s+as\s+/)
        .at(-1);
      if (local) names.set(local, m[2] ?? "");
    }
  }
  return names;
}

/** `new XxxCommand(` → `Xxx`, in order of appearance (esbuild may suffix a renamed class: `Xxx2`). */
function constructedCommands(text: string): string[] {
  return [...text.matchAll(/\bnew\s+([A-Z]\w*?)Command\d*\s*\(/g)].map((m) => m[1] ?? "");
}

export interface SentCommand {
  /** e.g. `ec2:RunInstances` */
  action: string;
  file: string;
}

/** Every SDK command each source file constructs, as IAM actions. */
export function commandsInSource(files = sourceFiles()): SentCommand[] {
  const sent: SentCommand[] = [];
  for (const file of files) {
    const text = readFileSync(join(ROOT, file), "utf8");
    const imports = sdkImports(text);
    for (const name of constructedCommands(text)) {
      const pkg = imports.get(`${name}Command`);
      if (pkg === undefined) continue; // not an SDK command (none exist in lib/ today)
      const prefix = SERVICE_PREFIX[pkg];
      if (prefix === undefined) throw new Error(`${file}: no IAM prefix for @aws-sdk/${pkg}`);
      sent.push({ action: `${prefix}:${name}`, file });
    }
  }
  return sent;
}

/** Which SDK command names map to which action, learnt from the sources (bundles lose imports). */
export function commandActionsByName(): Map<string, string> {
  const byName = new Map<string, string>();
  for (const { action } of commandsInSource()) byName.set(action.split(":")[1] ?? "", action);
  return byName;
}

/**
 * Permissions AWS checks on top of the action itself, for the way `lib/` sends it:
 * - RunInstances with `TagSpecifications` also authorizes `ec2:CreateTags`;
 * - RunInstances with `IamInstanceProfile` needs `iam:PassRole` on the profile's role;
 * - RunInstances with an `ImageId` of `resolve:ssm:…` (the default WORKSPACE_AMI) needs
 *   `ssm:GetParameters` to resolve it.
 * `launchSource` is the text of the module that sends RunInstances.
 */
export function implicitActions(actions: Set<string>, launchSource: string): string[] {
  if (!actions.has("ec2:RunInstances")) return [];
  const implicit: string[] = [];
  if (/TagSpecifications\s*:/.test(launchSource)) implicit.push("ec2:CreateTags");
  if (/IamInstanceProfile\s*:/.test(launchSource)) implicit.push("iam:PassRole");
  const config = readFileSync(join(ROOT, "lib", "config.ts"), "utf8");
  if (/DEFAULT_AMI\s*=\s*\n?\s*"resolve:ssm:/.test(config)) implicit.push("ssm:GetParameters");
  return implicit;
}

/** The IAM actions `lib/` needs as a whole, sorted. */
export function actionsNeededByLib(): string[] {
  const sent = commandsInSource();
  const actions = new Set(sent.map((s) => s.action));
  const launchFiles = sent.filter((s) => s.action === "ec2:RunInstances").map((s) => s.file);
  const launchSource = launchFiles.map((f) => readFileSync(join(ROOT, f), "utf8")).join("\n");
  for (const a of implicitActions(actions, launchSource)) actions.add(a);
  return [...actions].sort();
}

/**
 * The SDK commands one function's bundle sends, as IAM actions (sorted): those constructed by
 * the `lib/` modules esbuild kept after tree-shaking (an unminified bundle marks each module
 * with `// path`).
 */
export function actionsSentByBundle(bundleText: string): string[] {
  return [...sentByBundle(bundleText).actions].sort();
}

function sentByBundle(bundleText: string): { actions: Set<string>; launchSource: string } {
  const byName = commandActionsByName();
  const sections = bundleText.split(/^\/\/ (\S+\.[cm]?[jt]sx?)$/m);
  const actions = new Set<string>();
  let launchSource = "";
  // split() with a capture group alternates [text, path, text, path, text…].
  for (let i = 1; i < sections.length; i += 2) {
    const path = sections[i] ?? "";
    const code = sections[i + 1] ?? "";
    if (!path.startsWith("lib/") || path.startsWith("lib/localcloud/")) continue;
    for (const name of constructedCommands(code)) {
      const action = byName.get(name);
      if (action === undefined) continue;
      actions.add(action);
      if (action === "ec2:RunInstances") launchSource += code;
    }
  }
  return { actions, launchSource };
}

/** The SDK client package (`client-ec2`) behind an IAM service prefix (`ec2`). */
export function clientPackageOf(prefix: string): string {
  const pkg = Object.entries(SERVICE_PREFIX).find(([, p]) => p === prefix)?.[0];
  if (pkg === undefined) throw new Error(`no SDK client for the IAM prefix ${prefix}`);
  return pkg;
}

/**
 * The IAM actions one function's bundle needs: the SDK commands it sends
 * ({@link actionsSentByBundle}) plus the implicit ones.
 */
export function actionsNeededByBundle(bundleText: string): string[] {
  const { actions, launchSource } = sentByBundle(bundleText);
  for (const a of implicitActions(actions, launchSource)) actions.add(a);
  return [...actions].sort();
}
