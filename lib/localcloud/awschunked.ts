import { CloudError } from "./errors.js";

/**
 * The longest chunk-size or trailer line accepted. A size line is `<hex>[;chunk-signature=<64
 * hex>]`, a trailer line `x-amz-checksum-sha256:<44 base64>`; a line this long is not a framing
 * this decoder can be asked for, and the bound is what keeps the decoder's memory flat.
 */
const maxLineBytes = 4096;
/** The whole trailer section, bounded for the same reason. */
const maxTrailerBytes = 16 * 1024;

type State = "size" | "data" | "data-end" | "trailer" | "done";

const incomplete = () =>
  new CloudError("IncompleteBody", "The request body terminated unexpectedly", 400);
const malformed = (what: string) =>
  new CloudError("InvalidRequest", `The aws-chunked body is malformed: ${what}`, 400);

/**
 * An incremental decoder of the `aws-chunked` content encoding:
 * `<hex size>[;ext]\r\n<bytes>\r\n` … `0\r\n`, then trailer lines (`x-amz-checksum-crc32:…`) and an
 * empty line. The SDK sends it for streaming uploads with a checksum trailer
 * (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`; docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html,
 * …/sigv4-streaming-trailers.html).
 *
 * Feed it the body as it arrives; it hands back the object's bytes as views of the piece it was
 * given, never copied or gathered, and holds at most one unfinished size or trailer line
 * ({@link bufferedBytes}), so a 5 GiB upload costs what one line costs.
 */
export class AwsChunkedDecoder {
  #state: State = "size";
  /** An unfinished line, split across pieces. */
  #line: Buffer[] = [];
  #lineBytes = 0;
  /** Object bytes left in the current chunk. */
  #remaining = 0;
  /** Of the CRLF that ends a chunk's data, how many bytes were seen. */
  #crlf = 0;
  #trailerBytes = 0;
  readonly #trailers = new Map<string, string>();

  /** Bytes the decoder holds between calls: an unfinished line, never object data. */
  get bufferedBytes(): number {
    return this.#lineBytes;
  }

  /** The object bytes in `piece`, in order, as views of it. */
  push(piece: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let pos = 0;
    while (pos < piece.byteLength) {
      switch (this.#state) {
        case "data": {
          const n = Math.min(this.#remaining, piece.byteLength - pos);
          out.push(piece.subarray(pos, pos + n));
          pos += n;
          this.#remaining -= n;
          if (this.#remaining === 0) this.#state = "data-end";
          break;
        }
        case "data-end": {
          const expected = this.#crlf === 0 ? 0x0d : 0x0a;
          if (piece[pos] !== expected) throw malformed("chunk data is not followed by CRLF");
          pos += 1;
          this.#crlf += 1;
          if (this.#crlf === 2) {
            this.#crlf = 0;
            this.#state = "size";
          }
          break;
        }
        case "size":
        case "trailer": {
          const lf = piece.indexOf(0x0a, pos);
          const end = lf < 0 ? piece.byteLength : lf + 1;
          this.#keep(piece.subarray(pos, end));
          pos = end;
          if (lf >= 0) this.#onLine(this.#takeLine());
          break;
        }
        case "done":
          throw malformed("bytes after the trailer section");
        default: {
          const never: never = this.#state;
          throw new Error(`unknown decoder state ${String(never)}`);
        }
      }
    }
    return out;
  }

  /**
   * The body ended: the trailers (lower-case names), or IncompleteBody when the last chunk or the
   * trailer section did not arrive. A trailer section cut after a whole line is taken as ended.
   */
  end(): Map<string, string> {
    const atLineBoundary = this.#lineBytes === 0;
    if (this.#state === "done" || (this.#state === "trailer" && atLineBoundary)) {
      this.#state = "done";
      return new Map(this.#trailers);
    }
    throw incomplete();
  }

  #keep(bytes: Buffer): void {
    this.#lineBytes += bytes.byteLength;
    if (this.#lineBytes > maxLineBytes) throw malformed("a line is too long");
    // Copied: the caller may reuse the piece once push returns.
    this.#line.push(Buffer.from(bytes));
  }

  #takeLine(): string {
    const raw = Buffer.concat(this.#line).toString("latin1");
    this.#line = [];
    this.#lineBytes = 0;
    if (!raw.endsWith("\r\n")) throw malformed("a line does not end with CRLF");
    return raw.slice(0, -2);
  }

  #onLine(line: string): void {
    if (this.#state === "size") {
      const hex = line.split(";")[0] ?? "";
      if (!/^[0-9a-fA-F]{1,15}$/.test(hex)) throw malformed(`chunk size "${hex.slice(0, 20)}"`);
      const size = Number.parseInt(hex, 16);
      if (size === 0) {
        this.#state = "trailer";
      } else {
        this.#remaining = size;
        this.#state = "data";
      }
      return;
    }
    if (line === "") {
      this.#state = "done";
      return;
    }
    this.#trailerBytes += line.length;
    if (this.#trailerBytes > maxTrailerBytes) throw malformed("the trailer section is too long");
    const colon = line.indexOf(":");
    if (colon <= 0) throw malformed("a trailer line has no name");
    this.#trailers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
}
