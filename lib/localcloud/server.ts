import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Catalogue } from "./catalogue.js";
import { type CallStats, handleControl } from "./control.js";
import { ec2Error, ec2Malformed, handleEc2 } from "./ec2.js";
import { CloudError, type WireResponse } from "./errors.js";
import type { StateChangeEvents } from "./events.js";
import {
  defaultMessage,
  defaultStatus,
  type Fault,
  type FaultTable,
  type ServiceName,
} from "./faults.js";
import type { Fleet } from "./fleet.js";
import type { ResolvedOptions } from "./options.js";
import { QueryParams } from "./query.js";
import type { CommandRunner } from "./runcommand.js";
import { type ObjectStore, parseS3Path, s3Action, s3Error, s3MalformedRaw } from "./s3.js";
import { handleSsm, ssmError, ssmMalformed } from "./ssm.js";
import type { CloudState, StateFile } from "./store.js";

const mib = 1024 * 1024;
/** A local limit for EC2 and SSM calls, not an AWS one. S3 bodies are bounded by s3.ts. */
export const maxRequestBytes = 1 * mib;

export interface ServerDeps {
  state: CloudState;
  fleet: Fleet;
  runner: CommandRunner;
  objects: ObjectStore;
  faults: FaultTable;
  stats: CallStats;
  /** Every answer waits for `changes.flush()`: what a client hears of is on disk. */
  changes: StateFile;
  catalogue: Catalogue;
  /** Live options; the control API's settings change them at run time. */
  opts: ResolvedOptions;
  events: StateChangeEvents;
}

/** One API call, classified: which service, which action, and how that service speaks. */
interface Call {
  service: ServiceName;
  action: string;
  run(): Promise<WireResponse> | WireResponse;
  renderError(err: CloudError): WireResponse;
  malformed(): WireResponse | { raw: string };
  headers: Record<string, string>;
}

class PayloadTooLarge extends Error {}

const noBody = Buffer.alloc(0);

/**
 * The HTTP front of the local cloud. Written on node:http rather than Hono because the
 * protocol is chosen from headers and body (not the path), and fault injection needs the raw
 * socket: to hang, to send a broken response, to close after a 413.
 */
export class CloudServer {
  readonly server: Server;
  #closing = false;
  readonly #waits = new Set<() => void>();

  constructor(private readonly deps: ServerDeps) {
    this.server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        console.error("localcloud: request failed", err);
        if (!res.headersSent) {
          res.writeHead(500, { "content-type": "text/plain" });
          res.end("internal error");
        } else {
          res.destroy();
        }
      });
    });
    this.server.on("clientError", (_err, socket) => socket.destroy());
  }

  async close(): Promise<void> {
    this.#closing = true;
    for (const wake of this.#waits) wake();
    this.#waits.clear();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      // Idle keep-alive sockets and hanging fault responses would hold close() open.
      this.server.closeAllConnections();
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    req.on("error", () => undefined);
    res.on("error", () => undefined);
    const requestId = randomUUID();
    const url = new URL(req.url ?? "/", "http://localcloud");
    const method = req.method ?? "GET";

    if (url.pathname === "/_localcloud" || url.pathname.startsWith("/_localcloud/")) {
      await this.#control(req, res, method, url.pathname);
      return;
    }

    const target = header(req, "x-amz-target");
    const guess: ServiceName = target ? "ssm" : method === "POST" ? "ec2" : "s3";
    // An S3 body (a PutObject of up to 5 GiB) is left unread here: the object store streams it.
    let body: Buffer | undefined;
    if (guess !== "s3") {
      try {
        body = await readBody(req, maxRequestBytes);
      } catch (err) {
        if (!(err instanceof PayloadTooLarge)) throw err;
        this.#tooLarge(req, res, guess, method, requestId, maxRequestBytes);
        return;
      }
    }

    const call = this.#classify(req, method, url, target, body, requestId);
    this.deps.stats.count(call.service, call.action);
    // Faults fire before the action runs, so a faulted call changes nothing — except one that
    // loses the answer, which lets the action run first.
    const fault = this.deps.faults.match(call.service, call.action);
    if (fault) {
      const handled = await this.#applyFault(fault, call, req, res);
      if (handled) return;
    }
    if (this.#closing) return;
    let wire: WireResponse;
    try {
      wire = await call.run();
      // Written before the answer leaves: the client may act on it, or the process may die.
      this.deps.changes.flush();
    } catch (err) {
      if (err instanceof CloudError) {
        wire = call.renderError(err);
      } else {
        console.error(`localcloud: ${call.service}:${call.action} failed`, err);
        const code = call.service === "ssm" ? "InternalServerError" : "InternalError";
        wire = call.renderError(
          new CloudError(code, "We encountered an internal error. Please try again.", 500),
        );
      }
    }
    if (fault?.loseAnswer === "drop") {
      req.socket.destroy();
      return;
    }
    // "hang": the answer never leaves; the socket goes when the client gives up.
    if (fault?.loseAnswer === "hang") return;
    if (body === undefined && !req.complete) {
      // The store left the rest of an oversized S3 body unread: the connection cannot go on.
      res.on("finish", () => req.socket.destroy());
      send(res, method, wire, { ...call.headers, connection: "close" });
      return;
    }
    send(res, method, wire, call.headers);
  }

  /** `body` is undefined when it was left unread for the S3 object store. */
  #classify(
    req: IncomingMessage,
    method: string,
    url: URL,
    target: string | undefined,
    body: Buffer | undefined,
    requestId: string,
  ): Call {
    const { deps } = this;
    if (target !== undefined) {
      const action = target.startsWith("AmazonSSM.") ? target.slice("AmazonSSM.".length) : target;
      return {
        service: "ssm",
        action,
        run: () => handleSsm(deps, action, (body ?? noBody).toString("utf8")),
        renderError: (err) => ssmError(err),
        malformed: () => ssmMalformed(),
        headers: { "x-amzn-requestid": requestId },
      };
    }
    if (method === "POST") {
      const params = QueryParams.parse((body ?? noBody).toString("utf8"));
      const action = params.get("Action");
      if (action !== undefined) {
        return {
          service: "ec2",
          action,
          run: () => handleEc2(deps, action, params, requestId),
          renderError: (err) => ec2Error(err, requestId),
          malformed: () => ec2Malformed(action),
          headers: {},
        };
      }
    }
    const s3Headers = {
      "x-amz-request-id": requestId,
      "x-amz-id-2": Buffer.from(requestId).toString("base64"),
    };
    // The signature covers the path and query as sent, so they are taken before URL normalises them.
    const sent = req.url?.startsWith("/") ? req.url : `${url.pathname}${url.search}`;
    const q = sent.indexOf("?");
    const rawPath = q < 0 ? sent : sent.slice(0, q);
    const rawQuery = q < 0 ? "" : sent.slice(q + 1);
    let path: { bucket: string; key: string };
    try {
      path = parseS3Path(rawPath);
    } catch {
      return {
        service: "s3",
        action: "Unsupported",
        run: () => {
          throw new CloudError("InvalidURI", "Couldn't parse the specified URI.");
        },
        renderError: (err) => s3Error(err, requestId, method),
        malformed: () => ({ raw: s3MalformedRaw }),
        headers: s3Headers,
      };
    }
    const action = s3Action(method, path.bucket, path.key, req.headers);
    return {
      service: "s3",
      action,
      run: () =>
        deps.objects.handle(action, {
          method,
          bucket: path.bucket,
          key: path.key,
          rawPath,
          rawQuery,
          headers: req.headers,
          body: body === undefined ? req : Readable.from(body.byteLength > 0 ? [body] : []),
        }),
      renderError: (err) => s3Error(err, requestId, method),
      malformed: () => ({ raw: s3MalformedRaw }),
      headers: s3Headers,
    };
  }

  /** Returns true when the fault answered (or swallowed) the call. */
  async #applyFault(
    fault: Fault,
    call: Call,
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<boolean> {
    if (fault.latencyMs) await this.#wait(fault.latencyMs);
    if (this.#closing) return true;
    if (fault.hang) {
      // Never answer; the socket goes when the client gives up or the cloud closes.
      return true;
    }
    if (fault.malformed) {
      const bad = call.malformed();
      if ("raw" in bad) req.socket.end(bad.raw);
      else send(res, req.method ?? "GET", bad, call.headers);
      return true;
    }
    if (fault.error) {
      const status = fault.httpStatus ?? defaultStatus(call.service, fault.error);
      const err = new CloudError(fault.error, fault.message ?? defaultMessage(fault.error), status);
      send(res, req.method ?? "GET", call.renderError(err), call.headers);
      return true;
    }
    // Latency only: the call goes ahead, even if the client stopped waiting meanwhile, as a
    // real service would finish a request its caller timed out on.
    return false;
  }

  #wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#waits.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#waits.add(wake);
    });
  }

  #tooLarge(
    req: IncomingMessage,
    res: ServerResponse,
    service: ServiceName,
    method: string,
    requestId: string,
    limit: number,
  ): void {
    const err = new CloudError(
      service === "s3" ? "EntityTooLarge" : "RequestEntityTooLarge",
      `Your request body exceeds the local cloud's limit of ${limit} bytes.`,
      413,
    );
    const wire =
      service === "s3"
        ? s3Error(err, requestId, method)
        : service === "ssm"
          ? ssmError(err)
          : ec2Error(err, requestId);
    // The rest of the body is never read: close the connection once the answer is out.
    res.on("finish", () => req.socket.destroy());
    send(res, method, wire, { connection: "close" });
  }

  async #control(
    req: IncomingMessage,
    res: ServerResponse,
    method: string,
    path: string,
  ): Promise<void> {
    const addr = req.socket.remoteAddress ?? "";
    const loopback = addr === "::1" || addr.startsWith("127.") || addr.startsWith("::ffff:127.");
    if (!loopback) {
      sendJson(res, 403, { error: "the control API answers loopback clients only" });
      return;
    }
    let body: Buffer;
    try {
      body = await readBody(req, maxRequestBytes);
    } catch (err) {
      if (!(err instanceof PayloadTooLarge)) throw err;
      res.on("finish", () => req.socket.destroy());
      sendJson(res, 413, { error: "body too large" });
      return;
    }
    const out = handleControl(this.deps, method, path, body.toString("utf8"));
    this.deps.changes.flush();
    sendJson(res, out.status, out.json);
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"] ?? "0");
    if (declared > limit) {
      reject(new PayloadTooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on("data", (chunk: Buffer) => {
      if (failed) return;
      size += chunk.byteLength;
      if (size > limit) {
        failed = true;
        req.pause();
        reject(new PayloadTooLarge());
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      if (!failed) resolve(Buffer.concat(chunks));
    });
    req.on("error", (err) => {
      if (!failed) reject(err);
    });
  });
}

function send(
  res: ServerResponse,
  method: string,
  wire: WireResponse,
  extra: Record<string, string>,
): void {
  const { body } = wire;
  if (res.headersSent || res.destroyed) {
    if (body instanceof Readable) body.destroy();
    return;
  }
  const headers: Record<string, string> = { ...extra, ...wire.headers };
  if (body instanceof Readable) {
    // An S3 object streamed from disk; its length is in the headers. A read error or a client
    // that goes away ends both sides.
    res.writeHead(wire.status, headers);
    if (method === "HEAD") {
      body.destroy();
      res.end();
      return;
    }
    pipeline(body, res).catch(() => res.destroy());
    return;
  }
  if (headers["content-length"] === undefined) {
    headers["content-length"] = String(Buffer.byteLength(body));
  }
  res.writeHead(wire.status, headers);
  res.end(method === "HEAD" ? undefined : body);
}

function sendJson(res: ServerResponse, status: number, json: unknown): void {
  const body = JSON.stringify(json);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": String(Buffer.byteLength(body)),
  });
  res.end(body);
}
