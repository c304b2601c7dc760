import type { Readable } from "node:stream";

/**
 * An error the simulated service answers with. Each service renders it in its own wire shape
 * (EC2 `<Response><Errors>…`, SSM `{"__type"…}`, S3 `<Error>…`), so the SDK maps `code` to
 * `err.name` and `status` to `err.$metadata.httpStatusCode` exactly as against AWS.
 */
export class CloudError extends Error {
  override readonly name = "CloudError";
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
    /** Extra elements S3 puts in its error body (`Key`, `Expires`, …). */
    readonly extra: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** A response ready to be written to the socket; a stream body (an S3 object) is piped. */
export interface WireResponse {
  status: number;
  headers: Record<string, string>;
  body: string | Buffer | Readable;
}
