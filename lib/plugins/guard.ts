import { eq } from "drizzle-orm";
import { workspaces } from "../db/schema.js";
import type { Deps } from "../deps.js";
import { safeError } from "../redact.js";
import { isUuid } from "../workspaces/queries.js";

/**
 * The external-runtime guard of install and uninstall. An external workspace has no instance
 * here: it pulls plugins through the download endpoint, so pushing one is meaningless, and
 * without this guard the request would fall through to the running check and answer a
 * misleading "instance not running". Routes call it before any source is fetched.
 */

/**
 * True only when the workspace's runtime is known to be `external`.
 *
 * Fails open: when the runtime cannot be looked up (the query throws), the error is logged and
 * the answer is false, so the request continues to the running check, which gives the accurate
 * answer for what it finds. A missing workspace is not external either (callers have already
 * answered 404 for it).
 */
export async function isExternalRuntime(
  deps: Pick<Deps, "db" | "log">,
  workspaceId: string,
): Promise<boolean> {
  if (!isUuid(workspaceId)) return false;
  try {
    const [row] = await deps.db
      .select({ runtime: workspaces.runtime })
      .from(workspaces)
      .where(eq(workspaces.id, workspaceId))
      .limit(1);
    return row?.runtime === "external";
  } catch (err) {
    deps.log.warn("runtime lookup failed; external-runtime guard fails open", {
      workspaceId,
      error: safeError(err),
    });
    return false;
  }
}

/** The hint an external workspace gets instead of an install: where to pull the plugin from. */
export const downloadHint = (workspaceId: string, name: string): string =>
  `GET /workspaces/${workspaceId}/plugins/${name}/download`;
