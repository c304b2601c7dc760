import { describe, expect, it } from "vitest";
import { AwsChunkedDecoder } from "../../../lib/localcloud/awschunked.js";
import { checksum, runningChecksum } from "../../../lib/localcloud/checksums.js";

/** An aws-chunked body as the SDK frames it: one size line per chunk, then the trailers. */
function frame(chunks: Buffer[], trailers: string[]): Buffer {
  const parts: Buffer[] = [];
  for (const c of chunks)
    parts.push(Buffer.from(`${c.byteLength.toString(16)}\r\n`), c, Buffer.from("\r\n"));
  parts.push(Buffer.from(`0\r\n${trailers.map((t) => `${t}\r\n`).join("")}\r\n`));
  return Buffer.concat(parts);
}

const bytes = (n: number, seed: number) =>
  Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) % 251));

describe("aws-chunked decoder", () => {
  it("hands back each piece's object bytes at once and holds no object data between pieces", () => {
    // Prepare: one 1 MiB chunk, fed in 64 KiB pieces as a socket would deliver it.
    const data = bytes(1024 * 1024, 7);
    const body = frame([data], ["x-amz-checksum-crc32:AAAAAA=="]);
    const decoder = new AwsChunkedDecoder();
    const out: Buffer[] = [];
    let maxHeld = 0;

    // Act
    for (let pos = 0; pos < body.byteLength; pos += 64 * 1024) {
      const piece = body.subarray(pos, pos + 64 * 1024);
      const decoded = decoder.push(piece);
      // Assess: everything but framing comes straight back, before the chunk is complete.
      if (pos + piece.byteLength < data.byteLength) {
        expect(decoded.reduce((n, d) => n + d.byteLength, 0)).toBeGreaterThan(
          piece.byteLength - 16,
        );
      }
      out.push(...decoded);
      maxHeld = Math.max(maxHeld, decoder.bufferedBytes);
    }
    const trailers = decoder.end();

    // Assess
    expect(Buffer.concat(out).equals(data)).toBe(true);
    expect(maxHeld).toBeLessThan(64);
    expect(trailers.get("x-amz-checksum-crc32")).toBe("AAAAAA==");
  });

  it("decodes the same bytes however the body is split, down to one byte at a time", () => {
    const chunks = [bytes(10_000, 1), bytes(8192, 2), bytes(17, 3)];
    const body = frame(chunks, ["x-amz-checksum-sha256:abc=", "X-Other: v"]);
    for (const step of [1, 2, 3, 7, 4096, body.byteLength]) {
      const decoder = new AwsChunkedDecoder();
      const out: Buffer[] = [];
      for (let pos = 0; pos < body.byteLength; pos += step) {
        out.push(...decoder.push(body.subarray(pos, pos + step)));
      }
      const trailers = decoder.end();
      expect(Buffer.concat(out).equals(Buffer.concat(chunks))).toBe(true);
      expect(Object.fromEntries(trailers)).toEqual({
        "x-amz-checksum-sha256": "abc=",
        "x-other": "v",
      });
    }
  });

  it("answers IncompleteBody for a body cut inside a chunk or before the last chunk", () => {
    const body = frame([bytes(1000, 4)], []);
    for (const cut of [3, 500, body.byteLength - 5]) {
      const decoder = new AwsChunkedDecoder();
      decoder.push(body.subarray(0, cut));
      expect(() => decoder.end()).toThrowError(expect.objectContaining({ code: "IncompleteBody" }));
    }
  });

  it("refuses a bad size line, data not followed by CRLF and bytes after the trailers", () => {
    const cases = [
      Buffer.from("zz\r\nabc"),
      Buffer.from("3\r\nabcXY0\r\n\r\n"),
      Buffer.concat([frame([bytes(3, 5)], []), Buffer.from("extra")]),
      Buffer.from(`${"1".repeat(5000)}\r\n`),
    ];
    for (const body of cases) {
      const decoder = new AwsChunkedDecoder();
      expect(() => decoder.push(body)).toThrowError(
        expect.objectContaining({ code: "InvalidRequest" }),
      );
    }
  });

  it("keeps a trailer named __proto__ as data, not as a prototype", () => {
    const decoder = new AwsChunkedDecoder();
    decoder.push(frame([], ["__proto__:x"]));
    expect(decoder.end().get("__proto__")).toBe("x");
  });
});

describe("checksums", () => {
  it("computes the published check values of CRC-32 and CRC-32C, whole or in pieces", () => {
    // The standard check input "123456789": CRC-32 0xCBF43926, CRC-32C 0xE3069283.
    const input = Buffer.from("123456789");
    expect(checksum("crc32", input)).toBe(Buffer.from("cbf43926", "hex").toString("base64"));
    expect(checksum("crc32c", input)).toBe(Buffer.from("e3069283", "hex").toString("base64"));
    for (const algorithm of ["crc32", "crc32c", "sha1", "sha256"] as const) {
      const running = runningChecksum(algorithm);
      running.update(input.subarray(0, 4));
      running.update(input.subarray(4));
      expect(running.digest()).toBe(checksum(algorithm, input));
    }
  });
});
