import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import type { LookupFunction } from "node:net";

/** At most this much of a receiver's answer is read; the rest is dropped with the connection. */
export const MAX_RESPONSE_BYTES = 64 * 1024;

export interface SendInput {
  url: URL;
  /** The checked address to connect to (see resolveTarget); the URL's host is not looked up. */
  address: string;
  family: 4 | 6;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
  signal?: AbortSignal;
}

/** What one attempt got: a status code, or why there was none. Never the receiver's body. */
export type SendResult =
  | { kind: "answered"; statusCode: number; latencyMs: number }
  | { kind: "failed"; error: string; latencyMs: number };

/**
 * POSTs one signed webhook to `address`, naming the URL's host for TLS (SNI and certificate
 * checks) and in `Host`, so the connection goes where the guard looked and nowhere else. No
 * redirect is followed (node's client never follows one; a 3xx is an answer like any other, and
 * not an acknowledgement), the whole exchange is bounded by `timeoutMs`, and at most
 * {@link MAX_RESPONSE_BYTES} of the answer are read. Never throws for the receiver's failure.
 */
export function sendWebhook(input: SendInput): Promise<SendResult> {
  const started = performance.now();
  const latency = () => Math.round(performance.now() - started);
  // Node asks with `all: true` when it may try several addresses (autoSelectFamily): either
  // way it gets the one address that was checked.
  const pinned = ((_host: string, opts: { all?: boolean }, cb: (...args: unknown[]) => void) => {
    if (opts.all) cb(null, [{ address: input.address, family: input.family }]);
    else cb(null, input.address, input.family);
  }) as unknown as LookupFunction;
  const request = input.url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve) => {
    let settled = false;
    const finish = (r: SendResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(r);
    };
    const req = request(
      {
        protocol: input.url.protocol,
        hostname: input.url.hostname.replace(/^\[|\]$/g, ""),
        port: input.url.port === "" ? undefined : Number(input.url.port),
        path: `${input.url.pathname}${input.url.search}`,
        method: "POST",
        lookup: pinned,
        agent: false,
        headers: {
          ...input.headers,
          "content-type": "application/json",
          "content-length": String(Buffer.byteLength(input.body)),
        },
        ...(input.signal && { signal: input.signal }),
      },
      (res) => {
        const statusCode = res.statusCode ?? 0;
        let read = 0;
        res.on("data", (chunk: Buffer) => {
          read += chunk.length;
          if (read > MAX_RESPONSE_BYTES)
            finish({ kind: "answered", statusCode, latencyMs: latency() });
        });
        res.on("end", () => finish({ kind: "answered", statusCode, latencyMs: latency() }));
        res.on("error", () => finish({ kind: "answered", statusCode, latencyMs: latency() }));
      },
    );
    const timer = setTimeout(
      () =>
        finish({
          kind: "failed",
          error: `no answer within ${input.timeoutMs} ms`,
          latencyMs: latency(),
        }),
      input.timeoutMs,
    );
    req.on("error", (err: NodeJS.ErrnoException) => {
      const why = input.signal?.aborted
        ? "cut short by the deadline"
        : (err.code ?? err.name ?? "connection failed");
      finish({ kind: "failed", error: why, latencyMs: latency() });
    });
    req.end(input.body);
  });
}
