import type { AddressInfo } from "node:net";
import { type ServerType, serve } from "@hono/node-server";
import { runSweep } from "../../lib/sweep/run.js";
import type { TestContext } from "./context.js";

/** The test context's app on a loopback port, as `npm start` serves it, with its sweep timer. */
export interface ServedApp {
  url: string;
  port: number;
  /** Stops listening (open connections are cut), as a control plane that went away. */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Serves `t.app` on 127.0.0.1 (an ephemeral port unless `port` is given) and runs the whole
 * sweep every `sweepMs` (one run at a time), as functions/local.ts does.
 */
export async function serveTestApp(
  t: TestContext,
  opts: { sweepMs?: number; port?: number } = {},
): Promise<ServedApp> {
  let server: ServerType | undefined;
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      const s = serve({ fetch: t.app.fetch, port, hostname: "127.0.0.1" }, (info: AddressInfo) =>
        resolve(info.port),
      );
      s.once("error", reject);
      server = s;
    });
  const port = await listen(opts.port ?? 0);
  let sweeping: Promise<unknown> | null = null;
  const timer = setInterval(() => {
    if (sweeping) return;
    sweeping = runSweep(t.deps, { budget: { remainingMs: () => 20_000 }, leaseSeconds: 1 })
      .catch(() => {})
      .finally(() => {
        sweeping = null;
      });
  }, opts.sweepMs ?? 250);
  const stop = () =>
    new Promise<void>((resolve) => {
      const s = server;
      server = undefined;
      if (!s) return resolve();
      (s as { closeAllConnections?: () => void }).closeAllConnections?.();
      s.close(() => resolve());
    });
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    stop,
    restart: async () => {
      await listen(port);
    },
    close: async () => {
      clearInterval(timer);
      await sweeping;
      await stop();
    },
  };
}
