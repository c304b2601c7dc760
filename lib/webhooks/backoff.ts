import type { WebhookSettings } from "../config.js";

/**
 * How long to wait before attempt `attempt + 1` after `attempt` failed: exponential from the
 * first delay, capped, with "equal jitter" (half the delay fixed, half random) so receivers that
 * failed together are not all retried in the same instant — the retry pattern AWS describes in
 * "Error retries and exponential backoff in AWS" (docs.aws.amazon.com/general/latest/gr/api-retries.html).
 * `random` is injectable for tests.
 */
export function retryDelayMs(
  attempt: number,
  s: Pick<WebhookSettings, "firstRetryDelayMs" | "maxRetryDelayMs">,
  random: () => number = Math.random,
): number {
  const exp = Math.min(s.maxRetryDelayMs, s.firstRetryDelayMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(exp / 2 + random() * (exp / 2));
}
