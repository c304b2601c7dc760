import createClient, { type Client } from "openapi-fetch";
import type { paths } from "./schema.js";

// The typed client: openapi-fetch over the types generated from the served OpenAPI document
// (lib/client/schema.d.ts), so every path, body, answer and error code is checked by tsc.

export type { components, paths } from "./schema.js";

export type WcpClient = Client<paths>;

type Method = "get" | "put" | "post" | "delete" | "patch";
type Operation = { [P in keyof paths]: paths[P][Method & keyof paths[P]] }[keyof paths];
type CodeOf<R> = R extends { content: { "application/json": { error: { code: infer C } } } }
  ? C
  : never;
type CodesOf<O> = O extends { responses: infer R } ? CodeOf<R[keyof R]> : never;

/**
 * Every error code a route declares, from the OpenAPI document; `NOT_FOUND` and
 * `METHOD_NOT_ALLOWED` answer paths no route owns. The rest are the client's own: `NETWORK`,
 * the server could not be reached; `BAD_ANSWER`, it answered something that is not this API's
 * error; `UNEXPECTED_STATUS`, a wait ended in a status other than the awaited one (`failed`).
 */
export type WcpErrorCode =
  | CodesOf<Operation>
  | "NOT_FOUND"
  | "METHOD_NOT_ALLOWED"
  | "NETWORK"
  | "BAD_ANSWER"
  | "UNEXPECTED_STATUS";

/** What an error body carries. */
export interface WcpErrorBody {
  code: WcpErrorCode;
  message: string;
  hint?: string;
  fields?: { path: string; message: string }[];
  requestId?: string;
}

/** A failed call: the API's error `code` (or the client's own), with its status and hint. */
export class WcpApiError extends Error {
  override name = "WcpApiError";
  readonly code: WcpErrorCode;
  readonly hint: string | undefined;
  readonly fields: { path: string; message: string }[];
  readonly requestId: string | undefined;
  constructor(
    readonly status: number,
    body: WcpErrorBody,
    options: { cause?: unknown } = {},
  ) {
    super(body.message, options);
    this.code = body.code;
    this.hint = body.hint;
    this.fields = body.fields ?? [];
    this.requestId = body.requestId;
  }
}

export interface WcpClientOptions {
  /** The API's base URL, e.g. `http://127.0.0.1:8787`. */
  baseUrl: string;
  /** The admin token, or a workspace token for the routes that take one. */
  token: string;
  /** A fetch to use instead of the global one (tests, proxies). */
  fetch?: typeof fetch;
}

/**
 * A client for the whole API. Every call answers `{data, error, response}` as openapi-fetch
 * does; {@link unwrap} turns that into the data or a {@link WcpApiError}. A server that cannot
 * be reached rejects with a `WcpApiError` of code `NETWORK` (the cause attached).
 */
export function createWcpClient(opts: WcpClientOptions): WcpClient {
  const baseFetch = opts.fetch ?? globalThis.fetch;
  const client = createClient<paths>({
    baseUrl: opts.baseUrl.replace(/\/+$/, ""),
    headers: { authorization: `Bearer ${opts.token}` },
    fetch: async (request: Request) => {
      try {
        return await baseFetch(request);
      } catch (err) {
        throw new WcpApiError(
          0,
          { code: "NETWORK", message: `Cannot reach ${new URL(request.url).origin}.` },
          { cause: err },
        );
      }
    },
  });
  return client;
}

/** The API error in a failed call's body, or a `BAD_ANSWER` naming the status. */
export function toWcpError(response: Response, error: unknown): WcpApiError {
  const body = (error as { error?: Partial<WcpErrorBody> } | undefined)?.error;
  if (body && typeof body.code === "string" && typeof body.message === "string") {
    return new WcpApiError(response.status, body as WcpErrorBody);
  }
  return new WcpApiError(response.status, {
    code: "BAD_ANSWER",
    message: `The server answered ${response.status} without an error body this API sends.`,
  });
}

/**
 * The data of a successful call, or throws its error as a {@link WcpApiError}.
 * `await unwrap(client.GET("/workspaces/{id}", { params: { path: { id } } }))`.
 */
export async function unwrap<T>(
  call: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  const { data, error, response } = await call;
  if (error !== undefined || !response.ok) throw toWcpError(response, error);
  return data as T;
}
