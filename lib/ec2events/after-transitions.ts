import { within } from "../deadline.js";
import type { Deps } from "../deps.js";
import { safeError } from "../redact.js";
import { deliverPending } from "../webhooks/deliver.js";

// What the event function leaves itself to return after delivering (its own answer, logs).
const RESERVE_MS = 1_000;

/**
 * Called once an EC2 event's transitions have committed, with the workspaces whose status
 * changed, within the event's deadline (`deps.deadline`): their webhooks are delivered now, so a
 * subscriber hears of a crash within seconds rather than at the next sweep. Whatever is not
 * delivered in time (a slow receiver, a retry) is the sweep's webhooks pass's; a failure here
 * never fails the event.
 */
export async function afterTransitions(deps: Deps, workspaceIds: readonly string[]): Promise<void> {
  if (workspaceIds.length === 0) return;
  const remaining = (deps.deadline?.at ?? Date.now() + 10_000) - Date.now() - RESERVE_MS;
  try {
    await deliverPending(deps, { deadline: within(deps.deadline, remaining), workspaceIds });
  } catch (err) {
    deps.log.warn("webhooks not delivered after the EC2 event; the sweep retries", {
      workspaceIds,
      error: safeError(err),
    });
  }
}
