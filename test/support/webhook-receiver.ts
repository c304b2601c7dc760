import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** One request a receiver got, and what it answered. */
export interface Received {
  id: string;
  timestamp: string;
  signature: string;
  headers: IncomingHttpHeaders;
  body: string;
  status: number;
  /** Order of arrival, across the receiver. */
  n: number;
}

export interface Receiver {
  url: string;
  port: number;
  received: Received[];
  /** Answers 2xx from now on, after `answer`'s scripted statuses are used up. */
  answer: (req: { id: string; attempt: number; body: string }) => number | Promise<number>;
  close(): Promise<void>;
}

/**
 * A real HTTP receiver on loopback: records every request (headers, raw body) and answers what
 * `answer` says (200 by default), so tests see what a subscriber sees on the wire.
 */
export async function startReceiver(): Promise<Receiver> {
  const received: Received[] = [];
  const attempts = new Map<string, number>();
  let n = 0;
  const receiver: Receiver = {
    url: "",
    port: 0,
    received,
    answer: () => 200,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const id = String(req.headers["webhook-id"] ?? "");
      const attempt = (attempts.get(id) ?? 0) + 1;
      attempts.set(id, attempt);
      const order = n++;
      void Promise.resolve(receiver.answer({ id, attempt, body })).then((status) => {
        received.push({
          id,
          timestamp: String(req.headers["webhook-timestamp"] ?? ""),
          signature: String(req.headers["webhook-signature"] ?? ""),
          headers: req.headers,
          body,
          status,
          n: order,
        });
        res.writeHead(status, { "content-type": "text/plain" }).end("ok");
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  receiver.port = (server.address() as AddressInfo).port;
  receiver.url = `http://127.0.0.1:${receiver.port}/hooks`;
  return receiver;
}
