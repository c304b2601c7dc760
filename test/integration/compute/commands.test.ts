import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  type CommandResult,
  readCommand,
  runCommand,
  sendCommand,
} from "../../../lib/compute/commands.js";
import { program, sh } from "../../../lib/compute/script.js";
import { type ComputeCloud, type ComputeDeps, startComputeCloud, waitFor } from "./cloud.js";

// runCommand against the local cloud's SSM through the real SDK: the ping precondition,
// SendCommand, polling through the InvocationDoesNotExist race, results, timeouts, cancellation.

// Long enough that the first poll (at 250 ms) always meets the InvocationDoesNotExist race.
const INVOCATION_VISIBLE_MS = 400;

let c: ComputeCloud;
let deps: ComputeDeps;
let instance: string;

async function online(id: string): Promise<void> {
  await waitFor(async () => ((await c.instance(id)).ssmPingStatus === "Online" ? true : undefined));
}

/** runCommand, expecting it to have run: fails the test on unreachable / transient. */
async function run(
  script: ReturnType<typeof program>,
  opts: Parameters<typeof runCommand>[3] = { timeoutSeconds: 30 },
): Promise<CommandResult> {
  const out = await runCommand(deps, instance, script, opts);
  if (out.kind !== "finished") throw new Error(`command did not run: ${JSON.stringify(out)}`);
  return out.result;
}

beforeAll(async () => {
  c = await startComputeCloud({ invocationVisibleDelayMs: INVOCATION_VISIBLE_MS });
  deps = c.deps();
  [instance = ""] = await c.launchMany(1);
  await online(instance);
});

afterAll(async () => {
  await c?.close();
});

afterEach(async () => {
  await c.clearFaults();
});

describe("runCommand", () => {
  it("runs a script and returns its stdout with success", async () => {
    const result = await run(program(sh`echo hello; echo "root=$WORKSPACE_ROOT"`));

    expect(result).toMatchObject({
      ok: true,
      status: "Success",
      exitCode: 0,
      stdout: `hello\nroot=${(await c.instance(instance)).dir}\n`,
      stderr: "",
      truncated: false,
    });
    expect(result.commandId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("reports a non-zero exit as a failure carrying the exit code and stderr", async () => {
    const result = await run(program(sh`echo partial; echo oops >&2; exit 3`));

    expect(result).toMatchObject({
      ok: false,
      status: "Failed",
      exitCode: 3,
      stdout: "partial\n",
      stderr: "oops\n",
    });
  });

  it("stops at the first failing command (set -eu from the prologue)", async () => {
    const result = await run(program(sh`false`, sh`echo not reached`));

    expect(result).toMatchObject({ ok: false, exitCode: 1, stdout: "" });
  });

  it("passes values with quotes, newlines and $() to the instance literally", async () => {
    // Prepare
    const value = `it's "quoted" $(touch pwned) \`touch pwned2\` $HOME\nline two; rm -rf ./x # * ~ \\ '`;
    const name = "value's file.txt";

    // Act
    const result = await run(
      program(
        sh`printf '%s' ${value} > "$WORKSPACE_ROOT/"${name}`,
        sh`printf '%s' ${value}`,
        sh`ls "$WORKSPACE_ROOT"`,
      ),
    );

    // Assess
    const dir = (await c.instance(instance)).dir;
    expect(result.ok).toBe(true);
    expect(result.stdout.startsWith(value)).toBe(true);
    expect(await readFile(join(dir, name), "utf8")).toBe(value);
    const listing = result.stdout.slice(value.length).split("\n");
    expect(listing).toContain(name);
    expect(listing).not.toContain("pwned");
    expect(listing).not.toContain("pwned2");
  });

  it("flags stdout over 24,000 characters as truncated", async () => {
    // 3,000 lines of 11 characters: 33,000 characters.
    const result = await run(program(sh`yes 0123456789 | head -n 3000`));

    expect(result.ok).toBe(true);
    expect(result.truncated).toBe(true);
    expect(result.stdout).toHaveLength(24_000);
    expect(result.stdout.endsWith("--output truncated--")).toBe(true);
  });

  it("does not flag output under the limit", async () => {
    const result = await run(program(sh`yes 0123456789 | head -n 2000`));

    expect(result.truncated).toBe(false);
    expect(result.stdout).toHaveLength(22_000);
  });

  it("reports TimedOut when the script outlives its executionTimeout", async () => {
    // 5 s is the smallest executionTimeout the agent honours.
    const started = Date.now();
    const result = await run(program(sh`echo started; sleep 60`), {
      timeoutSeconds: 5,
      waitSeconds: 20,
    });

    expect(result).toMatchObject({ ok: false, status: "TimedOut", exitCode: -1 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(5_000);
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it("cancels the command and says DeadlineExceeded when the wait deadline passes", async () => {
    // Prepare
    await c.resetStats();

    // Act
    const started = Date.now();
    const result = await run(program(sh`sleep 60`), { timeoutSeconds: 60, waitSeconds: 1 });
    const tookMs = Date.now() - started;

    // Assess
    expect(result).toMatchObject({ ok: false, status: "DeadlineExceeded", exitCode: -1 });
    expect(tookMs).toBeGreaterThanOrEqual(1_000);
    expect(tookMs).toBeLessThan(4_000);
    expect(await c.calls("ssm:CancelCommand")).toBe(1);
    // The instance really stopped it.
    const after = await waitFor(
      async () => (await readCommand(deps, result.commandId, instance)) ?? undefined,
    );
    expect(after.status).toBe("Cancelled");
  });

  it("polls through InvocationDoesNotExist right after SendCommand", async () => {
    // Prepare
    const sent = await sendCommand(deps, instance, program(sh`echo raced`), { timeoutSeconds: 30 });
    if (sent.kind !== "sent") throw new Error(`not sent: ${JSON.stringify(sent)}`);

    // Act: the race is "not yet", not an error.
    const early = await readCommand(deps, sent.commandId, instance);
    await c.resetStats();
    const result = await run(program(sh`echo raced again`));

    // Assess
    expect(early).toBeNull();
    expect(result).toMatchObject({ ok: true, stdout: "raced again\n" });
    // The first poll (250 ms) met the race, a later one the result.
    expect(await c.calls("ssm:GetCommandInvocation")).toBeGreaterThanOrEqual(2);
  });

  it("keeps polling through a transient GetCommandInvocation failure", async () => {
    await c.fault({
      service: "ssm",
      action: "GetCommandInvocation",
      error: "InternalServerError",
      times: 4,
    });

    const result = await run(program(sh`echo survived`));

    expect(result).toMatchObject({ ok: true, stdout: "survived\n" });
  });
});

describe("the ping precondition", () => {
  it("answers unreachable for a crashed instance without sending anything", async () => {
    // Prepare
    const [id = ""] = await c.launchMany(1);
    await online(id);
    await c.crash(id);
    await c.resetStats();

    // Act
    const out = await runCommand(deps, id, program(sh`echo never`), { timeoutSeconds: 30 });

    // Assess
    expect(out).toEqual({ kind: "unreachable", pingStatus: "ConnectionLost" });
    expect(await c.calls("ssm:SendCommand")).toBe(0);
    expect(await c.calls("ssm:DescribeInstanceInformation")).toBe(1);
  });

  it("answers unreachable for an instance whose agent has not registered yet", async () => {
    const [id = ""] = await c.launchMany(1);
    await c.resetStats();

    const out = await runCommand(deps, id, program(sh`echo never`), { timeoutSeconds: 30 });

    expect(out).toEqual({ kind: "unreachable", pingStatus: "NotRegistered" });
    expect(await c.calls("ssm:SendCommand")).toBe(0);
  });

  it("answers transient when DescribeInstanceInformation fails, and sends nothing", async () => {
    // Prepare
    await c.fault({
      service: "ssm",
      action: "DescribeInstanceInformation",
      error: "InternalServerError",
    });
    await c.resetStats();

    // Act
    const out = await runCommand(c.deps({ maxAttempts: 2 }), instance, program(sh`echo never`), {
      timeoutSeconds: 30,
    });

    // Assess
    expect(out).toMatchObject({ kind: "transient", error: { code: "InternalServerError" } });
    expect(await c.calls("ssm:DescribeInstanceInformation")).toBe(2);
    expect(await c.calls("ssm:SendCommand")).toBe(0);
  });

  it("answers transient under SSM throttling (ThrottlingException, HTTP 400)", async () => {
    await c.fault({
      service: "ssm",
      action: "DescribeInstanceInformation",
      error: "ThrottlingException",
    });

    const out = await runCommand(c.deps({ maxAttempts: 1 }), instance, program(sh`echo never`), {
      timeoutSeconds: 30,
    });

    expect(out).toMatchObject({ kind: "transient", error: { code: "ThrottlingException" } });
  });

  it("answers unreachable when SendCommand says InvalidInstanceId", async () => {
    await c.fault({ service: "ssm", action: "SendCommand", error: "InvalidInstanceId", times: 1 });

    const out = await runCommand(deps, instance, program(sh`echo never`), { timeoutSeconds: 30 });

    expect(out).toEqual({ kind: "unreachable", pingStatus: "InvalidInstanceId" });
  });

  it("answers unknown, never not-sent, when SendCommand fails on the server side", async () => {
    // A 5xx says nothing about whether SSM created the command before failing.
    await c.fault({ service: "ssm", action: "SendCommand", error: "InternalServerError" });

    const out = await runCommand(c.deps({ maxAttempts: 1 }), instance, program(sh`echo never`), {
      timeoutSeconds: 30,
    });

    expect(out).toMatchObject({ kind: "unknown", error: { code: "InternalServerError" } });
  });

  it("answers transient (not sent) when SSM throttles SendCommand past three attempts", async () => {
    await c.fault({
      service: "ssm",
      action: "SendCommand",
      error: "ThrottlingException",
      times: 3,
    });
    await c.resetStats();

    const out = await runCommand(c.deps(), instance, program(sh`echo never`), {
      timeoutSeconds: 30,
    });

    expect(out).toMatchObject({ kind: "transient", error: { code: "ThrottlingException" } });
    expect(await c.calls("ssm:SendCommand")).toBe(3);
  });

  it("sends once when the answer is lost: the SDK never retries SendCommand", async () => {
    // The call takes effect, then its answer arrives after the client gave up (1 s).
    const token = `ran-${Date.now()}`;
    await c.fault({ service: "ssm", action: "SendCommand", latencyMs: 1_500, times: 3 });
    await c.resetStats();

    const out = await runCommand(
      c.deps({ maxAttempts: 3, requestTimeoutMs: 1_000 }),
      instance,
      program(sh`echo ${token} >> "$WORKSPACE_ROOT/sends.log"`),
      { timeoutSeconds: 30 },
    );

    expect(out).toMatchObject({ kind: "unknown" });
    expect(await c.calls("ssm:SendCommand")).toBe(1);
    const view = await c.instance(instance);
    const log = await waitFor(async () => {
      const text = await readFile(join(view.dir, "sends.log"), "utf8").catch(() => "");
      return text.includes(token) ? text : undefined;
    });
    expect(log.split("\n").filter((l) => l === token)).toHaveLength(1);
  });
});
