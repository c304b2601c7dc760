import type { MiddlewareHandler } from "hono";
import { bodyLimit as honoBodyLimit } from "hono/body-limit";
import { authenticateWorkspaceToken, isAdminToken } from "../workspaces/tokens.js";
import type { AppEnv, Caller } from "./context.js";
import { ApiError } from "./errors.js";

export const MAX_BODY_BYTES = 64 * 1024;

const tooLarge = () =>
  new ApiError("PAYLOAD_TOO_LARGE", `The request body exceeds ${MAX_BODY_BYTES} bytes.`);

/**
 * Request bodies over 64 KiB are refused before they are read in full. Hono's `bodyLimit` takes
 * a Content-Length header at its word and then lets a body of any length through, so here a
 * declared length only refuses early: the header is dropped and the bytes are always counted.
 */
export const bodyLimit = (): MiddlewareHandler<AppEnv> => {
  const counted = honoBodyLimit({
    maxSize: MAX_BODY_BYTES,
    onError: () => {
      throw tooLarge();
    },
  });
  return async function bodyLimit(c, next) {
    const declared = c.req.header("content-length");
    if (declared !== undefined && c.req.raw.body !== null) {
      if (Number(declared) > MAX_BODY_BYTES) throw tooLarge();
      const headers = new Headers(c.req.raw.headers);
      headers.delete("content-length");
      c.req.raw = new Request(c.req.raw, { headers });
    }
    return counted(c, next);
  };
};

/**
 * `Content-Type: application/json` with an empty body (curl's `-H` on a POST without `-d`) is a
 * request without a body: routes whose body is optional (stop, restart…) take it as such, and
 * those that need one answer that it is missing — not "not valid JSON". Runs before
 * {@link bodyLimit}, while a declared length is still there: a body that declares bytes costs
 * nothing here; otherwise only its first chunk is looked at, on a copy of the stream.
 */
export const emptyJsonBody = (): MiddlewareHandler<AppEnv> =>
  async function emptyJsonBody(c, next) {
    const type = c.req.header("content-type") ?? "";
    const declared = c.req.header("content-length");
    if (
      /^application\/json\b/i.test(type) &&
      !(declared !== undefined && Number(declared) > 0) &&
      (await isEmptyBody(c.req.raw))
    ) {
      const headers = new Headers(c.req.raw.headers);
      headers.delete("content-type");
      headers.delete("content-length");
      c.req.raw = new Request(c.req.raw.url, { method: c.req.raw.method, headers });
    }
    return next();
  };

async function isEmptyBody(req: Request): Promise<boolean> {
  if (req.body === null) return true;
  const reader = (req.clone().body as ReadableStream<Uint8Array>).getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return true;
      if (value.byteLength > 0) return false;
    }
  } finally {
    // Not awaited: a tee's branch's cancel settles only once the other branch (the request's
    // own body, read later by the route) is done too.
    void reader.cancel().catch(() => {});
  }
}

/** One JSON line per request: method, route, status, duration, caller kind — never a token. */
export const accessLog = (): MiddlewareHandler<AppEnv> =>
  async function accessLog(c, next) {
    const started = performance.now();
    await next();
    const caller = c.get("caller");
    c.get("deps").log.info("request", {
      requestId: c.get("requestId"),
      method: c.req.method,
      path: c.req.routePath,
      status: c.res.status,
      durationMs: Math.round((performance.now() - started) * 10) / 10,
      caller: caller?.kind,
      ...(caller?.kind === "workspace" && {
        workspaceId: caller.workspaceId,
        tokenPrefix: caller.tokenPrefix,
      }),
    });
  };

const bearer = (header: string | undefined): string | null => {
  const m = header?.match(/^Bearer[ ]+([^\s]+)\s*$/i);
  return m?.[1] ?? null;
};

type Allowed = "admin" | "workspace" | "admin-or-workspace";

/**
 * Authenticates the caller. Missing or unknown token → 401; a valid token that this route does
 * not accept (a workspace token on an admin route) → 403. Whether a workspace token belongs to
 * the workspace a route names is the route's check (`assertOwnWorkspace`).
 */
export const authenticate = (allowed: Allowed): MiddlewareHandler<AppEnv> =>
  async function authenticate(c, next) {
    const token = bearer(c.req.header("authorization"));
    if (token === null) throw new ApiError("UNAUTHORIZED", "A bearer token is required.");
    const deps = c.get("deps");
    let caller: Caller | null = null;
    if (deps.config.adminToken !== undefined && isAdminToken(token, deps.config.adminToken)) {
      caller = { kind: "admin" };
    } else {
      const ws = await authenticateWorkspaceToken(deps.db, token);
      if (ws) caller = { kind: "workspace", workspaceId: ws.workspaceId, tokenPrefix: ws.prefix };
    }
    if (caller === null) throw new ApiError("UNAUTHORIZED", "The token is not valid.");
    c.set("caller", caller);
    if (allowed !== "admin-or-workspace" && caller.kind !== allowed) {
      throw new ApiError(
        "FORBIDDEN",
        `This route needs ${allowed === "admin" ? "the admin" : "a workspace"} token.`,
      );
    }
    await next();
  };

/** A workspace token may act only on its own workspace. */
export function assertOwnWorkspace(caller: Caller, workspaceId: string): void {
  if (caller.kind === "workspace" && caller.workspaceId !== workspaceId) {
    throw new ApiError("FORBIDDEN", "This token belongs to another workspace.");
  }
}
