import { describe, expect, it } from "vitest";
import {
  hashToken,
  InstanceTokenKeyError,
  instanceToken,
  instanceTokenKey,
  isAdminToken,
  mintToken,
} from "../../lib/workspaces/tokens.js";

describe("tokens", () => {
  it("mints 32 random bytes as base64url with its sha256 and 8-char prefix", () => {
    const a = mintToken();
    const b = mintToken();
    expect(a.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(a.token, "base64url")).toHaveLength(32);
    expect(a.token).not.toBe(b.token);
    expect(a.hash).toBe(hashToken(a.token));
    expect(a.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(a.prefix).toBe(a.token.slice(0, 8));
  });

  it("derives the same instance token for the same generation only", () => {
    const k = "admin-key-0123456789";
    const id = "6f1c2b1e-0000-4000-8000-000000000001";
    expect(instanceToken(k, id, 1).token).toBe(instanceToken(k, id, 1).token);
    expect(instanceToken(k, id, 2).token).not.toBe(instanceToken(k, id, 1).token);
    expect(instanceToken("other-key-0123456789", id, 1).token).not.toBe(
      instanceToken(k, id, 1).token,
    );
    expect(instanceToken(k, id, 1).token).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it("refuses to derive an instance token without a key: never an HMAC with an empty one", () => {
    const id = "6f1c2b1e-0000-4000-8000-000000000001";
    expect(() => instanceToken("", id, 1)).toThrow(InstanceTokenKeyError);
    expect(() => instanceTokenKey({ adminToken: undefined })).toThrow(InstanceTokenKeyError);
    expect(() => instanceTokenKey({ adminToken: "" })).toThrow(InstanceTokenKeyError);
    expect(instanceTokenKey({ adminToken: "admin-key-0123456789" })).toBe("admin-key-0123456789");
  });

  it("compares the admin token exactly, whatever the lengths", () => {
    expect(isAdminToken("secret-admin-token", "secret-admin-token")).toBe(true);
    expect(isAdminToken("secret-admin-tokeN", "secret-admin-token")).toBe(false);
    expect(isAdminToken("secret", "secret-admin-token")).toBe(false);
    expect(isAdminToken("", "secret-admin-token")).toBe(false);
  });
});
