import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { DescribeInstancesCommand, TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import {
  CancelCommandCommand,
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  type GetCommandInvocationCommandOutput,
  ListCommandInvocationsCommand,
  SendCommandCommand,
} from "@aws-sdk/client-ssm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  failure,
  launch,
  launchOnline,
  processAlive,
  startTestCloud,
  type TestCloud,
  waitFor,
} from "./harness.js";

let t: TestCloud;
let online: string;

beforeAll(async () => {
  // A visibility delay long enough to observe InvocationDoesNotExist reliably.
  t = await startTestCloud({ invocationVisibleDelayMs: 300 });
  online = await launchOnline(t);
});

afterAll(async () => {
  await t.close();
});

async function send(instanceId: string, commands: string[], executionTimeout?: string) {
  const out = await t.ssm.send(
    new SendCommandCommand({
      DocumentName: "AWS-RunShellScript",
      InstanceIds: [instanceId],
      Parameters: executionTimeout
        ? { commands, executionTimeout: [executionTimeout] }
        : { commands },
    }),
  );
  return out.Command?.CommandId ?? "";
}

const terminal = new Set(["Success", "Failed", "TimedOut", "Cancelled"]);

async function result(
  commandId: string,
  instanceId: string,
  timeoutMs = 10_000,
): Promise<GetCommandInvocationCommandOutput> {
  return waitFor(
    async () => {
      const out = await t.ssm.send(
        new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId }),
      );
      return terminal.has(out.Status ?? "") ? out : undefined;
    },
    timeoutMs,
    50,
  );
}

describe("DescribeInstanceInformation", () => {
  it("lists an instance only once its agent is Online, with the JSON 1.1 fields", async () => {
    const id = await launch(t);
    const byId = () =>
      t.ssm.send(
        new DescribeInstanceInformationCommand({
          InstanceInformationFilterList: [{ key: "InstanceIds", valueSet: [id] }],
        }),
      );
    expect((await byId()).InstanceInformationList).toEqual([]);

    const info = await waitFor(async () => (await byId()).InstanceInformationList?.[0]);

    expect(info.InstanceId).toBe(id);
    expect(info.PingStatus).toBe("Online");
    expect(info.PlatformType).toBe("Linux");
    expect(info.AgentVersion).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    expect(info.LastPingDateTime).toBeInstanceOf(Date);
    expect(Math.abs((info.LastPingDateTime?.getTime() ?? 0) - Date.now())).toBeLessThan(5_000);
  });

  it("pages with MaxResults and NextToken", async () => {
    const ids = [online];
    for (let i = 0; i < 5; i++) ids.push(await launchOnline(t));
    const filter = [{ Key: "InstanceIds", Values: ids }];
    const first = await t.ssm.send(
      new DescribeInstanceInformationCommand({ Filters: filter, MaxResults: 5 }),
    );
    expect(first.InstanceInformationList).toHaveLength(5);
    expect(first.NextToken).toBeTruthy();
    const second = await t.ssm.send(
      new DescribeInstanceInformationCommand({
        Filters: filter,
        MaxResults: 5,
        NextToken: first.NextToken,
      }),
    );
    expect(second.InstanceInformationList).toHaveLength(1);
    expect(second.NextToken).toBeUndefined();
    const seen = [
      ...(first.InstanceInformationList ?? []),
      ...(second.InstanceInformationList ?? []),
    ]
      .map((i) => i.InstanceId)
      .sort();
    expect(seen).toEqual([...ids].sort());
  });

  it("drops terminated instances", async () => {
    const id = await launchOnline(t);
    await t.ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    const out = await t.ssm.send(
      new DescribeInstanceInformationCommand({ Filters: [{ Key: "InstanceIds", Values: [id] }] }),
    );
    // shutting-down first reads as ConnectionLost, then the instance disappears.
    expect(["ConnectionLost", undefined]).toContain(out.InstanceInformationList?.[0]?.PingStatus);
    await waitFor(async () => {
      const o = await t.ssm.send(
        new DescribeInstanceInformationCommand({ Filters: [{ Key: "InstanceIds", Values: [id] }] }),
      );
      return o.InstanceInformationList?.length === 0 ? true : undefined;
    });
  });
});

describe("SendCommand and GetCommandInvocation", () => {
  it("answers InvocationDoesNotExist right after sending, then the result", async () => {
    const commandId = await send(online, ["echo hello"]);
    expect(commandId).toMatch(/^[0-9a-f-]{36}$/);

    const early = await failure(
      t.ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: online })),
    );
    expect(early.name).toBe("InvocationDoesNotExist");
    expect(early.$metadata?.httpStatusCode).toBe(400);

    const out = await result(commandId, online);
    expect(out.Status).toBe("Success");
    expect(out.StatusDetails).toBe("Success");
    expect(out.ResponseCode).toBe(0);
    expect(out.StandardOutputContent).toBe("hello\n");
    expect(out.StandardErrorContent).toBe("");
    expect(out.PluginName).toBe("aws:runShellScript");
  });

  it("runs the joined commands as a script in the instance dir with WORKSPACE_ROOT set", async () => {
    const commandId = await send(online, [
      "greeting=hi",
      'echo "$greeting $WORKSPACE_ROOT $(pwd)"',
      'echo written > "$WORKSPACE_ROOT/from-ssm.txt"',
    ]);
    const out = await result(commandId, online);
    const dir = join(t.dir, "instances", online);
    expect(out.StandardOutputContent).toBe(`hi ${dir} ${dir}\n`);
    expect(await readFile(join(dir, "from-ssm.txt"), "utf8")).toBe("written\n");
  });

  it("honours a #!/bin/bash first line", async () => {
    const out = await result(
      await send(online, ["#!/bin/bash", '[ -n "$BASH_VERSION" ] && echo bash=yes']),
      online,
    );
    expect(out.StandardOutputContent).toBe("bash=yes\n");
  });

  it("reports a failing script as Failed with its exit code and stderr", async () => {
    const out = await result(await send(online, ["echo oops >&2", "exit 3"]), online);
    expect(out.Status).toBe("Failed");
    expect(out.StatusDetails).toBe("Failed");
    expect(out.ResponseCode).toBe(3);
    expect(out.StandardErrorContent).toBe("oops\n");
  });

  it("keeps stdout empty while the command is in progress", async () => {
    const commandId = await send(online, ["echo early", "sleep 1", "echo late"]);
    const running = await waitFor(async () => {
      const o = await t.ssm.send(
        new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: online }),
      );
      return o.Status === "InProgress" ? o : undefined;
    });
    expect(running.StandardOutputContent).toBe("");
    expect(running.ResponseCode).toBe(-1);
    const done = await result(commandId, online);
    expect(done.StandardOutputContent).toBe("early\nlate\n");
  });

  it("truncates stdout at 24,000 and stderr at 8,000 characters with the agent's marker", async () => {
    const out = await result(
      await send(online, [
        "head -c 30000 /dev/zero | tr '\\0' 'a'",
        "head -c 10000 /dev/zero | tr '\\0' 'b' >&2",
      ]),
      online,
    );
    expect(out.Status).toBe("Success");
    expect(out.StandardOutputContent).toHaveLength(24_000);
    expect(out.StandardOutputContent?.endsWith("--output truncated--")).toBe(true);
    expect(out.StandardOutputContent?.startsWith("aaaa")).toBe(true);
    expect(out.StandardErrorContent).toHaveLength(8_000);
    expect(out.StandardErrorContent?.endsWith("--output truncated--")).toBe(true);
  });

  it("kills the process group at executionTimeout (TimedOut) and falls back to 3600 s below 5 s", async () => {
    // Both in flight together to keep the suite short: the 5 s one is killed, the one asking
    // for 2 s gets the agent's 3600 s default and finishes its 3 s sleep.
    const timed = await send(
      online,
      ["sleep 60 &", 'echo $! > "$WORKSPACE_ROOT/child.pid"', "wait"],
      "5",
    );
    const fallback = await send(online, ["sleep 3", "echo survived"], "2");

    const timedOut = await result(timed, online, 15_000);
    const survived = await result(fallback, online, 15_000);

    expect(timedOut.Status).toBe("TimedOut");
    expect(timedOut.StatusDetails).toBe("Execution Timed Out");
    expect(timedOut.ResponseCode).toBe(-1);
    const pid = Number(await readFile(join(t.dir, "instances", online, "child.pid"), "utf8"));
    expect(pid).toBeGreaterThan(0);
    await waitFor(() => (processAlive(pid) ? undefined : true), 2_000);
    expect(survived.Status).toBe("Success");
    expect(survived.StandardOutputContent).toBe("survived\n");
  }, 20_000);

  it("refuses instances that are not Online, unknown, too many, or another document", async () => {
    const pending = await launch(t);
    const notReady = await failure(send(pending, ["true"]));
    expect(notReady.name).toBe("InvalidInstanceId");
    expect(notReady.$metadata?.httpStatusCode).toBe(400);

    const unknown = await failure(send("i-0000000000000abcd", ["true"]));
    expect(unknown.name).toBe("InvalidInstanceId");

    const ids = Array.from({ length: 51 }, (_, i) => `i-${i.toString(16).padStart(17, "0")}`);
    const tooMany = await failure(
      t.ssm.send(
        new SendCommandCommand({
          DocumentName: "AWS-RunShellScript",
          InstanceIds: ids,
          Parameters: { commands: ["true"] },
        }),
      ),
    );
    expect(tooMany.name).toBe("ValidationException");
    expect(tooMany.message).toContain("less than or equal to 50");

    const doc = await failure(
      t.ssm.send(
        new SendCommandCommand({
          DocumentName: "AWS-RunPowerShellScript",
          InstanceIds: [online],
          Parameters: { commands: ["true"] },
        }),
      ),
    );
    expect(doc.name).toBe("InvalidDocument");

    const shortTimeout = await failure(
      t.ssm.send(
        new SendCommandCommand({
          DocumentName: "AWS-RunShellScript",
          InstanceIds: [online],
          Parameters: { commands: ["true"] },
          TimeoutSeconds: 29,
        }),
      ),
    );
    expect(shortTimeout.name).toBe("ValidationException");
  });

  it("answers UnknownOperationException for an operation it does not implement", async () => {
    const err = await failure(t.ssm.send(new ListCommandInvocationsCommand({})));
    expect(err.name).toBe("UnknownOperationException");
    expect(err.$metadata?.httpStatusCode).toBe(400);
  });
});

describe("CancelCommand", () => {
  it("kills the process group and reports Cancelled", async () => {
    const commandId = await send(online, [
      "sleep 60 &",
      'echo $! > "$WORKSPACE_ROOT/cancel-child.pid"',
      "wait",
    ]);
    const pidFile = join(t.dir, "instances", online, "cancel-child.pid");
    const pid = await waitFor(async () => {
      const text = await readFile(pidFile, "utf8").catch(() => "");
      return text.trim() ? Number(text) : undefined;
    });
    expect(processAlive(pid)).toBe(true);

    await t.ssm.send(new CancelCommandCommand({ CommandId: commandId }));

    const out = await result(commandId, online);
    expect(out.Status).toBe("Cancelled");
    expect(out.StatusDetails).toBe("Cancelled");
    expect(out.ResponseCode).toBe(-1);
    await waitFor(() => (processAlive(pid) ? undefined : true), 2_000);
  });

  it("answers InvalidCommandId for an unknown command", async () => {
    const err = await failure(
      t.ssm.send(new CancelCommandCommand({ CommandId: "00000000-0000-0000-0000-000000000000" })),
    );
    expect(err.name).toBe("InvalidCommandId");
  });
});

describe("crash (control API)", () => {
  it("stops the instance, loses the agent and fails its running command", async () => {
    const id = await launchOnline(t);
    const commandId = await send(id, ["sleep 60"]);
    await new Promise((r) => setTimeout(r, 100));

    const crash = await t.control<{ state: string; ssmPingStatus: string }>(
      "POST",
      `/instances/${id}/crash`,
    );

    expect(crash.status).toBe(200);
    expect(crash.json.state).toBe("stopped");
    const described = await t.ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
    expect(described.Reservations?.[0]?.Instances?.[0]?.State).toEqual({
      Code: 80,
      Name: "stopped",
    });
    const info = await t.ssm.send(
      new DescribeInstanceInformationCommand({ Filters: [{ Key: "InstanceIds", Values: [id] }] }),
    );
    expect(info.InstanceInformationList?.[0]?.PingStatus).toBe("ConnectionLost");
    // SSM takes a stopped instance's command and gives up on delivering it (undelivered.test.ts).
    const late = await send(id, ["true"]);
    expect((await result(late, id)).StatusDetails).toBe("Delivery Timed Out");
    const out = await result(commandId, id);
    expect(out.Status).toBe("Failed");
    expect(out.StatusDetails).toBe("Terminated");
    expect(out.ResponseCode).toBe(-1);
  });

  it("answers 404 for an unknown instance", async () => {
    const res = await t.control("POST", "/instances/i-0000000000000dead/crash");
    expect(res.status).toBe(404);
  });
});

describe("agent loss (control API)", () => {
  it("keeps the instance running while SSM reports ConnectionLost and refuses commands; back Online after", async () => {
    // Prepare
    const id = await launchOnline(t);
    const info = async () =>
      (
        await t.ssm.send(
          new DescribeInstanceInformationCommand({
            Filters: [{ Key: "InstanceIds", Values: [id] }],
          }),
        )
      ).InstanceInformationList?.[0];
    const before = Date.now();

    // Act
    const lost = await t.control<{ state: string; ssmPingStatus: string }>(
      "POST",
      `/instances/${id}/agent`,
      { online: false },
    );

    // Assess: EC2 says running, SSM says the agent is gone since that moment.
    expect(lost.status).toBe(200);
    expect(lost.json).toMatchObject({ state: "running", ssmPingStatus: "ConnectionLost" });
    const seen = await info();
    expect(seen?.PingStatus).toBe("ConnectionLost");
    const lastPing = seen?.LastPingDateTime?.getTime() ?? 0;
    expect(lastPing).toBeGreaterThanOrEqual(before - 1_000);
    expect(lastPing).toBeLessThanOrEqual(Date.now());
    expect(await failure(send(id, ["true"]))).toMatchObject({ name: "InvalidInstanceId" });
    const described = await t.ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
    expect(described.Reservations?.[0]?.Instances?.[0]?.State?.Name).toBe("running");
    // Later calls still report the last ping as when the agent was lost.
    expect((await info())?.LastPingDateTime?.getTime()).toBe(lastPing);

    // Act: the agent is back.
    const back = await t.control("POST", `/instances/${id}/agent`, { online: true });

    // Assess
    expect(back.status).toBe(200);
    expect((await info())?.PingStatus).toBe("Online");
    const commandId = await send(id, ["echo back"]);
    expect((await result(commandId, id)).Status).toBe("Success");
  });

  it("answers 409 for an instance that is not running and 400 for a bad body", async () => {
    const id = await launchOnline(t);
    expect((await t.control("POST", `/instances/${id}/agent`, { up: 1 })).status).toBe(400);
    await t.control("POST", `/instances/${id}/crash`);
    expect((await t.control("POST", `/instances/${id}/agent`, { online: false })).status).toBe(409);
  });
});
