import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Fleet } from "./fleet.js";
import type { ResolvedOptions } from "./options.js";
import { type ProcessGroups, readHead, type ScriptExit, type ScriptRun } from "./processes.js";
import type { CloudState, CommandRecord, InvocationRecord } from "./store.js";

/**
 * Output limits of GetCommandInvocation: 24,000 characters of stdout, 8,000 of stderr, and the
 * agent's suffix. amazon-ssm-agent `iohandler.DefaultOutputConfig` (MaxStdoutLength 24000,
 * MaxStderrLength 8000, OutputTruncatedSuffix "--output truncated--"); `pluginutil.StringPrefix`
 * cuts an output of maxLength or more to maxLength *including* the suffix.
 */
export const maxStdoutChars = 24_000;
export const maxStderrChars = 8_000;
export const truncatedSuffix = "--output truncated--";

/** amazon-ssm-agent `pluginutil.go`: defaultExecutionTimeoutInSeconds 3600, min 5, max 172800. */
export const executionTimeoutDefault = 3600;
export const executionTimeoutMin = 5;
export const executionTimeoutMax = 172_800;

/** SSM keeps Run Command history for 30 days (docs.aws.amazon.com/systems-manager/latest/userguide/run-command.html). */
const historyMs = 30 * 24 * 3600 * 1000;

export interface SendSpec {
  documentName: string;
  comment: string;
  parameters: Record<string, string[]>;
  instanceIds: string[];
  timeoutSeconds: number;
  executionTimeoutSeconds: number;
  script: string;
}

type EndReason = "timeout" | "cancel" | "down";

interface Live {
  run: ScriptRun;
  timer: NodeJS.Timeout;
  reason?: EndReason;
}

/** `pluginutil.StringPrefix`: no change below the limit, else cut so the suffix fits in it. */
export function agentTruncate(text: string, maxLength: number): string {
  if (text.length < maxLength) return text;
  return text.slice(0, maxLength - truncatedSuffix.length) + truncatedSuffix;
}

/**
 * The SSM agent of every simulated instance: runs `AWS-RunShellScript` invocations as
 * process groups in the instance directory, kills them at `executionTimeout` or on cancel,
 * and keeps their results the way GetCommandInvocation reports them.
 */
export class CommandRunner {
  readonly #live = new Map<string, Live>();
  #closed = false;

  constructor(
    private readonly state: CloudState,
    private readonly fleet: Fleet,
    private readonly opts: ResolvedOptions,
    private readonly groups: ProcessGroups,
    private readonly changed: () => void,
  ) {
    const now = Date.now();
    state.commands = state.commands.filter((c) => c.requestedAt > now - historyMs);
    // Processes do not survive the previous server process; report them as the agent reports
    // a plugin cut off by a shutdown it did not come back from.
    for (const cmd of state.commands) {
      for (const inv of cmd.invocations) {
        if (
          inv.status === "Pending" ||
          inv.status === "InProgress" ||
          inv.status === "Cancelling"
        ) {
          Object.assign(inv, {
            status: "Failed",
            statusDetails: "Terminated",
            responseCode: -1,
            endedAt: now,
          } satisfies Partial<InvocationRecord>);
        }
      }
    }
    fleet.onInstanceDown((id) => this.#instanceDown(id));
  }

  get(commandId: string): CommandRecord | undefined {
    return this.state.commands.find((c) => c.commandId === commandId);
  }

  /** Start one invocation per instance. The caller has checked every instance is Online. */
  send(spec: SendSpec): CommandRecord {
    const now = Date.now();
    const cmd: CommandRecord = {
      commandId: randomUUID(),
      documentName: spec.documentName,
      comment: spec.comment,
      parameters: spec.parameters,
      instanceIds: spec.instanceIds,
      requestedAt: now,
      timeoutSeconds: spec.timeoutSeconds,
      executionTimeoutSeconds: spec.executionTimeoutSeconds,
      invocations: spec.instanceIds.map((instanceId) => ({
        instanceId,
        status: "InProgress",
        statusDetails: "InProgress",
        responseCode: -1,
        stdout: "",
        stderr: "",
        startedAt: now,
      })),
    };
    this.state.commands.push(cmd);
    for (const inv of cmd.invocations) this.#start(cmd, inv, spec.script);
    this.changed();
    return cmd;
  }

  /**
   * The invocation as GetCommandInvocation sees it, or undefined while it "does not exist
   * yet": AWS answers InvocationDoesNotExist for a short while after SendCommand.
   */
  invocation(commandId: string, instanceId: string): InvocationRecord | undefined {
    const cmd = this.get(commandId);
    if (!cmd || Date.now() < cmd.requestedAt + this.opts.invocationVisibleDelayMs) return undefined;
    return cmd.invocations.find((i) => i.instanceId === instanceId);
  }

  /** Kill the process groups of the command's running invocations (all, or those named). */
  cancel(cmd: CommandRecord, instanceIds: string[] | undefined): void {
    for (const inv of cmd.invocations) {
      if (instanceIds && !instanceIds.includes(inv.instanceId)) continue;
      const live = this.#live.get(key(cmd.commandId, inv.instanceId));
      if (!live || inv.status !== "InProgress") continue;
      live.reason = "cancel";
      inv.status = "Cancelling";
      inv.statusDetails = "Cancelling";
      live.run.kill();
    }
    this.changed();
  }

  /**
   * Stop timers. Processes killed by the shutdown are left InProgress in the saved state, so the
   * next start reports them Failed/Terminated instead of a misleading exit status.
   */
  close(): void {
    this.#closed = true;
    for (const live of this.#live.values()) clearTimeout(live.timer);
  }

  #start(cmd: CommandRecord, inv: InvocationRecord, script: string): void {
    const home = this.fleet.instanceDir(inv.instanceId);
    // The agent's orchestration directory; kept off the instance disk so scripts see only theirs.
    const orchestration = join(this.opts.dir, "runtime", inv.instanceId, "commands", cmd.commandId);
    mkdirSync(orchestration, { recursive: true });
    mkdirSync(home, { recursive: true });
    const stdoutPath = join(orchestration, "stdout");
    const stderrPath = join(orchestration, "stderr");
    const run = this.groups.start(inv.instanceId, {
      script,
      scriptPath: join(orchestration, "_script.sh"),
      cwd: home,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, WORKSPACE_ROOT: home },
      stdoutPath,
      stderrPath,
    });
    const k = key(cmd.commandId, inv.instanceId);
    const timer = setTimeout(() => {
      const live = this.#live.get(k);
      if (!live || live.reason) return;
      live.reason = "timeout";
      live.run.kill();
    }, cmd.executionTimeoutSeconds * 1000);
    timer.unref();
    this.#live.set(k, { run, timer });
    run.done
      .then((exit) => this.#finish(k, inv, exit, stdoutPath, stderrPath))
      .catch((err: unknown) => console.error("localcloud: command bookkeeping failed", err));
  }

  #finish(
    k: string,
    inv: InvocationRecord,
    exit: ScriptExit,
    stdoutPath: string,
    stderrPath: string,
  ): void {
    if (this.#closed) return;
    const live = this.#live.get(k);
    this.#live.delete(k);
    if (live) clearTimeout(live.timer);
    // Four bytes per character at most: enough to know whether the limit was reached.
    const stdout = readHead(stdoutPath, maxStdoutChars * 4).text;
    let stderr = readHead(stderrPath, maxStderrChars * 4).text;
    if (exit.spawnError) stderr += exit.spawnError;
    inv.stdout = agentTruncate(stdout, maxStdoutChars);
    inv.stderr = agentTruncate(stderr, maxStderrChars);
    inv.endedAt = Date.now();
    const outcome = outcomeOf(live?.reason, exit);
    inv.status = outcome.status;
    inv.statusDetails = outcome.statusDetails;
    inv.responseCode = outcome.responseCode;
    if (live?.reason === "down") {
      // The agent died with the machine: nothing was uploaded.
      inv.stdout = "";
      inv.stderr = "";
    }
    this.changed();
  }

  #instanceDown(instanceId: string): void {
    for (const [k, live] of this.#live) {
      if (k.endsWith(`/${instanceId}`) && live.reason !== "down") {
        live.reason = "down";
        live.run.kill();
      }
    }
  }
}

function key(commandId: string, instanceId: string): string {
  return `${commandId}/${instanceId}`;
}

function outcomeOf(
  reason: EndReason | undefined,
  exit: ScriptExit,
): Pick<InvocationRecord, "status" | "statusDetails" | "responseCode"> {
  switch (reason) {
    case "timeout":
      return { status: "TimedOut", statusDetails: "Execution Timed Out", responseCode: -1 };
    case "cancel":
      return { status: "Cancelled", statusDetails: "Cancelled", responseCode: -1 };
    case "down":
      return { status: "Failed", statusDetails: "Terminated", responseCode: -1 };
    case undefined:
      break;
    default: {
      const never: never = reason;
      throw new Error(`unknown end reason ${String(never)}`);
    }
  }
  if (exit.spawnError) return { status: "Failed", statusDetails: "Failed", responseCode: 1 };
  // Go's ExitCode() is -1 for a process ended by a signal; the agent reports it as is.
  const code = exit.code ?? -1;
  return code === 0
    ? { status: "Success", statusDetails: "Success", responseCode: 0 }
    : { status: "Failed", statusDetails: "Failed", responseCode: code };
}
