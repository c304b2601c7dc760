import { readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { LAMBDA_EXTERNALS } from "../../infra/bundling.js";
import { EC2_STATE_CHANGE_PATTERN } from "../../infra/ec2-event-pattern.js";
import {
  API_ACTIONS,
  EC2_EVENT_ACTIONS,
  type PermissionStatement,
  SWEEP_ACTIONS,
  statementsFor,
} from "../../infra/permissions.js";
import { loadConfig } from "../../lib/config.js";
import { STATE_CHANGE_DETAIL_TYPE } from "../../lib/ec2events/event.js";
import { MOCK_SUBNETS, mockId, mockOutputs } from "./mock-cloud.js";
import {
  appConfig,
  evaluateSstProgram,
  PLATFORM_DIR,
  type ProgramSnapshot,
  type RecordedResource,
  sstInstalled,
} from "./sst-program.js";

// The SST program (sst.config.ts + infra/) evaluated offline under Pulumi's mocks: what
// `sst deploy --stage ci` would create, asserted resource by resource.

const STAGE = "ci";
const HANDLERS = [
  "functions/api.handler",
  "functions/sweep.handler",
  "functions/ec2-events.handler",
] as const;
const SECRETS = {
  DatabaseUrl: "postgres://app:secret@ep-test.eu-central-1.aws.neon.tech/neondb",
  AdminToken: "admin-token-from-sst-secret-0123456789",
};

/** Pulumi marks secret values `{<sig>: <secret sig>, value}` on the wire; tests want the value. */
function plain<T>(value: T): T {
  if (Array.isArray(value)) return value.map(plain) as T;
  if (value !== null && typeof value === "object") {
    const obj = value as Record<string, unknown>;
    if ("4dabf18193072939515e22adb298388d" in obj) return plain(obj.value) as T;
    return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, plain(v)])) as T;
  }
  return value;
}

interface IamStatement {
  Effect: string;
  Action: string[];
  Resource: string[];
  Condition?: Record<string, Record<string, string[]>>;
}

/** The statements of infra/permissions.ts as they appear in the rendered policy document. */
function rendered(statements: PermissionStatement[]): IamStatement[] {
  return statements.map((s) => ({
    Effect: "Allow",
    Action: s.actions,
    Resource: s.resources,
    ...(s.conditions && {
      Condition: Object.fromEntries(s.conditions.map((c) => [c.test, { [c.variable]: c.values }])),
    }),
  }));
}

describe("the SST program", () => {
  let snap: ProgramSnapshot;
  const all = (type: string) =>
    snap.resources.filter((r) => r.type === type).map((r) => ({ ...r, inputs: plain(r.inputs) }));
  const one = (type: string, name?: string): RecordedResource => {
    const found = all(type).filter((r) => name === undefined || r.name === name);
    expect(found, `${type} ${name ?? ""}`).toHaveLength(1);
    return found[0] as RecordedResource;
  };
  const fn = (handler: string) => {
    const found = all("aws:lambda/function:Function").filter((r) => r.inputs.handler === handler);
    expect(found, handler).toHaveLength(1);
    return found[0] as RecordedResource;
  };
  const invokeConfigOf = (f: RecordedResource) => {
    const found = all("aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig").filter(
      (c) => c.inputs.functionName === f.inputs.name,
    );
    expect(found).toHaveLength(1);
    return found[0]?.inputs;
  };
  const env = (r: RecordedResource) =>
    (r.inputs.environment as { variables: Record<string, string> }).variables;

  beforeAll(async () => {
    if (!sstInstalled()) {
      throw new Error(
        "run `SST_SKIP_DEPENDENCY_CHECK=1 SST_NO_BUN=1 SST_TELEMETRY_DISABLED=1 npx sst install --stage ci` first",
      );
    }
    snap = await evaluateSstProgram(STAGE, SECRETS);
  });

  it("retains and protects production; other stages are removable", async () => {
    const production = await appConfig("production");
    const ci = await appConfig(STAGE);
    expect([production.removal, production.protect]).toEqual(["retain", true]);
    expect([ci.removal, ci.protect]).toEqual(["remove", false]);
    expect(ci).toMatchObject({ name: "workspace-control-plane", home: "aws" });
  });

  it("pins the aws provider to the version sst install resolved", async () => {
    const installed = JSON.parse(
      readFileSync(join(PLATFORM_DIR, "node_modules", "@pulumi", "aws", "package.json"), "utf8"),
    ) as { version: string };
    expect((await appConfig(STAGE)).providers.aws?.version).toBe(installed.version);
  });

  it("routes $default to the API function through a throttled stage", () => {
    const route = one("aws:apigatewayv2/route:Route");
    expect(route.inputs.routeKey).toBe("$default");
    const integration = one("aws:apigatewayv2/integration:Integration");
    expect(route.inputs.target).toBe(`integrations/${mockId(integration.type, integration.name)}`);
    const api = fn("functions/api.handler");
    expect(integration.inputs).toMatchObject({
      integrationType: "AWS_PROXY",
      integrationUri: mockOutputs(api.type, api.name, api.inputs).arn,
    });
    const stage = one("aws:apigatewayv2/stage:Stage");
    expect(stage.inputs.defaultRouteSettings).toEqual({
      throttlingBurstLimit: 100,
      throttlingRateLimit: 50,
    });
    // API Gateway stops waiting at 30 s.
    expect(api.inputs.timeout).toBeLessThan(30);
  });

  it("runs the sweep every minute, alone, and within the minute", () => {
    const schedule = one("aws:scheduler/schedule:Schedule");
    const sweep = fn("functions/sweep.handler");
    expect(schedule.inputs).toMatchObject({
      scheduleExpression: "rate(1 minute)",
      state: "ENABLED",
      target: {
        arn: mockOutputs(sweep.type, sweep.name, sweep.inputs).arn,
        retryPolicy: { maximumRetryAttempts: 0 },
      },
    });
    expect(sweep.inputs.reservedConcurrentExecutions).toBe(1);
    expect(sweep.inputs.timeout).toBe(50);
    expect(sweep.inputs.timeout).toBeLessThan(60);
    expect(invokeConfigOf(sweep)).toEqual({
      functionName: sweep.inputs.name,
      maximumEventAgeInSeconds: 60,
      maximumRetryAttempts: 0,
    });
  });

  it("hands every EC2 state change to the EC2-event function, fresh, and only from its rule", () => {
    const rule = one("aws:cloudwatch/eventRule:EventRule");
    expect(JSON.parse(String(rule.inputs.eventPattern))).toEqual({
      source: ["aws.ec2"],
      "detail-type": ["EC2 Instance State-change Notification"],
    });
    expect(EC2_STATE_CHANGE_PATTERN["detail-type"]).toEqual([STATE_CHANGE_DETAIL_TYPE]);
    // The default bus: AWS services send their events there.
    expect(rule.inputs.eventBusName).toBeUndefined();
    const events = fn("functions/ec2-events.handler");
    const eventsArn = mockOutputs(events.type, events.name, events.inputs).arn;
    const target = one("aws:cloudwatch/eventTarget:EventTarget");
    const ruleOut = mockOutputs(rule.type, rule.name, rule.inputs);
    expect(target.inputs).toMatchObject({
      rule: ruleOut.name,
      arn: eventsArn,
      retryPolicy: { maximumEventAgeInSeconds: 300, maximumRetryAttempts: 185 },
    });
    const permission = all("aws:lambda/permission:Permission").filter(
      (p) => p.inputs.principal === "events.amazonaws.com",
    );
    expect(permission).toHaveLength(1);
    expect(permission[0]?.inputs).toMatchObject({
      action: "lambda:InvokeFunction",
      function: events.inputs.name,
      sourceArn: ruleOut.arn,
    });
    expect(events.inputs.timeout).toBe(30);
    expect(invokeConfigOf(events)).toEqual({
      functionName: events.inputs.name,
      maximumEventAgeInSeconds: 300,
      maximumRetryAttempts: 2,
    });
  });

  it("runs every function on nodejs22.x arm64 with a split ESM bundle that leaves PGlite out", () => {
    for (const handler of HANDLERS) {
      expect(fn(handler).inputs).toMatchObject({ runtime: "nodejs22.x", architectures: ["arm64"] });
    }
    const builds = snap.rpcCalls.filter((c) => c.method === "Runtime.Build");
    expect(builds.map((b) => (b.args as { handler: string }).handler).sort()).toEqual(
      [...HANDLERS].sort(),
    );
    for (const build of builds) {
      const { properties } = build.args as { properties: Record<string, unknown> };
      expect(properties).toEqual({
        format: "esm",
        minify: true,
        splitting: true,
        plugins: "infra/esbuild-plugins.mjs",
        esbuild: { external: LAMBDA_EXTERNALS },
        architecture: "arm64",
      });
    }
    expect(LAMBDA_EXTERNALS).toContain("@electric-sql/pglite");
  });

  it("hands every function the secrets and the infrastructure as valid Lambda settings", () => {
    const bucket = one("aws:s3/bucket:Bucket");
    const bucketName = mockOutputs(bucket.type, bucket.name, bucket.inputs).bucket;
    const profile = one("aws:iam/instanceProfile:InstanceProfile");
    const api = one("aws:apigatewayv2/api:Api");
    const expected = {
      ADMIN_TOKEN: SECRETS.AdminToken,
      DATABASE_URL: SECRETS.DatabaseUrl,
      DEPLOYMENT_ID: `workspace-control-plane-${STAGE}`,
      PLATFORM_URL: mockOutputs(api.type, api.name, api.inputs).apiEndpoint,
      STAGING_BUCKET: bucketName,
      WORKSPACE_INSTANCE_PROFILE: mockOutputs(profile.type, profile.name, profile.inputs).name,
      WORKSPACE_SUBNET_IDS: MOCK_SUBNETS.join(","),
      WORKSPACE_SECURITY_GROUP_IDS: mockId(
        "aws:ec2/securityGroup:SecurityGroup",
        "WorkspaceSecurityGroup",
      ),
    };
    for (const handler of HANDLERS) {
      const variables = env(fn(handler));
      expect(variables).toMatchObject(expected);
      // What lib/config.ts makes of it: nothing missing, nothing malformed.
      const config = loadConfig(variables, "lambda");
      expect(config).toMatchObject({
        adminToken: SECRETS.AdminToken,
        databaseUrl: SECRETS.DatabaseUrl,
        deploymentId: expected.DEPLOYMENT_ID,
        stagingBucket: bucketName,
        workspaceSubnetIds: MOCK_SUBNETS,
        workspaceSecurityGroupIds: [expected.WORKSPACE_SECURITY_GROUP_IDS],
      });
    }
  });

  it("keeps staged archives (restarts re-apply them), expires commands' output after 30 days, and allows neither public nor plain-HTTP access", () => {
    const [lifecycle, ...others] = all(
      "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    );
    expect(others).toEqual([]);
    // One rule, for the commands/ prefix only: plugin archives under plugins/ never expire.
    expect(lifecycle?.inputs.rules).toEqual([
      {
        id: "expire-command-output",
        status: "Enabled",
        expiration: { days: 30 },
        filter: { prefix: "commands/" },
      },
    ]);
    expect(one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs).toMatchObject({
      blockPublicAcls: true,
      blockPublicPolicy: true,
      ignorePublicAcls: true,
      restrictPublicBuckets: true,
    });
    expect(all("aws:s3/bucketCorsConfiguration:BucketCorsConfiguration")).toEqual([]);
    const policy = JSON.parse(String(one("aws:s3/bucketPolicy:BucketPolicy").inputs.policy)) as {
      Statement: IamStatement[];
    };
    expect(policy.Statement).toContainEqual(
      expect.objectContaining({
        Effect: "Deny",
        Action: ["s3:*"],
        Condition: { Bool: { "aws:SecureTransport": ["false"] } },
      }),
    );
  });

  it("gives workspace instances an SSM-managed role that may only put command output, and a security group with no inbound rule", () => {
    const role = one("aws:iam/role:Role", "WorkspaceInstanceRole");
    expect(role.inputs.assumeRolePolicy).toMatchObject({
      Statement: [{ Action: "sts:AssumeRole", Principal: { Service: "ec2.amazonaws.com" } }],
    });
    const roleName = mockOutputs(role.type, role.name, role.inputs).name;
    expect(one("aws:iam/rolePolicyAttachment:RolePolicyAttachment").inputs).toEqual({
      role: roleName,
      policyArn: "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
    });
    expect(one("aws:iam/instanceProfile:InstanceProfile").inputs).toEqual({ role: roleName });
    // The SSM agent uploads commands' output with the instance's role: under commands/ only.
    const bucket = one("aws:s3/bucket:Bucket");
    const bucketArn = mockOutputs(bucket.type, bucket.name, bucket.inputs).arn;
    const output = one("aws:iam/rolePolicy:RolePolicy", "WorkspaceInstanceCommandOutput");
    expect(output.inputs.role).toBe(roleName);
    expect(JSON.parse(String(output.inputs.policy))).toEqual({
      Version: "2012-10-17",
      Statement: [
        { Effect: "Allow", Action: ["s3:PutObject"], Resource: [`${bucketArn}/commands/*`] },
      ],
    });
    const sg = one("aws:ec2/securityGroup:SecurityGroup");
    expect(sg.inputs.ingress).toEqual([]);
    expect(sg.inputs.vpcId).toBe("vpc-default");
  });

  it("attaches to each function exactly the statements of infra/permissions.ts, trusted by Lambda only", () => {
    const bucket = one("aws:s3/bucket:Bucket");
    const instanceRole = one("aws:iam/role:Role", "WorkspaceInstanceRole");
    const sg = one("aws:ec2/securityGroup:SecurityGroup");
    const targets = {
      deploymentId: `workspace-control-plane-${STAGE}`,
      stagingObjectsArn: `${mockOutputs(bucket.type, bucket.name, bucket.inputs).arn}/*`,
      instanceRoleArn: String(
        mockOutputs(instanceRole.type, instanceRole.name, instanceRole.inputs).arn,
      ),
      securityGroupArn: String(mockOutputs(sg.type, sg.name, sg.inputs).arn),
    };
    for (const [handler, actions] of [
      ["functions/api.handler", API_ACTIONS],
      ["functions/sweep.handler", SWEEP_ACTIONS],
      ["functions/ec2-events.handler", EC2_EVENT_ACTIONS],
    ] as const) {
      const roleArn = fn(handler).inputs.role;
      const role = all("aws:iam/role:Role").find(
        (r) => mockOutputs(r.type, r.name, r.inputs).arn === roleArn,
      );
      expect(role, handler).toBeDefined();
      const policies = role?.inputs.inlinePolicies as { name: string; policy: string }[];
      expect(policies).toHaveLength(1);
      const document = JSON.parse(policies[0]?.policy ?? "{}") as { Statement: IamStatement[] };
      expect(document.Statement).toEqual(rendered(statementsFor(actions, targets)));
      expect(role?.inputs.assumeRolePolicy).toEqual({
        Version: "2012-10-17",
        Statement: [
          {
            Sid: "AllowAssumeRole",
            Effect: "Allow",
            Action: "sts:AssumeRole",
            Principal: { Service: "lambda.amazonaws.com" },
          },
        ],
      });
    }
  });

  it("asks the CLI only for function builds and the bootstrap bucket", () => {
    expect(new Set(snap.rpcCalls.map((c) => c.method))).toEqual(
      new Set(["Runtime.Build", "Provider.Aws.Bootstrap"]),
    );
    expect(snap.outputs).toMatchObject({ _protect: false });
  });
});
