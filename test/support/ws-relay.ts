import { connect, type Socket } from "node:net";
import { type RawData, type WebSocket, WebSocketServer } from "ws";

/**
 * A WebSocket→TCP relay standing in for Neon's proxy, so `@neondatabase/serverless` can reach a
 * local PostgreSQL. The driver opens `ws://127.0.0.1:PORT/v1?address=HOST:PORT` and then speaks
 * the plain Postgres wire protocol in binary messages, which are piped to HOST:PORT and back.
 *
 * It only ever dials loopback: anything else is refused before any outbound connection is made,
 * so a misconfigured test can never send traffic off the machine.
 */
export interface WsRelay {
  port: number;
  /** Drops every relayed connection and stops listening. */
  close(): Promise<void>;
}

export interface WsRelayOptions {
  /** Called just before each outbound TCP connection; lets tests prove what was (not) dialed. */
  onDial?: (host: string, port: number) => void;
}

/** 1008: policy violation, the WebSocket close code for "not allowed". */
const POLICY_VIOLATION = 1008;
/** 1011: the server hit an unexpected condition (here: the upstream socket failed). */
const INTERNAL_ERROR = 1011;
const NORMAL = 1000;
// Pause the upstream socket while this much is queued towards the WebSocket client.
const HIGH_WATER = 1024 * 1024;

/** Host names we accept, mapped to the literal address we dial (never a DNS lookup). */
const LOOPBACK: ReadonlyMap<string, string> = new Map([
  ["127.0.0.1", "127.0.0.1"],
  ["localhost", "127.0.0.1"],
  ["::1", "::1"],
]);

/** Parses `HOST:PORT` (or `[V6]:PORT`); returns undefined unless HOST is loopback. */
export function parseLoopbackAddress(
  address: string | null,
): { host: string; port: number } | undefined {
  if (!address) return undefined;
  const colon = address.lastIndexOf(":");
  if (colon <= 0) return undefined;
  let host = address.slice(0, colon).toLowerCase();
  const portText = address.slice(colon + 1);
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  const dialHost = LOOPBACK.get(host);
  if (!dialHost || !/^\d{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port < 1 || port > 65535) return undefined;
  return { host: dialHost, port };
}

function toBuffer(data: RawData): Buffer {
  if (Array.isArray(data)) return Buffer.concat(data);
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  return data;
}

/** WebSocket close reasons are capped at 123 bytes. */
function reason(text: string): string {
  return Buffer.from(text).subarray(0, 120).toString();
}

function relay(ws: WebSocket, upstream: Socket, sockets: Set<Socket>): void {
  sockets.add(upstream);

  ws.on("message", (data) => {
    // Writes before the TCP connect completes are queued by net.Socket, so the driver's startup
    // message may arrive immediately after the WebSocket opens.
    if (!upstream.write(toBuffer(data))) ws.pause();
  });
  upstream.on("drain", () => ws.resume());

  upstream.on("data", (chunk: Buffer) => {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(chunk, { binary: true }, () => {
      if (upstream.isPaused() && ws.bufferedAmount < HIGH_WATER) upstream.resume();
    });
    if (ws.bufferedAmount >= HIGH_WATER) upstream.pause();
  });

  let upstreamError: Error | undefined;
  upstream.on("error", (error) => {
    upstreamError = error;
  });
  upstream.on("close", () => {
    sockets.delete(upstream);
    if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) {
      if (upstreamError) ws.close(INTERNAL_ERROR, reason(`upstream: ${upstreamError.message}`));
      else ws.close(NORMAL);
    }
  });

  // end() rather than destroy(): flush anything still queued (e.g. the Terminate message).
  ws.on("close", () => upstream.end());
  ws.on("error", () => upstream.destroy());
}

export async function startWsRelay(options: WsRelayOptions = {}): Promise<WsRelay> {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  const sockets = new Set<Socket>();

  await new Promise<void>((resolve, reject) => {
    wss.once("listening", resolve);
    wss.once("error", reject);
  });
  // After start-up, a server-level error must not crash the test process.
  wss.on("error", () => {});

  wss.on("connection", (ws, req) => {
    const params = new URL(req.url ?? "/", "http://relay").searchParams;
    const addresses = params.getAll("address");
    const target = addresses.length === 1 ? parseLoopbackAddress(addresses[0] ?? null) : undefined;
    if (!target) {
      ws.close(POLICY_VIOLATION, "relay only dials loopback (127.0.0.1, ::1, localhost)");
      return;
    }
    options.onDial?.(target.host, target.port);
    const upstream = connect({ host: target.host, port: target.port });
    // Postgres messages are small and latency-bound.
    upstream.setNoDelay(true);
    relay(ws, upstream, sockets);
  });

  const address = wss.address();
  if (!address || typeof address !== "object") throw new Error("startWsRelay: no port");

  let closing: Promise<void> | undefined;
  return {
    port: address.port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        // wss.close() leaves open connections alone, so drop them first.
        for (const client of wss.clients) client.terminate();
        for (const socket of sockets) socket.destroy();
        wss.close(() => resolve());
      });
      return closing;
    },
  };
}
