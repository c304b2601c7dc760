import { describe, expect, expectTypeOf, it } from "vitest";
import {
  createWcpClient,
  unwrap,
  WcpApiError,
  type WcpErrorCode,
} from "../../../lib/client/client.js";
import { createApp } from "../../../lib/http/app.js";
import type { ErrorCode } from "../../../lib/http/errors.js";
import { ADMIN_TOKEN } from "../../support/context.js";
import { unitDeps } from "../../support/unit-deps.js";

// The typed client over the app itself (app.fetch as its fetch): no port, no database.

const app = createApp(unitDeps());
const client = (token = ADMIN_TOKEN) =>
  createWcpClient({
    baseUrl: "http://wcp.test/",
    token,
    fetch: (input) => Promise.resolve(app.fetch(input as Request)),
  });

describe("the typed client", () => {
  it("knows every error code the API has (tsc checks this)", () => {
    expectTypeOf<Exclude<ErrorCode, WcpErrorCode>>().toEqualTypeOf<never>();
  });

  it("sends the bearer token and answers the typed data", async () => {
    const health = await unwrap(client().GET("/health"));
    expect(health).toEqual({ ok: true, version: expect.any(String) });
  });

  it("throws the API's error code, status and request id", async () => {
    // Act
    const failed = await unwrap(
      client("not-the-token").GET("/workspaces/{id}", {
        params: { path: { id: "00000000-0000-4000-8000-000000000000" } },
      }),
    ).catch((err: unknown) => err);

    // Assess
    expect(failed).toBeInstanceOf(WcpApiError);
    expect(failed).toMatchObject({ code: "UNAUTHORIZED", status: 401 });
    expect((failed as WcpApiError).requestId).toBeTruthy();
  });

  it("names an unreachable server NETWORK, not a crash", async () => {
    const offline = createWcpClient({ baseUrl: "http://127.0.0.1:9", token: "x" });
    const failed = await unwrap(offline.GET("/health")).catch((err: unknown) => err);
    expect(failed).toMatchObject({ code: "NETWORK", status: 0 });
  });
});
