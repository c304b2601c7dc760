import { createHash, type Hash } from "node:crypto";
import { crc32 } from "node:zlib";

/**
 * The checksums the AWS SDK attaches to S3 uploads (CRC-32 by default), computed as the bytes
 * arrive so that a body never has to be held whole. CRC-32 is node's `zlib.crc32` (node ≥ 20.15,
 * which `engines` requires); node has no CRC-32C (Castagnoli, reflected 0x82F63B78), so that one is
 * written here. (docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html)
 */
export type ChecksumAlgorithm = "crc32" | "crc32c" | "sha1" | "sha256";

export const checksumAlgorithms: ChecksumAlgorithm[] = ["crc32", "crc32c", "sha1", "sha256"];

/** A running checksum: feed it pieces, then read the base64 value S3 prints. */
export interface RunningChecksum {
  update(data: Uint8Array): void;
  /** Base64, as in `x-amz-checksum-<algorithm>`. */
  digest(): string;
}

const crc32cTable = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crcBytes(value: number): string {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(value >>> 0);
  return out.toString("base64");
}

class Crc32 implements RunningChecksum {
  #value = 0;
  update(data: Uint8Array): void {
    this.#value = crc32(data, this.#value);
  }
  digest(): string {
    return crcBytes(this.#value);
  }
}

class Crc32c implements RunningChecksum {
  #c = 0xffffffff;
  update(data: Uint8Array): void {
    const t = crc32cTable;
    let c = this.#c;
    for (let i = 0; i < data.length; i++) {
      c = (t[(c ^ (data[i] as number)) & 0xff] as number) ^ (c >>> 8);
    }
    this.#c = c;
  }
  digest(): string {
    return crcBytes(this.#c ^ 0xffffffff);
  }
}

class Sha implements RunningChecksum {
  readonly #hash: Hash;
  constructor(algorithm: "sha1" | "sha256") {
    this.#hash = createHash(algorithm);
  }
  update(data: Uint8Array): void {
    this.#hash.update(data);
  }
  digest(): string {
    return this.#hash.digest("base64");
  }
}

/** A fresh running checksum of `algorithm`. */
export function runningChecksum(algorithm: ChecksumAlgorithm): RunningChecksum {
  switch (algorithm) {
    case "crc32":
      return new Crc32();
    case "crc32c":
      return new Crc32c();
    case "sha1":
    case "sha256":
      return new Sha(algorithm);
    default: {
      const never: never = algorithm;
      throw new Error(`unknown checksum ${String(never)}`);
    }
  }
}

/** The base64 checksum of `data` as S3 prints it in `x-amz-checksum-<algorithm>`. */
export function checksum(algorithm: ChecksumAlgorithm, data: Uint8Array): string {
  const running = runningChecksum(algorithm);
  running.update(data);
  return running.digest();
}
