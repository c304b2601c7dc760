import { DrizzleQueryError } from "drizzle-orm/errors";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createLog } from "../../lib/log.js";
import { redactFields, redactText, safeError } from "../../lib/redact.js";

const SECRET = "sk-planted-0f9e8d7c6b5a";

/** A failed insert as drizzle reports it: the statement, its parameters, the driver's error. */
function failedInsert(): DrizzleQueryError {
  const driver = Object.assign(new Error('relation "workspace_tokens" does not exist'), {
    code: "42P01",
    severity: "ERROR",
    table: "workspace_tokens",
    detail: `Key (token_hash)=(${SECRET}) already exists.`,
  });
  return new DrizzleQueryError(
    "insert into workspaces (id, env) values ($1, $2::jsonb)",
    ["6f1c2b1e-0000-4000-8000-000000000001", JSON.stringify({ OPENAI_API_KEY: SECRET })],
    driver,
  );
}

describe("safeError", () => {
  it("keeps a failed query's SQL and SQLSTATE, never its parameters or the row", () => {
    const err = failedInsert();
    // The leak being closed: drizzle's message, stack and own properties all carry the values.
    expect(err.message).toContain(SECRET);
    expect(err.stack).toContain(SECRET);

    const safe = safeError(err);

    expect(JSON.stringify(safe)).not.toContain(SECRET);
    expect(safe).toMatchObject({
      name: "DrizzleQueryError",
      message: "Failed query: insert into workspaces (id, env) values ($1, $2::jsonb)",
      cause: { name: "Error", code: "42P01", table: "workspace_tokens" },
    });
    expect(safe.stack).toMatch(/^\s+at /);
  });

  it("drops the quoted value from a data exception's message (class 22)", () => {
    const err = Object.assign(new Error(`invalid input syntax for type uuid: "${SECRET}"`), {
      code: "22P02",
    });
    expect(safeError(err).message).toBe('invalid input syntax for type uuid: "…"');
  });
});

describe("redactText", () => {
  it.each([
    [`https://bucket.s3.amazonaws.com/k?X-Amz-Signature=${SECRET}&X-Amz-Credential=AKIA`, SECRET],
    [`source github://x-access-token:${SECRET}@owner/repo#v1`, SECRET],
    [`"x-access-token:${SECRET}@owner/repo" is not OWNER/REPO`, SECRET],
    [`https://user:${SECRET}@example.com/p.tgz`, SECRET],
    [`authorization: Bearer ${SECRET}`, SECRET],
    [`Error: Failed query: insert …\nparams: a,${SECRET}\nmore`, SECRET],
  ])("scrubs %j", (text, secret) => {
    const out = redactText(text);
    expect(out).not.toContain(secret);
    expect(out).toContain("[redacted]");
  });

  it("leaves ordinary text alone", () => {
    const text = "instance i-0123456789abcdef0 launched (GET /workspaces/{id}/plugins?limit=5)";
    expect(redactText(text)).toBe(text);
  });
});

describe("redactFields", () => {
  it("redacts fields named like secrets and errors nested anywhere", () => {
    const out = JSON.stringify(
      redactFields({
        env: { OPENAI_API_KEY: SECRET },
        token: SECRET,
        nested: [{ error: failedInsert() }],
        tokenPrefix: "abcd1234",
      }),
    );
    expect(out).not.toContain(SECRET);
    expect(out).toContain("abcd1234");
    expect(out).toContain("Failed query: insert into workspaces");
  });
});

describe("createLog", () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("writes JSON lines with errors and text redacted", () => {
    // Prepare: capture what the Powertools logger writes (ERROR lines go to stderr).
    const lines: string[] = [];
    for (const stream of [process.stdout, process.stderr]) {
      vi.spyOn(stream, "write").mockImplementation((chunk: string | Uint8Array) => {
        lines.push(String(chunk));
        return true;
      });
    }
    const log = createLog("test", "DEBUG");

    // Act
    log.error(`failed: Bearer ${SECRET}`, { error: failedInsert(), env: { K: SECRET } });

    // Assess
    const out = lines.join("");
    expect(out).toContain("Failed query: insert into workspaces");
    expect(out).not.toContain(SECRET);
    expect(() => JSON.parse(lines[0] ?? "")).not.toThrow();
  });
});
