import { DescribeInstancesCommand } from "@aws-sdk/client-ec2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  al2023ImageParameter,
  defaultImageId,
  defaultInstanceProfile,
  defaultSecurityGroupId,
  defaultSubnetId,
  defaultVpcId,
} from "../../../lib/localcloud/index.js";
import { failure, launch, startTestCloud, type TestCloud } from "./harness.js";

// RunInstances refuses resources the account does not have, as EC2 does.

let t: TestCloud;

beforeAll(async () => {
  t = await startTestCloud({ catalogue: { imageIds: ["ami-0c0ffee0c0ffee0c0"] } });
});

afterAll(async () => {
  await t.close();
});

const instanceCount = async () =>
  (await t.control<{ instances: unknown[] }>("GET", "/instances")).json.instances.length;

/** The error RunInstances answers, after checking that nothing was launched. */
async function refused(input: Parameters<typeof launch>[1]) {
  const before = await instanceCount();
  const err = await failure(launch(t, input));
  expect(await instanceCount()).toBe(before);
  expect(err.$metadata?.httpStatusCode).toBe(400);
  return err;
}

describe("defaults", () => {
  it("launch what npm start sends: the AL2023 parameter, no subnet, group or profile", async () => {
    const id = await launch(t, { ImageId: `resolve:ssm:${al2023ImageParameter}` });

    const out = await t.ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
    const inst = out.Reservations?.[0]?.Instances?.[0];
    expect(inst?.ImageId).toMatch(/^ami-[0-9a-f]{17}$/);
    // The AMI the parameter resolves to exists too.
    expect(await launch(t, { ImageId: inst?.ImageId ?? "" })).toMatch(/^i-/);
  });

  it("launch with every documented default id, and with entries of the catalogue option", async () => {
    expect(
      await launch(t, {
        ImageId: defaultImageId,
        SubnetId: defaultSubnetId,
        SecurityGroupIds: [defaultSecurityGroupId],
        IamInstanceProfile: { Name: defaultInstanceProfile },
      }),
    ).toMatch(/^i-/);
    expect(
      await launch(t, {
        ImageId: "ami-0c0ffee0c0ffee0c0",
        IamInstanceProfile: {
          Arn: `arn:aws:iam::123456789012:instance-profile/${defaultInstanceProfile}`,
        },
      }),
    ).toMatch(/^i-/);
  });

  it("are listed by GET /_localcloud/catalogue", async () => {
    const res = await t.control<Record<string, string[]>>("GET", "/catalogue");

    expect(res.json.imageIds).toEqual(
      expect.arrayContaining([
        defaultImageId,
        `resolve:ssm:${al2023ImageParameter}`,
        "ami-0c0ffee0c0ffee0c0",
      ]),
    );
    expect(res.json.securityGroupIds).toEqual([defaultSecurityGroupId]);
    expect(res.json.subnetIds).toEqual([defaultSubnetId]);
    expect(res.json.instanceProfiles).toEqual([defaultInstanceProfile]);
  });
});

describe("unknown resources are refused with EC2's codes and wording", () => {
  it("an AMI nobody owns: InvalidAMIID.NotFound; a malformed one: InvalidAMIID.Malformed", async () => {
    const unknown = await refused({ ImageId: "ami-0123456789abcdef0" });
    expect(unknown.name).toBe("InvalidAMIID.NotFound");
    expect(unknown.message).toBe("The image id '[ami-0123456789abcdef0]' does not exist");

    const malformed = await refused({ ImageId: "not-an-ami" });
    expect(malformed.name).toBe("InvalidAMIID.Malformed");
    expect(malformed.message).toBe('Invalid id: "not-an-ami" (expecting "ami-...")');

    const parameter = await refused({ ImageId: "resolve:ssm:/no/such/parameter" });
    expect(parameter.name).toBe("InvalidAMIID.NotFound");
  });

  it("a subnet: InvalidSubnetID.NotFound", async () => {
    const err = await refused({ SubnetId: "subnet-0123456789abcdef0" });

    expect(err.name).toBe("InvalidSubnetID.NotFound");
    expect(err.message).toBe("The subnet ID 'subnet-0123456789abcdef0' does not exist");
  });

  it("a security group: InvalidGroup.NotFound naming the VPC; a malformed id: InvalidGroupId.Malformed", async () => {
    const inDefault = await refused({ SecurityGroupIds: ["sg-0123456789abcdef0"] });
    expect(inDefault.name).toBe("InvalidGroup.NotFound");
    expect(inDefault.message).toBe(
      `The security group 'sg-0123456789abcdef0' does not exist in default VPC '${defaultVpcId}'`,
    );

    const inSubnet = await refused({
      SubnetId: defaultSubnetId,
      SecurityGroupIds: [defaultSecurityGroupId, "sg-0123456789abcdef0"],
    });
    expect(inSubnet.message).toBe(
      `The security group 'sg-0123456789abcdef0' does not exist in VPC '${defaultVpcId}'`,
    );

    const malformed = await refused({ SecurityGroupIds: ["sg-1"] });
    expect(malformed.name).toBe("InvalidGroupId.Malformed");

    const byName = await refused({ SecurityGroups: ["default"] });
    expect(byName.name).toBe("InvalidGroup.NotFound");
  });

  it("an instance profile: InvalidParameterValue, by name and by ARN; both at once: InvalidParameterCombination", async () => {
    const name = await refused({ IamInstanceProfile: { Name: "workspace-profile" } });
    expect(name.name).toBe("InvalidParameterValue");
    expect(name.message).toBe(
      "Value (workspace-profile) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name",
    );

    const otherAccount = `arn:aws:iam::210987654321:instance-profile/${defaultInstanceProfile}`;
    const arn = await refused({ IamInstanceProfile: { Arn: otherAccount } });
    expect(arn.name).toBe("InvalidParameterValue");
    expect(arn.message).toBe(
      `Value (${otherAccount}) for parameter iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN`,
    );

    const both = await refused({
      IamInstanceProfile: {
        Name: defaultInstanceProfile,
        Arn: `arn:aws:iam::123456789012:instance-profile/${defaultInstanceProfile}`,
      },
    });
    expect(both.name).toBe("InvalidParameterCombination");
  });
});

describe("POST /_localcloud/catalogue", () => {
  it("adds resources at run time, after which RunInstances takes them", async () => {
    const entries = {
      imageIds: ["ami-0feedface0feedfac"],
      securityGroupIds: ["sg-0feedface0feedfac"],
      subnetIds: ["subnet-0feedface0feedfac"],
      instanceProfiles: ["added-at-run-time"],
    };
    const input = {
      ImageId: "ami-0feedface0feedfac",
      SubnetId: "subnet-0feedface0feedfac",
      SecurityGroupIds: ["sg-0feedface0feedfac"],
      IamInstanceProfile: { Name: "added-at-run-time" },
    };
    expect((await refused(input)).name).toBe("InvalidAMIID.NotFound");

    const res = await t.control<Record<string, string[]>>("POST", "/catalogue", entries);

    expect(res.status).toBe(200);
    expect(res.json.subnetIds).toEqual([defaultSubnetId, "subnet-0feedface0feedfac"].sort());
    expect(await launch(t, input)).toMatch(/^i-/);
  });

  it("refuses ids that are not AWS-shaped and unknown fields", async () => {
    for (const body of [
      { imageIds: ["ami-1"] },
      { securityGroupIds: ["group-1"] },
      { subnetIds: ["subnet-xyz"] },
      { instanceProfiles: ["has space"] },
      { vpcIds: ["vpc-0a1b2c3d4e5f60718"] },
    ]) {
      expect((await t.control("POST", "/catalogue", body)).status).toBe(400);
    }
  });
});
