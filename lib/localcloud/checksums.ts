import { createHash } from "node:crypto";

/**
 * CRC-32 (IEEE, reflected 0xEDB88320) and CRC-32C (Castagnoli, 0x82F63B78): the checksums the
 * AWS SDK attaches to S3 uploads by default. Written by hand because node 20 has no
 * `zlib.crc32` (added in 22.2) and the SDK's own implementation is client-side code we do
 * not import here.
 */
function table(poly: number): Uint32Array {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? poly ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
}

const crc32Table = table(0xedb88320);
const crc32cTable = table(0x82f63b78);

function crc(t: Uint32Array, data: Uint8Array): Buffer {
  let c = 0xffffffff;
  for (const byte of data) c = (t[(c ^ byte) & 0xff] ?? 0) ^ (c >>> 8);
  const out = Buffer.alloc(4);
  out.writeUInt32BE((c ^ 0xffffffff) >>> 0);
  return out;
}

export type ChecksumAlgorithm = "crc32" | "crc32c" | "sha1" | "sha256";

export const checksumAlgorithms: ChecksumAlgorithm[] = ["crc32", "crc32c", "sha1", "sha256"];

/** The base64 checksum as S3 prints it in `x-amz-checksum-<algorithm>`. */
export function checksum(algorithm: ChecksumAlgorithm, data: Uint8Array): string {
  switch (algorithm) {
    case "crc32":
      return crc(crc32Table, data).toString("base64");
    case "crc32c":
      return crc(crc32cTable, data).toString("base64");
    case "sha1":
    case "sha256":
      return createHash(algorithm).update(data).digest("base64");
    default: {
      const never: never = algorithm;
      throw new Error(`unknown checksum ${String(never)}`);
    }
  }
}
