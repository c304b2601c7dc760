import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  API_ACTIONS,
  COMMAND_OUTPUT_PREFIX,
  catalogueActions,
  DEPLOYMENT_TAG_KEY,
  EC2_EVENT_ACTIONS,
  instanceRoleStatements,
  type PermissionStatement,
  permissionCatalogue,
  RUN_SHELL_DOCUMENT,
  SWEEP_ACTIONS,
  statementsFor,
  UNGRANTED_LIB_ACTIONS,
} from "../../infra/permissions.js";
import { TAG_DEPLOYMENT } from "../../lib/compute/launch.js";
import { COMMAND_OUTPUT_PREFIX as LIB_COMMAND_OUTPUT_PREFIX } from "../../lib/compute/staging-bucket.js";
import { buildLambdaBundle, type LambdaName } from "../bench/bundle.js";
import { actionsNeededByBundle, actionsNeededByLib, ROOT } from "./aws-calls.js";

// IAM = code: the actions infra/permissions.ts grants are exactly the AWS SDK commands the code
// sends (and the permissions AWS checks implicitly for them) — nothing missing, nothing extra.

const targets = {
  deploymentId: "wcp-test",
  stagingObjectsArn: "arn:aws:s3:::staging/*",
  instanceRoleArn: "arn:aws:iam::123456789012:role/workspace",
  securityGroupArn: "arn:aws:ec2:us-east-1:123456789012:security-group/sg-1",
};
const catalogue = permissionCatalogue(targets);
const sorted = (xs: readonly string[]) => [...new Set(xs)].sort();
const grantsOf = (action: string) => catalogue.filter((s) => s.actions.includes(action));
const condition = (s: PermissionStatement, variable: string) =>
  s.conditions?.find((c) => c.variable === variable);

describe("IAM = code", () => {
  const bundles: Partial<Record<LambdaName, string>> = {};
  let dir = "";
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "wcp-iam-"));
    for (const name of ["api", "sweep", "ec2-events"] as const) {
      const bundle = await buildLambdaBundle(name, dir, { minify: false });
      // Every chunk: a command sent from a lazily loaded chunk needs its grant all the same.
      bundles[name] = bundle.files.map((f) => readFileSync(f, "utf8")).join("\n");
    }
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("grants exactly the actions the SDK commands in lib/ need", () => {
    // Prepare
    const needed = actionsNeededByLib();

    // Assess
    expect(needed).toContain("ec2:RunInstances"); // the scan itself works
    expect(catalogueActions()).toEqual(needed);
  });

  it("gives the API function exactly what its bundle sends", () => {
    expect(sorted(API_ACTIONS)).toEqual(actionsNeededByBundle(bundles.api ?? ""));
    expect(sorted([...API_ACTIONS, ...SWEEP_ACTIONS, ...UNGRANTED_LIB_ACTIONS])).toEqual(
      actionsNeededByLib(),
    );
  });

  it("gives the sweep function exactly what its bundle sends", () => {
    expect(sorted(SWEEP_ACTIONS)).toEqual(actionsNeededByBundle(bundles.sweep ?? ""));
  });

  it("gives the EC2-event function exactly what its bundle sends: nothing that changes an instance", () => {
    expect(sorted(EC2_EVENT_ACTIONS)).toEqual(actionsNeededByBundle(bundles["ec2-events"] ?? ""));
    expect(sorted(EC2_EVENT_ACTIONS)).toEqual([
      "ec2:DescribeInstances",
      "ssm:DescribeInstanceInformation",
    ]);
  });

  it("scopes by the tag, the document and the output prefix the code actually uses", () => {
    expect(DEPLOYMENT_TAG_KEY).toBe(TAG_DEPLOYMENT);
    expect(COMMAND_OUTPUT_PREFIX).toBe(LIB_COMMAND_OUTPUT_PREFIX);
    const commands = readFileSync(join(ROOT, "lib", "compute", "commands.ts"), "utf8");
    expect(commands).toContain(`DocumentName: "${RUN_SHELL_DOCUMENT}"`);
  });
});

describe("least privilege", () => {
  const own = ["wcp-test"];

  it("launches only instances and volumes tagged with this deployment", () => {
    const tagged = grantsOf("ec2:RunInstances").find((s) =>
      s.resources.includes("arn:aws:ec2:*:*:instance/*"),
    );
    expect(tagged?.resources).toEqual(["arn:aws:ec2:*:*:instance/*", "arn:aws:ec2:*:*:volume/*"]);
    expect(condition(tagged as PermissionStatement, "aws:RequestTag/wcp:deployment")).toEqual({
      test: "StringEquals",
      variable: "aws:RequestTag/wcp:deployment",
      values: own,
    });
    // The untagged resources of a launch never include instances, and the only security group
    // is ours.
    const untagged = grantsOf("ec2:RunInstances").filter((s) => s !== tagged);
    for (const s of untagged) {
      expect(s.conditions).toBeUndefined();
      expect(s.resources.some((r) => /instance\/|volume\/|^\*$/.test(r))).toBe(false);
      expect(s.resources.filter((r) => r.includes("security-group"))).toEqual([
        targets.securityGroupArn,
      ]);
    }
  });

  it("allows CreateTags only as part of RunInstances", () => {
    const [createTags, ...more] = grantsOf("ec2:CreateTags");
    expect(more).toEqual([]);
    expect(createTags?.conditions).toEqual([
      { test: "StringEquals", variable: "ec2:CreateAction", values: ["RunInstances"] },
    ]);
  });

  it("terminates, reads consoles of and runs commands on this deployment's instances only", () => {
    for (const [action, key] of [
      ["ec2:TerminateInstances", "ec2:ResourceTag/wcp:deployment"],
      ["ec2:GetConsoleOutput", "ec2:ResourceTag/wcp:deployment"],
    ] as const) {
      const grants = grantsOf(action);
      expect(grants).toHaveLength(1);
      expect(grants[0]?.resources).toEqual(["arn:aws:ec2:*:*:instance/*"]);
      expect(condition(grants[0] as PermissionStatement, key)?.values).toEqual(own);
    }
    const send = grantsOf("ssm:SendCommand");
    expect(send).toHaveLength(2);
    const onInstances = send.find((s) => s.resources.includes("arn:aws:ec2:*:*:instance/*"));
    expect(condition(onInstances as PermissionStatement, "ssm:resourceTag/wcp:deployment")).toEqual(
      { test: "StringEquals", variable: "ssm:resourceTag/wcp:deployment", values: own },
    );
    const onDocument = send.find((s) => s !== onInstances);
    expect(onDocument?.resources).toEqual(["arn:aws:ssm:*::document/AWS-RunShellScript"]);
  });

  it("passes only the instance role, and only to EC2", () => {
    expect(grantsOf("iam:PassRole")).toEqual([
      {
        actions: ["iam:PassRole"],
        resources: [targets.instanceRoleArn],
        conditions: [
          { test: "StringEquals", variable: "iam:PassedToService", values: ["ec2.amazonaws.com"] },
        ],
      },
    ]);
  });

  it("touches only the staging bucket's objects", () => {
    const s3 = catalogue.filter((s) => s.actions.some((a) => a.startsWith("s3:")));
    expect(s3).toEqual([
      { actions: ["s3:PutObject", "s3:GetObject"], resources: [targets.stagingObjectsArn] },
    ]);
  });

  it("lets workspace instances put objects under commands/ of the staging bucket, nothing else", () => {
    expect(instanceRoleStatements("arn:aws:s3:::staging/commands/*")).toEqual([
      { actions: ["s3:PutObject"], resources: ["arn:aws:s3:::staging/commands/*"] },
    ]);
  });

  it("grants the API CancelCommand, for the commands API's cancel route", () => {
    expect(API_ACTIONS).toContain("ssm:CancelCommand");
    expect(SWEEP_ACTIONS).not.toContain("ssm:CancelCommand");
  });

  it('uses Resource "*" only for actions without resource-level permissions', () => {
    const star = catalogue.filter((s) => s.resources.includes("*"));
    expect(sorted(star.flatMap((s) => s.actions))).toEqual([
      "ec2:DescribeInstances",
      "ssm:CancelCommand",
      "ssm:DescribeInstanceInformation",
      "ssm:GetCommandInvocation",
      "ssm:ListCommands",
    ]);
    for (const s of star) expect(s.resources).toEqual(["*"]);
  });

  it("cuts the statements down to a function's actions and refuses undefined ones", () => {
    const sweep = statementsFor(SWEEP_ACTIONS, targets);
    expect(sorted(sweep.flatMap((s) => s.actions))).toEqual(sorted(SWEEP_ACTIONS));
    expect(() => statementsFor(["ec2:RebootInstances"], targets)).toThrow(/ec2:RebootInstances/);
  });
});
