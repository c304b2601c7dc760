/**
 * Runs the bundled SST program (see sst-program.ts) under Pulumi's mocks, in its own process
 * (Pulumi's runtime state is process-global). Started as
 * `node --import tsx test/infra/sst-program-child.ts <request.json>`; writes the snapshot to the
 * request's `out` path.
 *
 * What stands in for the SST CLI here:
 * - the loopback RPC server the platform code calls (`SST_SERVER`): `Provider.Aws.Bootstrap`
 *   answers a fake asset bucket, `Runtime.Build` records the function build request and answers
 *   an empty directory (the real bundle is checked by test/infra/bundle.test.ts);
 * - `SST_SECRET_<Name>` variables, as the CLI sets them from the stage's secrets;
 * - mocked provider calls: partition, region, account, default VPC, subnets, and
 *   `getPolicyDocument`, rendered into the IAM JSON AWS would receive.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import {
  MOCK_ACCOUNT as ACCOUNT,
  MOCK_SUBNETS,
  mockId,
  mockOutputs,
  MOCK_REGION as REGION,
} from "./mock-cloud.js";
import type { ProgramRequest, ProgramSnapshot, RecordedResource } from "./sst-program.js";

interface MockResourceArgs {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
}
interface MockCallArgs {
  token: string;
  inputs: Record<string, unknown>;
}
interface PulumiRuntime {
  setMocks(
    mocks: {
      newResource(args: MockResourceArgs): { id: string; state: Record<string, unknown> };
      call(args: MockCallArgs): Record<string, unknown>;
    },
    project: string,
    stack: string,
    preview: boolean,
  ): Promise<void>;
  runInPulumiStack(init: () => Promise<unknown>): Promise<unknown>;
  disconnect(): Promise<void>;
}

const request = JSON.parse(readFileSync(process.argv[2] ?? "", "utf8")) as ProgramRequest;
const pulumi = createRequire(join(request.platformDir, "package.json"))("@pulumi/pulumi") as {
  runtime: PulumiRuntime;
  output(value: unknown): { apply(fn: (value: unknown) => unknown): unknown };
};

const resources: RecordedResource[] = [];
const rpcCalls: { method: string; args: unknown }[] = [];
const invokes: string[] = [];

// --- the CLI's RPC server -------------------------------------------------------------------
const server = createServer((req, res) => {
  let body = "";
  req.on("data", (chunk: Buffer) => {
    body += chunk.toString("utf8");
  });
  req.on("end", () => {
    const { method, params } = JSON.parse(body) as { method: string; params: unknown[] };
    const args = params[0] as Record<string, unknown>;
    rpcCalls.push({ method, args });
    const reply = (result: unknown, error: string | null = null) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ id: null, result, error }));
    };
    switch (method) {
      case "Provider.Aws.Bootstrap":
        return reply({
          asset: "sst-asset-bucket",
          assetEcrRegistryId: ACCOUNT,
          assetEcrUrl: `${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com/sst-asset`,
          state: "sst-state-bucket",
          appsyncHttp: "",
          appsyncRealtime: "",
        });
      case "Runtime.Build": {
        const out = join(request.workDir, "builds", String(args.functionID));
        mkdirSync(out, { recursive: true });
        writeFileSync(join(out, "placeholder.txt"), "bundle checked by bundle.test.ts\n");
        const handler = String(args.handler).replace(/^.*\//, "");
        return reply({ handler: `functions/${handler}`, out, errors: [], sourcemaps: [] });
      }
      default:
        return reply(null, `rpc: can't find method ${method}`);
    }
  });
});
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
process.env.SST_SERVER = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
for (const [name, value] of Object.entries(request.secrets)) {
  process.env[`SST_SECRET_${name}`] = value;
}

// --- Pulumi mocks ---------------------------------------------------------------------------
type Statement = {
  effect?: string;
  actions?: string[];
  resources?: string[];
  principals?: { type: string; identifiers: string[] }[];
  conditions?: { test: string; variable: string; values: string[] }[];
};

/** What `aws.iam.getPolicyDocument` would render for these statements. */
function policyJson(statements: Statement[]): string {
  return JSON.stringify({
    Version: "2012-10-17",
    Statement: statements.map((s) => ({
      Effect: s.effect ?? "Allow",
      Action: s.actions,
      Resource: s.resources,
      ...(s.principals && {
        Principal: Object.fromEntries(s.principals.map((p) => [p.type, p.identifiers])),
      }),
      ...(s.conditions && {
        Condition: Object.fromEntries(
          s.conditions.map((c) => [c.test, { [c.variable]: c.values }] as const),
        ),
      }),
    })),
  });
}

await pulumi.runtime.setMocks(
  {
    newResource({ type, name, inputs }) {
      resources.push({ type, name, inputs });
      return { id: mockId(type, name), state: { ...inputs, ...mockOutputs(type, name, inputs) } };
    },
    call({ token, inputs }) {
      invokes.push(token);
      switch (token) {
        case "aws:index/getPartition:getPartition":
          return { id: "aws", partition: "aws", dnsSuffix: "amazonaws.com" };
        case "aws:index/getRegion:getRegion":
          return { id: REGION, name: REGION, region: REGION };
        case "aws:index/getCallerIdentity:getCallerIdentity":
          return { id: ACCOUNT, accountId: ACCOUNT, arn: `arn:aws:iam::${ACCOUNT}:user/ci` };
        case "aws:ec2/getVpc:getVpc":
          return { id: "vpc-default", default: true };
        case "aws:ec2/getSubnets:getSubnets":
          return { id: "subnets", ids: MOCK_SUBNETS };
        case "aws:iam/getPolicyDocument:getPolicyDocument": {
          const statements = (inputs.statements ?? []) as Statement[];
          return { id: "policy", json: policyJson(statements), statements };
        }
        default:
          throw new Error(`unmocked provider call ${token}`);
      }
    },
  },
  request.app,
  request.stage,
  false,
);

const outputs = await pulumi.runtime.runInPulumiStack(async () => {
  const program = (await import(pathToFileURL(request.bundle).href)) as { default: unknown };
  return program.default;
});
const resolvedOutputs = await new Promise((resolve) => {
  pulumi.output(outputs).apply(resolve);
});
await pulumi.runtime.disconnect();
server.close();

const snapshot: ProgramSnapshot = {
  resources,
  rpcCalls,
  invokes,
  outputs: (resolvedOutputs ?? {}) as Record<string, unknown>,
};
writeFileSync(request.out, JSON.stringify(snapshot));
process.exit(0);
