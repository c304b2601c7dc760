import type { RootVolume } from "./blockdevices.js";
import { CloudError } from "./errors.js";

/**
 * EC2's hibernation prerequisites, checked when RunInstances asks for
 * `HibernationOptions.Configured=true` (docs.aws.amazon.com/AWSEC2/latest/UserGuide/
 * hibernating-prerequisites.html): a supported instance family, not bare metal, less than
 * 150 GB of RAM, an EBS root volume that is encrypted, of a supported type and large enough to
 * store the RAM. Hibernation cannot be enabled after launch ("Enable hibernation at launch").
 *
 * Every refusal is `UnsupportedHibernationConfiguration`. EC2's wording is known for the
 * unencrypted root volume (apache/airflow#35790); the other messages are the local cloud's.
 */

/** "Instance RAM size: Must be less than 150 GB" (hibernating-prerequisites.html). */
export const maxHibernationMemoryGiB = 150;

/** "Supported EBS volume types: gp2 and gp3, io1 and io2" (hibernating-prerequisites.html). */
const hibernationVolumeTypes = new Set(["gp2", "gp3", "io1", "io2"]);

const burstableSizes = {
  nano: 0.5,
  micro: 1,
  small: 2,
  medium: 4,
  large: 8,
  xlarge: 16,
  "2xlarge": 32,
};
const generalPurposeSizes = {
  large: 8,
  xlarge: 16,
  "2xlarge": 32,
  "4xlarge": 64,
  "8xlarge": 128,
  "12xlarge": 192,
  "16xlarge": 256,
  "24xlarge": 384,
};

/**
 * Memory in GiB of the instance types the local cloud lets hibernate, by family and size
 * (docs.aws.amazon.com/ec2/latest/instancetypes/gp.html, co.html, mo.html, "Memory (GiB)").
 * The families are among the supported ones of hibernating-prerequisites.html ("General
 * purpose: M3, M4, M5, M5a, M5ad, M5d, M6i, T2, T3, and T3a; Compute optimized: C3, C4, C5, C5d,
 * and C6i; Memory optimized: R3, R4, R5, R5a, R5ad, and R5d; Storage optimized: I3, and I3en").
 * A supported family missing here is refused: stricter than EC2, never kinder. Bare metal
 * (`.metal`) is never listed: "Not supported for bare metal instances".
 */
const memoryGiB: Record<string, Record<string, number>> = {
  t2: burstableSizes,
  t3: burstableSizes,
  t3a: burstableSizes,
  m5: generalPurposeSizes,
  m5a: generalPurposeSizes,
  m5d: generalPurposeSizes,
  m6i: { ...generalPurposeSizes, "32xlarge": 512 },
  c5: {
    large: 4,
    xlarge: 8,
    "2xlarge": 16,
    "4xlarge": 32,
    "9xlarge": 72,
    "12xlarge": 96,
    "18xlarge": 144,
    "24xlarge": 192,
  },
  r5: {
    large: 16,
    xlarge: 32,
    "2xlarge": 64,
    "4xlarge": 128,
    "8xlarge": 256,
    "12xlarge": 384,
    "16xlarge": 512,
    "24xlarge": 768,
  },
};

/** The type's memory in GiB when the local cloud knows it, else undefined. */
export function instanceMemoryGiB(instanceType: string): number | undefined {
  const [family = "", size = ""] = instanceType.split(".");
  const sizes = Object.hasOwn(memoryGiB, family) ? memoryGiB[family] : undefined;
  return sizes && Object.hasOwn(sizes, size) ? sizes[size] : undefined;
}

/** Refuse, as EC2 does, a launch enabled for hibernation that does not meet the prerequisites. */
export function checkHibernationPrerequisites(instanceType: string, root: RootVolume): void {
  const memory = instanceMemoryGiB(instanceType);
  if (memory === undefined) {
    throw unsupported(`Hibernation is not supported for the instance type '${instanceType}'.`);
  }
  if (memory >= maxHibernationMemoryGiB) {
    throw unsupported(
      `Hibernation is not supported for instance types with ${maxHibernationMemoryGiB} GiB of memory or more; '${instanceType}' has ${memory} GiB.`,
    );
  }
  if (!root.encrypted) {
    throw unsupported("For hibernation, the root device volume must be encrypted.");
  }
  if (!hibernationVolumeTypes.has(root.volumeType)) {
    throw unsupported(
      `For hibernation, the root device volume type must be one of ${[...hibernationVolumeTypes].join(", ")}.`,
    );
  }
  if (root.sizeGiB < memory) {
    throw unsupported(
      `For hibernation, the root device volume must be large enough to store the instance's RAM: ${root.sizeGiB} GiB is smaller than the ${memory} GiB of '${instanceType}'.`,
    );
  }
}

function unsupported(message: string): CloudError {
  return new CloudError("UnsupportedHibernationConfiguration", message);
}
