/**
 * A point in time by which a unit of work (an API request, a sweep run) must be done, and the
 * signal that aborts what is still running at it. Every step of the work takes at most what
 * remains: AWS calls get it as their abort signal and per-call timeout, waits are cut to it,
 * fetches are aborted by it. Lambda's limits are the reason: API Gateway gives up on a request at
 * 30 s (docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html, "Integration
 * timeout": 30 seconds), and a function past its timeout is killed mid-write.
 */
export interface Deadline {
  /** Epoch milliseconds. */
  readonly at: number;
  /** Aborts at `at`. */
  readonly signal: AbortSignal;
}

/** A deadline `ms` from now (never in the past). */
export function deadlineIn(ms: number, now = Date.now()): Deadline {
  const wait = Math.max(0, Math.floor(ms));
  return { at: now + wait, signal: AbortSignal.timeout(Math.max(1, wait)) };
}

/** Milliseconds left until `deadline` (Infinity without one), never negative. */
export function remainingMs(deadline: Deadline | undefined, now = Date.now()): number {
  return deadline === undefined ? Number.POSITIVE_INFINITY : Math.max(0, deadline.at - now);
}

/**
 * The per-call options of an AWS SDK `send` under a deadline: abort when it passes, and let no
 * single attempt wait longer than what remains or than the clients' own per-attempt timeout (a
 * per-call `requestTimeout` replaces the handler's). Without a deadline, none.
 */
export function callOptions(holder: {
  deadline?: Deadline | undefined;
  aws?: { requestTimeoutMs?: number | undefined };
}): { abortSignal?: AbortSignal; requestTimeout?: number } {
  const d = holder.deadline;
  if (d === undefined) return {};
  const own = holder.aws?.requestTimeoutMs ?? Number.POSITIVE_INFINITY;
  return { abortSignal: d.signal, requestTimeout: Math.max(1, Math.min(own, remainingMs(d))) };
}

/** A deadline that is the earlier of `deadline` and `ms` from now. */
export function within(deadline: Deadline | undefined, ms: number): Deadline {
  const now = Date.now();
  const at = Math.min(deadline?.at ?? Number.POSITIVE_INFINITY, now + Math.max(0, ms));
  return deadlineIn(at - now, now);
}
