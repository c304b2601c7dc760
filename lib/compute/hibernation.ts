/**
 * Whether an instance type can be launched able to hibernate, and the root volume it needs.
 *
 * EC2's prerequisites (docs.aws.amazon.com/AWSEC2/latest/UserGuide/hibernating-prerequisites.html):
 * hibernation is enabled at launch only (HibernationOptions.Configured); the instance type must
 * be of a supported family; its RAM must be at most 150 GB; the root volume must be an encrypted
 * EBS volume large enough for the RAM's contents besides the operating system. RAM per size
 * follows EC2's instance-type tables (docs.aws.amazon.com/ec2/latest/instancetypes/): general
 * purpose and burstable families double from 2 GiB at `small`; compute-optimised have half,
 * memory-optimised twice. A type outside this table is refused rather than guessed at.
 */

const FAMILIES: Record<string, number> = {
  // Burstable and general purpose: small 2 GiB, medium 4, large 8, xlarge 16, …
  t3: 1,
  t3a: 1,
  m5: 1,
  m5a: 1,
  m6i: 1,
  m7i: 1,
  // Compute optimised: half the memory of the same size.
  c5: 0.5,
  c6i: 0.5,
  c7i: 0.5,
  // Memory optimised: twice.
  r5: 2,
  r6i: 2,
  r7i: 2,
};

const SIZE_GIB: Record<string, number> = {
  small: 2,
  medium: 4,
  large: 8,
  xlarge: 16,
  "2xlarge": 32,
  "4xlarge": 64,
  "8xlarge": 128,
};

/** "You can't hibernate an instance that has more than 150 GB of RAM." */
const MAX_RAM_GIB = 150;
/** The AL2023 image's own root volume (8 GiB), kept beside the RAM's contents. */
const OS_GIB = 8;

export type HibernationPlan =
  | { kind: "supported"; rootVolumeGiB: number }
  | { kind: "unsupported"; reason: string };

/** What hibernation needs for `instanceType`, or why it cannot have it. */
export function hibernationPlan(instanceType: string): HibernationPlan {
  const [family = "", size = ""] = instanceType.split(".");
  const factor = FAMILIES[family];
  const base = SIZE_GIB[size];
  if (factor === undefined || base === undefined) {
    return {
      kind: "unsupported",
      reason: `instance type ${instanceType} is not one this product knows to support hibernation`,
    };
  }
  const ram = base * factor;
  if (ram > MAX_RAM_GIB) {
    return {
      kind: "unsupported",
      reason: `${instanceType} has more than ${MAX_RAM_GIB} GB of RAM`,
    };
  }
  return { kind: "supported", rootVolumeGiB: OS_GIB + Math.ceil(ram) };
}
