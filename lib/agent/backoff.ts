/**
 * The wait before retry number `attempt` (0-based): "full jitter", a uniformly random time up
 * to `min(maxMs, baseMs · 2^attempt)`. The random spread keeps a fleet of agents that lost the
 * control plane at the same moment from coming back at the same moment; the AWS SDKs retry the
 * same way (docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html: exponential
 * backoff with jitter, capped).
 */
export function backoffMs(
  attempt: number,
  opts: { baseMs: number; maxMs: number },
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(opts.maxMs, opts.baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(random() * ceiling);
}
