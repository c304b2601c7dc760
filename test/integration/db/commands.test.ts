import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { workspaceCommands, workspaceEvents } from "../../../lib/db/schema.js";
import type { Deps, Log } from "../../../lib/deps.js";
import { createApp } from "../../../lib/http/app.js";
import { runSweep } from "../../../lib/sweep/run.js";
import { ADMIN_TOKEN, dbKind, type TestContext } from "../../support/context.js";
import {
  createPending,
  createRunning as createRunning_,
  useCloudSuite,
} from "../../support/workspaces.js";
import { type ComputeCloud, type FaultSpec, waitFor } from "../compute/cloud.js";

// The commands API end to end: the routes over the database (PGlite and PostgreSQL), the local
// cloud's EC2, SSM and S3 through the real SDK, each command run by /bin/sh in the instance's
// directory, its whole output uploaded to the staging bucket as the SSM agent does.

let c: ComputeCloud;
let t: TestContext;

// Small enough that 60,000 bytes of output answer 302, large enough for 30,000 inline.
const INLINE_MAX = 50_000;

useCloudSuite({ env: { DOWNLOAD_INLINE_MAX_BYTES: String(INLINE_MAX) } }, (world) => {
  ({ c, t } = world);
});

interface Command {
  commandId: string;
  status: string;
  exitCode: number | null;
  stdout: string | null;
  stderr: string | null;
  truncated: boolean;
  requestedBy: string;
  requestedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  ssmCommandId: string | null;
  error: string | null;
}

interface ErrorBody {
  error: { code: string; message: string; hint?: string; fields?: { path: string }[] };
}

const createRunning = () => createRunning_(t, c, "cmd-agent");

/** A fault on one call of one action, or `times` of them. */
const fault = (service: FaultSpec["service"], action: string, error: string, times = 1) =>
  c.fault({ service, action, error, times });

const run = (id: string, body: unknown, headers: Record<string, string> = {}, app = t.app) =>
  app.request(`/workspaces/${id}/commands`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${ADMIN_TOKEN}`,
      "content-type": "application/json",
      ...headers,
    },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });

async function ran(id: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await run(id, body, headers);
  return { status: res.status, body: (await res.json()) as Command };
}

async function errorOf(res: Response): Promise<[number, string, ErrorBody["error"]]> {
  const body = (await res.json()) as ErrorBody;
  return [res.status, body.error.code, body.error];
}

const get = async (id: string, commandId: string) =>
  (await (await t.admin("GET", `/workspaces/${id}/commands/${commandId}`)).json()) as Command;

/** Polls GET …/commands/:id until the command's status is one of `statuses`. */
const until = (id: string, commandId: string, statuses: string[], timeoutMs = 10_000) =>
  waitFor(
    async () => {
      const cmd = await get(id, commandId);
      return statuses.includes(cmd.status) ? cmd : undefined;
    },
    timeoutMs,
    100,
  );

const records = async () => t.opened.db.select().from(workspaceCommands);

describe(`commands API over ${dbKind()}`, () => {
  describe("a command that runs", () => {
    it("answers 200 with its result; each argv element reaches the program as one literal word", async () => {
      const ws = await createRunning();

      const { status, body } = await ran(ws.id, {
        argv: ["printf", "%s|", "a b", "it's", "$(id)", "`id`", "*", ""],
      });

      expect(status).toBe(200);
      expect(body).toMatchObject({
        status: "succeeded",
        exitCode: 0,
        stdout: "a b|it's|$(id)|`id`|*||",
        stderr: "",
        truncated: false,
        requestedBy: "admin",
      });
      expect(body.startedAt).not.toBeNull();
      expect(body.finishedAt).not.toBeNull();
      const [row] = await records();
      expect(row).toMatchObject({
        workspaceId: ws.id,
        instanceId: ws.instanceId,
        generation: 1,
        kind: "argv",
        argv: ["printf", "%s|", "a b", "it's", "$(id)", "`id`", "*", ""],
        status: "succeeded",
        exitCode: 0,
        requestedBy: "admin",
      });
      expect(row?.ssmCommandId).toMatch(/^[0-9a-f-]{36}$/);
      // Its end is in the event log (the webhooks' outbox), once.
      const finished = await t.opened.db
        .select()
        .from(workspaceEvents)
        .where(eq(workspaceEvents.type, "command.finished"));
      expect(finished).toHaveLength(1);
      expect(finished[0]).toMatchObject({
        workspaceId: ws.id,
        to: null,
        data: { commandId: body.commandId, status: "succeeded", exitCode: 0 },
      });
    });

    it("exports env and enters cwd; env values reach neither the database nor the logs", async () => {
      const lines: string[] = [];
      const record = (msg: string, ...extra: Record<string, unknown>[]) => {
        lines.push(JSON.stringify([msg, ...extra]));
      };
      const log: Log = { debug: record, info: record, warn: record, error: record };
      const app = createApp({ ...t.deps, log });
      const ws = await createRunning();
      const secret = "s3cr3t value 'with quotes'";
      expect((await ran(ws.id, { argv: ["mkdir", "-p", "work/dir"] })).body.status).toBe(
        "succeeded",
      );

      const res = await run(
        ws.id,
        {
          argv: ["sh", "-c", 'printf "%s\\n" "$API_TOKEN"; pwd'],
          env: { API_TOKEN: secret },
          cwd: "work/dir",
        },
        {},
        app,
      );
      const body = (await res.json()) as Command;

      expect(body.stdout).toBe(`${secret}\n${join(ws.dir, "work/dir")}\n`);
      const stored = JSON.stringify(await records());
      expect(stored).toContain('"API_TOKEN"');
      expect(stored).not.toContain("s3cr3t");
      expect(lines.length).toBeGreaterThan(0);
      expect(lines.join("\n")).not.toContain("s3cr3t");
    });

    it("runs a script as is under set -eu and keeps only its digest", async () => {
      const ws = await createRunning();
      const script = "echo one\nfalse\necho never\n";

      const { status, body } = await ran(ws.id, { script });

      expect(status).toBe(200);
      expect(body).toMatchObject({ status: "failed", exitCode: 1, stdout: "one\n" });
      const [row] = await records();
      expect(row).toMatchObject({
        kind: "script",
        argv: null,
        scriptSha256: createHash("sha256").update(script).digest("hex"),
        scriptBytes: Buffer.byteLength(script),
      });
      expect(JSON.stringify(row)).not.toContain("echo never");
    });

    it("reports a non-zero exit as failed with its code and stderr", async () => {
      const ws = await createRunning();

      const { status, body } = await ran(ws.id, { argv: ["sh", "-c", "echo bad >&2; exit 3"] });

      expect(status).toBe(200);
      expect(body).toMatchObject({ status: "failed", exitCode: 3, stderr: "bad\n", error: null });
    });

    it("answers 202 past waitSeconds, and ends timed_out at timeoutSeconds", async () => {
      const ws = await createRunning();

      const { status, body } = await ran(ws.id, {
        argv: ["sleep", "30"],
        timeoutSeconds: 5,
        waitSeconds: 0,
      });

      expect(status).toBe(202);
      expect(Object.keys(body).sort()).toEqual(["commandId", "status"]);
      expect(["pending", "running"]).toContain(body.status);
      const ended = await until(ws.id, body.commandId, ["timed_out", "failed"], 15_000);
      expect(ended).toMatchObject({ status: "timed_out", exitCode: null });
      expect(ended.error).toMatch(/Execution Timed Out/);
    });

    it("cancels a running command; cancelling again answers the same outcome", async () => {
      const ws = await createRunning();
      const { body } = await ran(ws.id, { argv: ["sleep", "30"], waitSeconds: 0 });
      await until(ws.id, body.commandId, ["running"]);

      const res = await t.admin("POST", `/workspaces/${ws.id}/commands/${body.commandId}/cancel`);
      const again = await t.admin("POST", `/workspaces/${ws.id}/commands/${body.commandId}/cancel`);

      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ status: "cancelled", exitCode: null });
      expect(again.status).toBe(200);
      expect(await again.json()).toMatchObject({ status: "cancelled" });
      expect(await c.calls("ssm:CancelCommand")).toBe(1);
    });
  });

  describe("output", () => {
    // 10-byte lines: line i holds i as nine digits and a newline.
    const lines = (n: number) =>
      `i=0; while [ $i -lt ${n} ]; do printf '%09d\\n' $i; i=$((i+1)); done; echo done >&2`;

    it("keeps SSM's 24,000 characters inline, cut and marked, and serves the whole of it", async () => {
      const ws = await createRunning();

      const { body } = await ran(ws.id, { script: lines(3000) });

      expect(body.truncated).toBe(true);
      expect(body.stdout).toHaveLength(24_000);
      expect(body.stdout?.endsWith("--output truncated--")).toBe(true);
      const out = await t.admin("GET", `/workspaces/${ws.id}/commands/${body.commandId}/output`);
      expect(out.status).toBe(200);
      expect(out.headers.get("content-type")).toMatch(/^text\/plain/);
      const text = await out.text();
      expect(text).toHaveLength(30_000);
      expect(text.endsWith("000002999\n")).toBe(true);
      const err = await t.admin(
        "GET",
        `/workspaces/${ws.id}/commands/${body.commandId}/output?stream=stderr`,
      );
      expect(await err.text()).toBe("done\n");
    });

    it("answers 302 to a presigned URL above DOWNLOAD_INLINE_MAX_BYTES", async () => {
      const ws = await createRunning();
      const { body } = await ran(ws.id, { script: lines(6000) });

      const out = await t.admin("GET", `/workspaces/${ws.id}/commands/${body.commandId}/output`);

      expect(out.status).toBe(302);
      const url = out.headers.get("location") ?? "";
      expect(url).toContain("X-Amz-Signature=");
      const fetched = await fetch(url);
      expect(fetched.status).toBe(200);
      const text = await fetched.text();
      expect(text).toHaveLength(60_000);
      expect(text.startsWith("000000000\n")).toBe(true);
    });

    it("serves an empty stream (which the agent never uploads) as empty, and 409 while running", async () => {
      const ws = await createRunning();
      const quiet = await ran(ws.id, { argv: ["true"] });
      const slow = await ran(ws.id, { argv: ["sleep", "30"], waitSeconds: 0 });

      const empty = await t.admin(
        "GET",
        `/workspaces/${ws.id}/commands/${quiet.body.commandId}/output`,
      );
      const [status, code] = await errorOf(
        await t.admin("GET", `/workspaces/${ws.id}/commands/${slow.body.commandId}/output`),
      );

      expect(empty.status).toBe(200);
      expect(await empty.text()).toBe("");
      expect([status, code]).toEqual([409, "COMMAND_RUNNING"]);
      await t.admin("POST", `/workspaces/${ws.id}/commands/${slow.body.commandId}/cancel`);
    });
  });

  describe("Idempotency-Key", () => {
    // Appends a line per run to a file on the instance's disk: a second run would show.
    const appendOnce = { argv: ["sh", "-c", 'echo ran >> "$WORKSPACE_ROOT/runs.log"; echo ok'] };

    it("a retried request answers for the same command and never runs it twice", async () => {
      const ws = await createRunning();
      const key = { "idempotency-key": "retry-1" };

      const first = await ran(ws.id, appendOnce, key);
      const second = await ran(ws.id, { ...appendOnce, waitSeconds: 0 }, key);

      expect(first.status).toBe(200);
      expect(second.status).toBe(200);
      expect(second.body.commandId).toBe(first.body.commandId);
      expect(second.body.stdout).toBe("ok\n");
      expect(await readFile(join(ws.dir, "runs.log"), "utf8")).toBe("ran\n");
      expect(await c.calls("ssm:SendCommand")).toBe(1);
      expect(await records()).toHaveLength(1);
    });

    it("concurrent duplicates send once", async () => {
      const ws = await createRunning();
      const key = { "idempotency-key": "race-1" };

      const results = await Promise.all([ran(ws.id, appendOnce, key), ran(ws.id, appendOnce, key)]);

      expect(results.map((r) => r.status)).toEqual([200, 200]);
      expect(results[0]?.body.commandId).toBe(results[1]?.body.commandId);
      expect(await c.calls("ssm:SendCommand")).toBe(1);
      expect(await readFile(join(ws.dir, "runs.log"), "utf8")).toBe("ran\n");
    });

    it("the same key with another command → 409 IDEMPOTENCY_KEY_REUSED, nothing sent", async () => {
      const ws = await createRunning();
      const key = { "idempotency-key": "reuse-1" };
      await ran(ws.id, appendOnce, key);
      await c.resetStats();

      const [status, code] = await errorOf(await run(ws.id, { argv: ["true"] }, key));
      const [envStatus] = await errorOf(await run(ws.id, { ...appendOnce, env: { A: "1" } }, key));

      expect([status, code]).toEqual([409, "IDEMPOTENCY_KEY_REUSED"]);
      expect(envStatus).toBe(409);
      expect(await c.calls("ssm:SendCommand")).toBe(0);
    });

    it("a key whose command was never sent is free again: the retry sends", async () => {
      const ws = await createRunning();
      const key = { "idempotency-key": "unsent-1" };
      await fault("ssm", "SendCommand", "InvalidInstanceId");

      const [status, code] = await errorOf(await run(ws.id, appendOnce, key));
      const retry = await ran(ws.id, appendOnce, key);

      expect([status, code]).toEqual([503, "INSTANCE_UNREACHABLE"]);
      expect(retry.status).toBe(200);
      expect(await readFile(join(ws.dir, "runs.log"), "utf8")).toBe("ran\n");
      const rows = (await records()).sort((a, b) => a.seq - b.seq);
      expect(rows.map((r) => [r.status, r.ssmCommandId === null])).toEqual([
        ["undeliverable", true],
        ["succeeded", false],
      ]);
      expect(rows[0]?.error).toMatch(/not sent/);
    });
  });

  describe("preconditions", () => {
    it("an unknown workspace or command → 404", async () => {
      const ws = await createRunning();
      const none = "00000000-0000-4000-8000-000000000000";

      const unknownWs = await errorOf(await run(none, { argv: ["true"] }));
      const unknownCmd = await errorOf(
        await t.admin("GET", `/workspaces/${ws.id}/commands/${none}`),
      );
      const malformed = await errorOf(await t.admin("GET", `/workspaces/${ws.id}/commands/x`));

      expect(unknownWs.slice(0, 2)).toEqual([404, "WORKSPACE_NOT_FOUND"]);
      expect(unknownCmd.slice(0, 2)).toEqual([404, "COMMAND_NOT_FOUND"]);
      expect(malformed.slice(0, 2)).toEqual([404, "COMMAND_NOT_FOUND"]);
    });

    it("an external workspace → 422 EXTERNAL_RUNTIME; a removed one → 409; nothing recorded", async () => {
      const ext = (await (
        await t.admin("POST", "/workspaces", { name: "laptop", runtime: "external" })
      ).json()) as { workspace: { id: string } };
      const ws = await createRunning();
      await t.admin("DELETE", `/workspaces/${ws.id}`);

      const external = await errorOf(await run(ext.workspace.id, { argv: ["true"] }));
      const removed = await errorOf(await run(ws.id, { argv: ["true"] }));

      expect(external.slice(0, 2)).toEqual([422, "EXTERNAL_RUNTIME"]);
      expect(removed.slice(0, 2)).toEqual([409, "WORKSPACE_REMOVED"]);
      expect(await records()).toEqual([]);
      expect(await c.calls("ssm:SendCommand")).toBe(0);
    });

    it("no instance yet, or a stopped one → 503 INSTANCE_NOT_RUNNING; nothing recorded", async () => {
      const pending = await createPending(t, c);
      const ws = await createRunning();
      await c.crash(ws.instanceId);

      const noInstance = await errorOf(await run(pending.id, { argv: ["true"] }));
      const stopped = await errorOf(await run(ws.id, { argv: ["true"] }));

      expect(noInstance.slice(0, 2)).toEqual([503, "INSTANCE_NOT_RUNNING"]);
      expect(stopped.slice(0, 2)).toEqual([503, "INSTANCE_NOT_RUNNING"]);
      expect(stopped[2].message).toMatch(/not running/);
      expect(await records()).toEqual([]);
    });

    it("EC2 not answering clearly → 503 INSTANCE_STATE_UNKNOWN, never 'not running'", async () => {
      const ws = await createRunning();
      await fault("ec2", "DescribeInstances", "InternalError", 10);

      const [status, code, error] = await errorOf(await run(ws.id, { argv: ["true"] }));

      expect([status, code]).toEqual([503, "INSTANCE_STATE_UNKNOWN"]);
      expect(error.message).not.toMatch(/not running/);
      expect(await records()).toEqual([]);
    });

    it("an SSM agent that is not reachable → 503 INSTANCE_UNREACHABLE, recorded as never sent", async () => {
      const ws = await createRunning();
      await fault("ssm", "SendCommand", "InvalidInstanceId");

      const [status, code] = await errorOf(await run(ws.id, { argv: ["true"] }));

      expect([status, code]).toEqual([503, "INSTANCE_UNREACHABLE"]);
      const [row] = await records();
      expect(row).toMatchObject({ status: "undeliverable", ssmCommandId: null, exitCode: null });
    });
  });

  describe("bad input → 400 naming the field, nothing sent", () => {
    const cases: [string, unknown, string][] = [
      ["neither argv nor script", {}, "argv"],
      ["both argv and script", { argv: ["true"], script: "true" }, "script"],
      ["empty argv", { argv: [] }, "argv"],
      ["an empty program name", { argv: [""] }, "argv.0"],
      ["NUL in an argument", { argv: ["echo", "a\u0000b"] }, "argv.1"],
      ["{{ in an argument", { argv: ["echo", "{{ssm:secret}}"] }, "argv.1"],
      ["{{ in a script", { script: "echo {{ssm:secret}}" }, "script"],
      ["NUL in a script", { script: "echo a\u0000" }, "script"],
      ["{{ in an env value", { argv: ["true"], env: { TOKEN: "{{ssm:x}}" } }, "env.TOKEN"],
      ["NUL in an env value", { argv: ["true"], env: { TOKEN: "a\u0000" } }, "env.TOKEN"],
      ["{{ in cwd", { argv: ["true"], cwd: "a{{b" }, "cwd"],
      ["NUL in cwd", { argv: ["true"], cwd: "a\u0000" }, "cwd"],
      ["a relative cwd climbing out", { argv: ["true"], cwd: "../etc" }, "cwd"],
      ["more than 256 argv items", { argv: Array.from({ length: 257 }, () => "x") }, "argv"],
      ["a script over 64 KiB once quoted", { script: "'".repeat(20_000) }, "script"],
      ["a bad env key", { argv: ["true"], env: { "BAD-KEY": "v" } }, "env.BAD-KEY"],
      ["a __proto__ env key", '{"argv":["true"],"env":{"__proto__":"v"}}', "env.__proto__"],
      ["a negative timeout", { argv: ["true"], timeoutSeconds: -1 }, "timeoutSeconds"],
      ["a timeout below the agent's 5 s", { argv: ["true"], timeoutSeconds: 4 }, "timeoutSeconds"],
      ["a huge timeout", { argv: ["true"], timeoutSeconds: 172_801 }, "timeoutSeconds"],
      ["a fractional timeout", { argv: ["true"], timeoutSeconds: 5.5 }, "timeoutSeconds"],
      ["a wait past the request's deadline", { argv: ["true"], waitSeconds: 26 }, "waitSeconds"],
      ["a negative wait", { argv: ["true"], waitSeconds: -1 }, "waitSeconds"],
      ["an unknown field", { argv: ["true"], shell: "bash" }, "(body)"],
    ];

    it.each(cases)("%s", async (_name, body, field) => {
      const ws = await createRunning();
      await c.resetStats();

      const [status, code, error] = await errorOf(await run(ws.id, body));

      expect([status, code]).toEqual([400, "VALIDATION_FAILED"]);
      expect(error.fields?.map((f) => f.path)).toContain(field);
      expect(JSON.stringify(error)).not.toContain("ssm:secret");
      expect(await c.calls("ssm:SendCommand")).toBe(0);
      expect(await records()).toEqual([]);
    });
  });

  describe("the audit list", () => {
    it("lists commands newest first with exact keyset pages", async () => {
      const ws = await createRunning();
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        ids.push(
          (await ran(ws.id, { argv: ["echo", String(i)], env: { N: String(i) } })).body.commandId,
        );
      }

      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const page = (await (
          await t.admin(
            "GET",
            `/workspaces/${ws.id}/commands?limit=2${cursor ? `&cursor=${cursor}` : ""}`,
          )
        ).json()) as {
          commands: { commandId: string; envKeys: string[]; argv: string[] }[];
          nextCursor: string | null;
        };
        seen.push(...page.commands.map((x) => x.commandId));
        expect(page.commands.every((x) => x.envKeys.join() === "N")).toBe(true);
        cursor = page.nextCursor;
      } while (cursor !== null);

      expect(seen).toEqual([...ids].reverse());
      const [bad] = await errorOf(
        await t.admin(
          "GET",
          `/workspaces/${ws.id}/commands?cursor=${Buffer.from("e|1").toString("base64url")}`,
        ),
      );
      expect(bad).toBe(400);
    });
  });

  describe("commands whose requests ended first (the sweep's commands pass)", () => {
    /** Deps whose clock runs ahead: the pass's settle time, without waiting. */
    const later = (aheadMs: number): Deps => ({
      ...t.deps,
      clock: { now: () => new Date(Date.now() + aheadMs) },
    });
    const sweep = (deps: Deps = t.deps) =>
      runSweep(deps, { budget: { remainingMs: () => 60_000 }, passes: ["commands"] });
    /** Sweeps until the only record has ended; a run may find its command still running. */
    const sweepUntilEnded = (deps: Deps = t.deps) =>
      waitFor(
        async () => {
          await sweep(deps);
          const [row] = await records();
          return row && !["pending", "running"].includes(row.status) ? row : undefined;
        },
        10_000,
        100,
      );

    it("finishes a command that outlived its request's wait", async () => {
      const ws = await createRunning();
      const { body } = await ran(ws.id, {
        argv: ["sh", "-c", "sleep 0.5; exit 4"],
        waitSeconds: 0,
      });

      const row = await sweepUntilEnded();

      expect(row).toMatchObject({ id: body.commandId, status: "failed", exitCode: 4 });
    });

    it("finds a send whose answer was lost in SSM's history; it ran once", async () => {
      const ws = await createRunning();
      await c.fault({ service: "ssm", action: "SendCommand", loseAnswer: "drop", times: 1 });

      const { status, body } = await ran(ws.id, {
        argv: ["sh", "-c", 'echo ran >> "$WORKSPACE_ROOT/lost.log"'],
      });
      const pending = await get(ws.id, body.commandId);
      const first = await sweep(later(61_000));
      const row = await sweepUntilEnded(later(61_000));

      expect([status, body.status]).toEqual([202, "pending"]);
      expect(pending).toMatchObject({ status: "pending", ssmCommandId: null });
      expect(pending.error).toMatch(/answer was lost/);
      expect(first.passes.commands.changed).toBe(1);
      expect(row).toMatchObject({ status: "succeeded", exitCode: 0 });
      expect(row?.ssmCommandId).not.toBeNull();
      expect(await readFile(join(ws.dir, "lost.log"), "utf8")).toBe("ran\n");
      expect(await c.calls("ssm:SendCommand")).toBe(1);
    });

    it("ends a send SSM never took as undeliverable, and never sends it again", async () => {
      const ws = await createRunning();
      await c.fault({
        service: "ssm",
        action: "SendCommand",
        error: "InternalError",
        httpStatus: 500,
        times: 1,
      });
      const { status, body } = await ran(ws.id, { argv: ["true"] });

      const early = await sweep(later(1_000));
      await sweep(later(61_000));

      expect(status).toBe(202);
      expect(early.passes.commands.transient).toBe(1);
      const [row] = await records();
      expect(row).toMatchObject({
        id: body.commandId,
        status: "undeliverable",
        ssmCommandId: null,
      });
      expect(row?.error).toMatch(/never sent/);
      expect(await c.calls("ssm:SendCommand")).toBe(1);
    });
  });
});
