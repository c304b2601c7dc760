import { setTimeout as sleep } from "node:timers/promises";
import {
  type components,
  unwrap,
  type WcpApiError,
  type WcpClient,
  WcpApiError as WcpError,
} from "../client/client.js";

type Workspace = components["schemas"]["Workspace"];
type Status = Workspace["status"];

// The wait route holds a request at most 25 s (inside API Gateway's 30 s); the CLI repeats it
// until its own deadline.
const ROUTE_MAX_WAIT_SECONDS = 25;
// Statuses a workspace does not leave by itself: waiting past them for another is pointless.
const DEAD_ENDS: readonly Status[] = ["failed", "removed"];

/**
 * Waits until the workspace is in one of `wanted`, by repeating `GET /workspaces/{id}/wait`
 * until `timeoutMs` has passed. Throws `WAIT_TIMEOUT` past the deadline, `UNEXPECTED_STATUS`
 * when it lands in a dead end (`failed`, `removed`) it was not waiting for, and any API error.
 */
export async function waitForStatus(
  client: WcpClient,
  id: string,
  wanted: readonly Status[],
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<Workspace> {
  const deadline = Date.now() + timeoutMs;
  const statuses = [...new Set([...wanted, ...DEAD_ENDS])].join(",");
  for (;;) {
    const left = Math.max(0, Math.floor((deadline - Date.now()) / 1000));
    const call = client.GET("/workspaces/{id}/wait", {
      params: {
        path: { id },
        query: { status: statuses, timeoutSeconds: Math.min(left, ROUTE_MAX_WAIT_SECONDS) },
      },
      ...(signal && { signal }),
    });
    try {
      const { workspace } = await unwrap(call);
      if (wanted.includes(workspace.status)) return workspace;
      throw new WcpError(409, {
        code: "UNEXPECTED_STATUS",
        message: `The workspace is ${workspace.status}, not ${wanted.join(" or ")}${workspace.lastError ? ` (${workspace.lastError})` : ""}.`,
        hint: `wcp events ${id} shows what happened.`,
      });
    } catch (err) {
      const timedOut = (err as WcpApiError).code === "WAIT_TIMEOUT";
      if (!timedOut || left === 0 || Date.now() >= deadline) throw err;
    }
  }
}

/**
 * Calls `probe` until it answers a value (not undefined) or `timeoutMs` passes, backing off
 * from 250 ms to 2 s between calls; past the deadline throws `WAIT_TIMEOUT` naming `what`.
 */
export async function pollUntil<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let delay = 250;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() >= deadline) {
      throw new WcpError(408, {
        code: "WAIT_TIMEOUT",
        message: `${what} did not finish within ${Math.round(timeoutMs / 1000)} s.`,
        hint: "Raise --timeout, or look again later: the work goes on on the server.",
      });
    }
    await sleep(Math.min(delay, Math.max(0, deadline - Date.now())), undefined, { signal });
    delay = Math.min(delay * 2, 2_000);
  }
}
