import { z } from "zod";
import { CloudError } from "./errors.js";
import { amiForParameter } from "./ids.js";

/**
 * The resources the simulated account owns, so RunInstances refuses what AWS would refuse: an
 * AMI, security group, subnet or instance profile nobody created. The local cloud has one VPC.
 */

/** The one VPC; every subnet and security group of the catalogue is in it. */
export const defaultVpcId = "vpc-0a1b2c3d4e5f60718";
export const accountId = "123456789012";

/** The public parameter `npm start` launches from (lib/config.ts `WORKSPACE_AMI`'s default). */
export const al2023ImageParameter =
  "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64";
/** AWS-shaped defaults the catalogue always holds, for tests and demos to launch with. */
export const defaultImageId = "ami-0a1b2c3d4e5f60718";
export const defaultSecurityGroupId = "sg-0a1b2c3d4e5f60718";
export const defaultSubnetId = "subnet-0a1b2c3d4e5f60718";
export const defaultInstanceProfile = "wcp-workspace";

const parameterPrefix = "resolve:ssm:";
const hexId = (prefix: string) => new RegExp(`^${prefix}-(?:[0-9a-f]{8}|[0-9a-f]{17})$`);
const amiId = hexId("ami");
const groupId = hexId("sg");
const subnetId = hexId("subnet");
/** IAM names: "alphanumeric characters … and _+=,.@-", 1–128 (API_CreateInstanceProfile.html). */
const profileName = /^[\w+=,.@-]{1,128}$/;

/** The body of `POST /_localcloud/catalogue` and the `catalogue` option. */
export const catalogueEntries = z
  .object({
    /** AMI ids, or `resolve:ssm:<parameter>` for a public parameter that resolves to an AMI. */
    imageIds: z
      .array(z.string().refine((v) => amiId.test(v) || /^resolve:ssm:\/\S+$/.test(v)))
      .optional(),
    securityGroupIds: z.array(z.string().regex(groupId)).optional(),
    subnetIds: z.array(z.string().regex(subnetId)).optional(),
    /** Instance profile names (not role names: EC2 takes the profile). */
    instanceProfiles: z.array(z.string().regex(profileName)).optional(),
  })
  .strict();

export type CatalogueEntries = z.infer<typeof catalogueEntries>;

/** What RunInstances names, as sent. */
export interface LaunchResources {
  imageId: string;
  subnetId?: string;
  securityGroupIds: string[];
  securityGroupNames: string[];
  profile?: { arn?: string; name?: string };
}

export class Catalogue {
  readonly #images = new Set<string>();
  readonly #groups = new Set<string>();
  readonly #subnets = new Set<string>();
  readonly #profiles = new Set<string>();

  constructor(extra: CatalogueEntries = {}) {
    this.add({
      imageIds: [defaultImageId, `${parameterPrefix}${al2023ImageParameter}`],
      securityGroupIds: [defaultSecurityGroupId],
      subnetIds: [defaultSubnetId],
      instanceProfiles: [defaultInstanceProfile],
    });
    this.add(catalogueEntries.parse(extra));
  }

  /** Add entries (already validated); adding what is there already is a no-op. */
  add(entries: CatalogueEntries): void {
    for (const image of entries.imageIds ?? []) {
      this.#images.add(image);
      // A parameter's AMI exists too: launching from the id it resolves to works as well.
      if (image.startsWith(parameterPrefix)) {
        this.#images.add(amiForParameter(image.slice(parameterPrefix.length)));
      }
    }
    for (const g of entries.securityGroupIds ?? []) this.#groups.add(g);
    for (const s of entries.subnetIds ?? []) this.#subnets.add(s);
    for (const p of entries.instanceProfiles ?? []) this.#profiles.add(p);
  }

  list(): Required<CatalogueEntries> {
    return {
      imageIds: [...this.#images].filter((i) => !this.#isResolved(i)).sort(),
      securityGroupIds: [...this.#groups].sort(),
      subnetIds: [...this.#subnets].sort(),
      instanceProfiles: [...this.#profiles].sort(),
    };
  }

  /**
   * The AMI id to launch from, or the error EC2 answers for an unknown image, subnet, security
   * group or instance profile, in EC2's codes and wording.
   */
  resolveLaunch(r: LaunchResources): string {
    const imageId = this.#image(r.imageId);
    if (r.subnetId !== undefined && !this.#subnets.has(r.subnetId)) {
      // EC2 answers NotFound for a malformed subnet id too ("The subnet ID 'example' does not
      // exist", seen in openshift/openshift-ansible#1053).
      throw new CloudError(
        "InvalidSubnetID.NotFound",
        `The subnet ID '${r.subnetId}' does not exist`,
      );
    }
    // Without a subnet the instance goes to the default VPC's default subnet, and EC2 says so.
    const vpc =
      r.subnetId === undefined ? `default VPC '${defaultVpcId}'` : `VPC '${defaultVpcId}'`;
    for (const g of r.securityGroupIds) {
      if (!groupId.test(g)) {
        throw new CloudError("InvalidGroupId.Malformed", `Invalid id: "${g}" (expecting "sg-...")`);
      }
      if (!this.#groups.has(g)) {
        // Wording as AWS answers RunInstances (getmoto/moto#5484; aws/aws-cli#5348).
        throw new CloudError(
          "InvalidGroup.NotFound",
          `The security group '${g}' does not exist in ${vpc}`,
        );
      }
    }
    // Security groups by name: the catalogue holds ids only, so no name is known.
    for (const name of r.securityGroupNames) {
      throw new CloudError(
        "InvalidGroup.NotFound",
        `The security group '${name}' does not exist in ${vpc}`,
      );
    }
    this.#profile(r.profile);
    return imageId;
  }

  #image(requested: string): string {
    let imageId = requested;
    if (requested.startsWith(parameterPrefix)) {
      // AWS does not document its answer for a parameter that does not exist; the local cloud
      // answers as for an AMI that does not exist, naming the parameter.
      if (!this.#images.has(requested)) throw imageNotFound(requested);
      imageId = amiForParameter(requested.slice(parameterPrefix.length));
    } else if (!amiId.test(requested)) {
      throw new CloudError(
        "InvalidAMIID.Malformed",
        `Invalid id: "${requested}" (expecting "ami-...")`,
      );
    }
    if (!this.#images.has(imageId)) throw imageNotFound(imageId);
    return imageId;
  }

  /**
   * Unknown instance profiles are InvalidParameterValue with EC2's wording for the name
   * (aws/aws-sdk-js-v3#5253, hashicorp/terraform-provider-aws#27516) and for the ARN
   * (aws-samples/amazon-ec2-gitlab-runner#16); both at once is InvalidParameterCombination
   * (aws/aws-sdk-java#647).
   */
  #profile(p: LaunchResources["profile"]): void {
    if (!p) return;
    if (p.arn !== undefined && p.name !== undefined) {
      throw new CloudError(
        "InvalidParameterCombination",
        "The parameter 'iamInstanceProfile.name' may not be used in combination with 'iamInstanceProfile.arn'",
      );
    }
    if (p.name !== undefined && !this.#profiles.has(p.name)) {
      throw new CloudError(
        "InvalidParameterValue",
        `Value (${p.name}) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name`,
      );
    }
    if (p.arn !== undefined) {
      // arn:aws:iam::<account>:instance-profile/<optional path/><name>
      const m = /^arn:aws:iam::(\d{12}):instance-profile\/(?:[\w+=,.@/-]*\/)?([\w+=,.@-]+)$/.exec(
        p.arn,
      );
      if (!m || m[1] !== accountId || !this.#profiles.has(m[2] ?? "")) {
        throw new CloudError(
          "InvalidParameterValue",
          `Value (${p.arn}) for parameter iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN`,
        );
      }
    }
  }

  #isResolved(imageId: string): boolean {
    for (const i of this.#images) {
      if (
        i.startsWith(parameterPrefix) &&
        amiForParameter(i.slice(parameterPrefix.length)) === imageId
      ) {
        return true;
      }
    }
    return false;
  }
}

/** "The image id '[ami-…]' does not exist" (boto/boto3 and Terraform reports of RunInstances). */
function imageNotFound(imageId: string): CloudError {
  return new CloudError("InvalidAMIID.NotFound", `The image id '[${imageId}]' does not exist`);
}
