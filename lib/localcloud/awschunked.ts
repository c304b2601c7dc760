import { CloudError } from "./errors.js";

/**
 * Decode an `aws-chunked` body: `<hex size>[;chunk-signature=…]\r\n<bytes>\r\n` … `0\r\n`, then
 * trailer lines (`x-amz-checksum-crc32:…`) and an empty line. The SDK sends it for streaming
 * uploads with a checksum trailer (STREAMING-UNSIGNED-PAYLOAD-TRAILER); signatures are not
 * checked, like every signature here.
 * (docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html)
 */
export function decodeAwsChunked(body: Buffer): { data: Buffer; trailers: Record<string, string> } {
  const parts: Buffer[] = [];
  const trailers: Record<string, string> = {};
  let pos = 0;
  const incomplete = () =>
    new CloudError("IncompleteBody", "The request body terminated unexpectedly", 400);
  for (;;) {
    const eol = body.indexOf("\r\n", pos);
    if (eol < 0) throw incomplete();
    const header = body.subarray(pos, eol).toString("latin1");
    const size = Number.parseInt(header.split(";")[0] ?? "", 16);
    if (!Number.isFinite(size) || size < 0) {
      throw new CloudError(
        "InvalidChunkSizeError",
        "Only the last chunk is allowed to have a size less than 8192 bytes",
        400,
      );
    }
    pos = eol + 2;
    if (size === 0) break;
    if (pos + size + 2 > body.byteLength) throw incomplete();
    parts.push(body.subarray(pos, pos + size));
    pos += size;
    if (body.subarray(pos, pos + 2).toString("latin1") !== "\r\n") throw incomplete();
    pos += 2;
  }
  // Trailer section: header lines up to an empty line (or the end of the body).
  while (pos < body.byteLength) {
    const eol = body.indexOf("\r\n", pos);
    const line = body.subarray(pos, eol < 0 ? body.byteLength : eol).toString("latin1");
    pos = eol < 0 ? body.byteLength : eol + 2;
    if (line === "") break;
    const colon = line.indexOf(":");
    if (colon > 0)
      trailers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { data: Buffer.concat(parts), trailers };
}
