import type { Deps } from "../deps.js";

/**
 * Called once an EC2 event's transitions have committed, with the workspaces whose status
 * changed, within the event's deadline (`deps.deadline`). The place where the change is announced
 * right away (webhook delivery from the outbox) instead of at the next scheduled pass; nothing yet.
 */
export async function afterTransitions(
  _deps: Deps,
  _workspaceIds: readonly string[],
): Promise<void> {}
