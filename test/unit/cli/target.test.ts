import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { backoffMs } from "../../../lib/agent/backoff.js";
import { UsageError } from "../../../lib/cli/io.js";
import { resolveTarget } from "../../../lib/cli/target.js";

let cwd: string;
beforeAll(() => {
  cwd = mkdtempSync(join(tmpdir(), "wcp-target-"));
  mkdirSync(join(cwd, ".data"));
  writeFileSync(join(cwd, ".data", "admin-token"), "local-admin-token\n", { mode: 0o600 });
});
afterAll(() => rmSync(cwd, { recursive: true, force: true }));

describe("which API and token wcp uses", () => {
  it("defaults to npm start's URL and the admin token it keeps under .data", () => {
    expect(resolveTarget({}, {}, cwd)).toEqual({
      url: "http://127.0.0.1:8787",
      token: "local-admin-token",
      tokenFrom: ".data/admin-token",
    });
  });

  it("WCP_TOKEN, then --token, win over the local file", () => {
    expect(resolveTarget({}, { WCP_TOKEN: "env" }, cwd).token).toBe("env");
    expect(resolveTarget({ token: "flag" }, { WCP_TOKEN: "env" }, cwd).token).toBe("flag");
  });

  it("never sends the local admin token to a remote WCP_URL", () => {
    expect(() => resolveTarget({}, { WCP_URL: "https://wcp.example.com/" }, cwd)).toThrow(
      UsageError,
    );
    expect(
      resolveTarget({}, { WCP_URL: "https://wcp.example.com/", WCP_TOKEN: "t" }, cwd).url,
    ).toBe("https://wcp.example.com");
  });

  it("refuses a WCP_URL that is not http(s) as a usage error", () => {
    expect(() => resolveTarget({}, { WCP_URL: "file:///etc/passwd", WCP_TOKEN: "t" }, cwd)).toThrow(
      UsageError,
    );
    expect(() => resolveTarget({}, { WCP_URL: "not a url", WCP_TOKEN: "t" }, cwd)).toThrow(
      UsageError,
    );
  });
});

describe("the agent's backoff", () => {
  it("doubles its ceiling per failure up to the cap, with full jitter", () => {
    const opts = { baseMs: 1000, maxMs: 30_000 };
    expect([0, 1, 2, 3, 10].map((n) => backoffMs(n, opts, () => 1))).toEqual([
      1000, 2000, 4000, 8000, 30_000,
    ]);
    expect(backoffMs(5, opts, () => 0)).toBe(0);
    expect(backoffMs(2, opts, () => 0.5)).toBe(2000);
  });
});
