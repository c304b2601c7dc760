import type { Invocation } from "../compute/commands.js";
import type { CommandStatus } from "../db/schema.js";
import { unhandled } from "../unhandled.js";

export type { CommandStatus };

/**
 * SSM's invocation statuses, mapped to the API's small set
 * (docs.aws.amazon.com/systems-manager/latest/userguide/monitor-commands.html, "Understanding
 * command statuses"):
 *
 * - `Pending`, and `Delayed` (the instance was not reachable; SSM retries delivery) → `pending`;
 * - `InProgress`, and `Cancelling` (the agent has been asked to stop it) → `running`;
 * - `Success` → `succeeded`; `Cancelled` → `cancelled`;
 * - `TimedOut` → `timed_out` when the command ran out of its execution timeout, but
 *   `undeliverable` for "Delivery Timed Out" (it never reached the instance);
 * - `Failed` → `failed` (a non-zero exit, or "Terminated" when the instance went away under
 *   it), but `undeliverable` for "Undeliverable" (the instance is gone or unreachable).
 */
export function commandStatusOf(inv: Pick<Invocation, "status" | "statusDetails">): CommandStatus {
  switch (inv.status) {
    case "Pending":
    case "Delayed":
      return "pending";
    case "InProgress":
    case "Cancelling":
      return "running";
    case "Success":
      return "succeeded";
    case "Cancelled":
      return "cancelled";
    case "TimedOut":
      return inv.statusDetails === "Delivery Timed Out" ? "undeliverable" : "timed_out";
    case "Failed":
      return inv.statusDetails === "Undeliverable" ? "undeliverable" : "failed";
    default:
      return unhandled("SSM status", inv.status);
  }
}

/** Statuses after which nothing changes: the command ran to an end, or never ran at all. */
export const FINISHED: ReadonlySet<CommandStatus> = new Set<CommandStatus>([
  "succeeded",
  "failed",
  "timed_out",
  "cancelled",
  "undeliverable",
]);

export const isFinished = (status: CommandStatus) => FINISHED.has(status);
