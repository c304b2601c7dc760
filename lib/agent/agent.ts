import { existsSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { createWcpClient, unwrap, type WcpApiError, type WcpClient } from "../client/client.js";
import { backoffMs } from "./backoff.js";
import { type PluginWanted, type PullOptions, pullPlugin } from "./pull.js";

export interface AgentOptions {
  baseUrl: string;
  /** The workspace's token (shown once by POST /workspaces for an external runtime). */
  token: string;
  workspaceId: string;
  /** Heartbeat period; stay well under the control plane's REMOTE_STALE_AFTER_SECONDS (90). */
  intervalMs: number;
  /** Plugins to pull after registering, into `pluginDir/<name>`. */
  plugins: PluginWanted[];
  pluginDir: string;
  maxBytes: number;
  maxFiles: number;
  /** Busy (idle auto-stop waits) while this file exists; idle otherwise or when unset. */
  busyFile?: string;
  /** First retry delay after a failure; doubled per failure up to `intervalMs`, with jitter. */
  retryBaseMs?: number;
  /** One line per state change: registered, unreachable, reachable again, a plugin pulled. */
  log: (line: string) => void;
  fetch?: typeof fetch;
  random?: () => number;
}

export type AgentExit =
  /** Stopped by the signal. */
  | { kind: "stopped" }
  /** The control plane refused the token or the workspace is gone: retrying cannot help. */
  | { kind: "refused"; code: string; message: string };

// Answers that no retry changes: a revoked or wrong token, a removed workspace.
const FATAL = new Set(["UNAUTHORIZED", "FORBIDDEN", "WORKSPACE_NOT_FOUND"]);

/**
 * The agent of an external workspace: registers with its token, pulls its plugins (digest
 * verified), then heartbeats every `intervalMs` with its activity (`busy`/`idle`). A control
 * plane that is down or failing is waited out — exponential backoff with full jitter, capped at
 * the interval, one log line when it goes away and one when it is back — and never ends the
 * loop; only the signal or a refusal no retry can fix (401/403/404) does.
 */
export async function runAgent(opts: AgentOptions, signal: AbortSignal): Promise<AgentExit> {
  const client = createWcpClient({
    baseUrl: opts.baseUrl,
    token: opts.token,
    ...(opts.fetch && { fetch: opts.fetch }),
  });
  const pull: PullOptions = {
    baseUrl: opts.baseUrl.replace(/\/+$/, ""),
    token: opts.token,
    workspaceId: opts.workspaceId,
    dir: opts.pluginDir,
    maxBytes: opts.maxBytes,
    maxFiles: opts.maxFiles,
    signal,
    ...(opts.fetch && { fetch: opts.fetch }),
  };
  const pending = new Map(opts.plugins.map((p) => [p.name, p]));
  let registered = false;
  let failures = 0;
  let downSince: number | null = null;
  let lastStatus: string | null = null;

  while (!signal.aborted) {
    try {
      const { status } = await beat(client, registered, opts.busyFile, signal);
      if (!registered) opts.log(`registered; the workspace is ${status}`);
      else if (downSince !== null) {
        opts.log(
          `control plane reachable again after ${Math.round((Date.now() - downSince) / 1000)} s; the workspace is ${status}`,
        );
      } else if (status !== lastStatus) opts.log(`the workspace is ${status}`);
      registered = true;
      lastStatus = status;
      failures = 0;
      downSince = null;
    } catch (err) {
      if (signal.aborted) break;
      const e = err as WcpApiError;
      if (FATAL.has(e.code)) return { kind: "refused", code: e.code, message: e.message };
      if (downSince === null) {
        downSince = Date.now();
        opts.log(
          `control plane unreachable (${e.code ?? "ERROR"}: ${e.message}); retrying with backoff`,
        );
      }
      const wait = backoffMs(
        failures++,
        { baseMs: opts.retryBaseMs ?? 1_000, maxMs: opts.intervalMs },
        opts.random,
      );
      await pause(wait, signal);
      continue;
    }
    for (const want of [...pending.values()]) {
      const result = await pullPlugin(want, pull);
      if (result.kind === "pulled") {
        pending.delete(want.name);
        opts.log(
          `pulled ${result.name} ${result.version} into ${result.path} (digest ${result.digest} verified)`,
        );
      } else if (result.kind === "refused") {
        // Retrying would fetch the same refusal; the log says why, the heartbeat goes on.
        pending.delete(want.name);
        opts.log(`plugin ${want.name} not pulled: ${result.code}: ${result.message}`);
      }
      // unavailable: tried again after the next heartbeat.
    }
    await pause(opts.intervalMs, signal);
  }
  return { kind: "stopped" };
}

async function beat(
  client: WcpClient,
  registered: boolean,
  busyFile: string | undefined,
  signal: AbortSignal,
) {
  const body = {
    activity: busyFile && existsSync(busyFile) ? ("busy" as const) : ("idle" as const),
  };
  return unwrap(
    registered
      ? client.POST("/registry/heartbeat", { body, signal })
      : client.POST("/registry/register", { body, signal }),
  );
}

async function pause(ms: number, signal: AbortSignal): Promise<void> {
  await sleep(ms, undefined, { signal }).catch(() => {
    // Aborted: the loop sees the signal and ends.
  });
}
