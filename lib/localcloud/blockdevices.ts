import { CloudError } from "./errors.js";
import { booleanParam, type QueryParams } from "./query.js";

/**
 * RunInstances' `BlockDeviceMapping.N` as far as the local cloud models it: the root volume,
 * which hibernation needs encrypted and large enough for the instance's memory. Other mappings
 * are checked for well-formed values and otherwise have nothing to attach to.
 */

/** The device every instance of the local cloud boots from (DescribeInstances `rootDeviceName`). */
export const rootDeviceName = "/dev/xvda";
/**
 * The root snapshot of the catalogue's AMIs, in GiB, and its volume type: a local figure, the
 * size and type of Amazon Linux 2023's published AMIs (what `npm start` launches from).
 */
export const amiRootSizeGiB = 8;
const amiRootVolumeType = "gp3";
/** EBS volume types (docs.aws.amazon.com/ebs/latest/userguide/ebs-volume-types.html). */
const volumeTypes = new Set(["standard", "gp2", "gp3", "io1", "io2", "st1", "sc1"]);
/** gp2/gp3 volumes are 1 GiB – 16 TiB (ebs-volume-types.html, "Volume size"). */
const maxVolumeSizeGiB = 16_384;

export interface RootVolume {
  encrypted: boolean;
  sizeGiB: number;
  volumeType: string;
}

/** The root volume a launch asks for: the AMI's, changed by a mapping for the root device. */
export function rootVolume(params: QueryParams, imageId: string): RootVolume {
  const root: RootVolume = {
    // The catalogue's AMIs are unencrypted and the account has no EBS encryption by default, so
    // only a mapping that asks for it encrypts the root volume (hibernating-prerequisites.html,
    // "Root volume encryption", lists these three ways).
    encrypted: false,
    sizeGiB: amiRootSizeGiB,
    volumeType: amiRootVolumeType,
  };
  for (const mapping of params.structs("BlockDeviceMapping")) {
    const device = mapping.get("DeviceName") ?? "";
    if (device === "") {
      throw new CloudError(
        "MissingParameter",
        "The request must contain the parameter blockDeviceMapping.deviceName",
      );
    }
    const ebs = mapping.sub("Ebs");
    const encrypted = booleanParam(ebs, "Encrypted");
    const volumeType = ebs.get("VolumeType");
    if (volumeType !== undefined && !volumeTypes.has(volumeType)) {
      throw new CloudError(
        "InvalidParameterValue",
        `Value (${volumeType}) for parameter volumeType is invalid. Valid values are ${[...volumeTypes].join(", ")}.`,
      );
    }
    const size = volumeSize(ebs);
    if (device !== rootDeviceName) continue;
    if (size !== undefined && size < amiRootSizeGiB) {
      // EC2's wording for a root volume smaller than the snapshot it is made from.
      throw new CloudError(
        "InvalidBlockDeviceMapping",
        `Volume of size ${size}GB is smaller than snapshot 'snap-${imageId.slice("ami-".length)}', expect size >= ${amiRootSizeGiB}GB`,
      );
    }
    if (encrypted !== undefined) root.encrypted = encrypted;
    if (size !== undefined) root.sizeGiB = size;
    if (volumeType !== undefined) root.volumeType = volumeType;
  }
  return root;
}

function volumeSize(ebs: QueryParams): number | undefined {
  const raw = ebs.get("VolumeSize");
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > maxVolumeSizeGiB) {
    throw new CloudError(
      "InvalidParameterValue",
      `Value (${raw}) for parameter volumeSize is invalid. Expecting a value between 1 and ${maxVolumeSizeGiB}.`,
    );
  }
  return n;
}
