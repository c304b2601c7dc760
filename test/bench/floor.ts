import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { actionsSentByBundle, clientPackageOf } from "../infra/aws-calls.js";
import { buildAsSst, buildLambdaBundle, type LambdaBundle, type LambdaName } from "./bundle.js";

// A function's cold-start floor: a bundle of only what it cannot do without — hono (for the
// api, which serves HTTP), the AWS SDK clients with exactly the commands that function's own
// bundle sends, and the database driver its Lambda uses (Neon's Pool over ws, lib/db/client.ts)
// — built and imported the same way, made ready the same way (clients and pool built at module
// scope). Whatever the real bundle loads beyond it (drizzle, zod, the OpenAPI helpers, the
// logger, our own code) is the distance to the floor.

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface FloorSpec {
  /** The function serves HTTP through hono's Lambda adapter. */
  http: boolean;
  /** IAM actions the function sends (`ec2:RunInstances`…). */
  actions: string[];
}

/** What each function's floor holds, read from its real bundle (unminified, into `dir`). */
export async function floorSpec(name: LambdaName, dir: string): Promise<FloorSpec> {
  const bundle = await buildLambdaBundle(name, dir, { minify: false });
  const text = bundle.files.map((f) => readFileSync(f, "utf8")).join("\n");
  return { http: name === "api", actions: actionsSentByBundle(text) };
}

const CLIENT_CLASS: Record<string, string> = {
  "client-ec2": "EC2Client",
  "client-ssm": "SSMClient",
  "client-s3": "S3Client",
};

/** The floor's source: the clients and commands of `spec`, the driver, and a handler. */
export function floorSource(spec: FloorSpec): string {
  const byPackage = new Map<string, string[]>();
  for (const action of spec.actions) {
    const [prefix = "", command = ""] = action.split(":");
    const pkg = clientPackageOf(prefix);
    byPackage.set(pkg, [...(byPackage.get(pkg) ?? []), `${command}Command`]);
  }
  const clients = [...byPackage.keys()].map((pkg) => {
    const cls = CLIENT_CLASS[pkg];
    if (cls === undefined) throw new Error(`no client class known for @aws-sdk/${pkg}`);
    return cls;
  });
  const lines = [
    ...(spec.http
      ? ['import { Hono } from "hono";', 'import { handle } from "hono/aws-lambda";']
      : []),
    ...[...byPackage].map(
      ([pkg, commands], i) =>
        `import { ${[clients[i], ...commands].join(", ")} } from "@aws-sdk/${pkg}";`,
    ),
    'import { neonConfig, Pool } from "@neondatabase/serverless";',
    'import ws from "ws";',
    "neonConfig.webSocketConstructor ??= ws;",
    "const pool = new Pool({ connectionString: process.env.DATABASE_URL, max: 4 });",
    "const region = process.env.AWS_REGION;",
    `const clients = [${clients.map((c) => `new ${c}({ region })`).join(", ")}];`,
    `const commands = [${[...byPackage.values()].flat().join(", ")}];`,
    "const ready = () => ({ clients: clients.length, commands: commands.map((c) => c.name), idle: pool.idleCount });",
    spec.http
      ? 'export const handler = handle(new Hono().get("/", (c) => c.json(ready())));'
      : "export const handler = async () => ready();",
  ];
  return `${lines.join("\n")}\n`;
}

/** Builds `name`'s floor into `dir` (its source is written under `.data/bench/`, git-ignored). */
export async function buildFloorBundle(
  name: LambdaName,
  spec: FloorSpec,
  dir: string,
): Promise<LambdaBundle> {
  // Inside the project, so the floor resolves the same node_modules the real bundle does.
  const srcDir = join(ROOT, ".data", "bench", "floor");
  mkdirSync(srcDir, { recursive: true });
  const entry = join(srcDir, `${name}-floor.ts`);
  writeFileSync(entry, floorSource(spec));
  return buildAsSst(entry, join(dir, `${name}-floor`));
}
