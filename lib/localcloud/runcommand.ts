import { randomUUID } from "node:crypto";
import { mkdirSync, statSync } from "node:fs";
import { join, posix } from "node:path";
import type { Fleet } from "./fleet.js";
import type { ResolvedOptions } from "./options.js";
import { type ProcessGroups, readHead, type ScriptExit, type ScriptRun } from "./processes.js";
import type {
  CloudState,
  CommandRecord,
  InstanceRecord,
  InvocationRecord,
  StateChanges,
} from "./store.js";

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
  /** Instances among `instanceIds` whose agent is not there (stopped): nothing runs on them. */
  unreachable: string[];
  timeoutSeconds: number;
  executionTimeoutSeconds: number;
  script: string;
  output?: { bucket: string; keyPrefix: string };
}

/** Where the agent uploads an invocation's output: the object store, as S3's PutObject would. */
export interface OutputUploads {
  putFile(bucket: string, key: string, file: string, contentType: string): Promise<void>;
}

/**
 * The key of one uploaded stream: the agent joins OutputS3KeyPrefix, the CommandId and the
 * instance id (amazon-ssm-agent agent/runcommand, parseSendCommandMessage: `path.Join(prefix,
 * CommandID, Destination)`), then the plugin and its step, `awsrunShellScript/0.awsrunShellScript`
 * (the layout of docs.aws.amazon.com/systems-manager/latest/APIReference/API_CommandPlugin.html),
 * then `stdout` / `stderr` (iohandler.DefaultOutputConfig).
 */
export function outputKey(
  output: { keyPrefix: string },
  commandId: string,
  instanceId: string,
  stream: "stdout" | "stderr",
): string {
  return posix.join(
    output.keyPrefix,
    commandId,
    instanceId,
    "awsrunShellScript",
    "0.awsrunShellScript",
    stream,
  );
}

type EndReason = "timeout" | "cancel" | "down";

type Outcome = Pick<InvocationRecord, "status" | "statusDetails" | "responseCode">;

/** How SSM ends an invocation whose agent never picked it up (see `#awaitDelivery`). */
const deliveryTimedOut: Outcome = {
  status: "TimedOut",
  statusDetails: "Delivery Timed Out",
  responseCode: -1,
};

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
  /** Invocations waiting for an absent agent, by `commandId/instanceId`: their delivery timeout. */
  readonly #undelivered = new Map<string, NodeJS.Timeout>();
  /** By instance id: when its agent comes back, the waiting invocations are delivered. */
  readonly #redelivery = new Map<string, NodeJS.Timeout>();
  #closed = false;

  constructor(
    private readonly state: CloudState,
    private readonly fleet: Fleet,
    private readonly opts: ResolvedOptions,
    private readonly groups: ProcessGroups,
    private readonly changes: StateChanges,
    private readonly uploads?: OutputUploads,
  ) {
    const now = Date.now();
    state.commands = state.commands.filter((c) => c.requestedAt > now - historyMs);
    // Processes do not survive the previous server process; report them as the agent reports
    // a plugin cut off by a shutdown it did not come back from. An invocation still waiting for
    // delivery waits on: SSM's clock, not the agent's, ends it.
    for (const cmd of state.commands) {
      for (const inv of cmd.invocations) {
        if (inv.status === "Delayed" && inv.deliveryTimesOutAt !== undefined) {
          this.#awaitDelivery(cmd, inv);
        } else if (
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
          changes.command(cmd);
        }
      }
    }
    fleet.onInstanceDown((id) => this.#instanceDown(id));
    fleet.onInstanceUp((inst) => this.#deliverWhenOnline(inst));
    for (const cmd of state.commands) {
      for (const inv of cmd.invocations) {
        const inst = inv.status === "Delayed" ? fleet.get(inv.instanceId) : undefined;
        if (inst) this.#deliverWhenOnline(inst);
      }
    }
  }

  /** Every command still in the history (30 days). */
  all(): readonly CommandRecord[] {
    return this.state.commands;
  }

  get(commandId: string): CommandRecord | undefined {
    return this.state.commands.find((c) => c.commandId === commandId);
  }

  /**
   * One invocation per instance: started at once where the agent is Online, left waiting for
   * delivery on the `unreachable` ones (the caller has checked every instance is one or the
   * other).
   */
  send(spec: SendSpec): CommandRecord {
    const now = Date.now();
    const unreachable = new Set(spec.unreachable);
    const cmd: CommandRecord = {
      commandId: randomUUID(),
      documentName: spec.documentName,
      comment: spec.comment,
      parameters: spec.parameters,
      instanceIds: spec.instanceIds,
      requestedAt: now,
      timeoutSeconds: spec.timeoutSeconds,
      executionTimeoutSeconds: spec.executionTimeoutSeconds,
      ...(spec.output && { output: spec.output }),
      invocations: spec.instanceIds.map((instanceId): InvocationRecord => {
        const base = { instanceId, responseCode: -1, stdout: "", stderr: "" };
        // "Delayed: The system attempted to send the command to the target, but the target
        // wasn't available … because the node was stopped … The system will try to send the
        // command again" (StatusDetails, API_GetCommandInvocation.html), until the delivery
        // timeout (monitor-commands.html).
        return unreachable.has(instanceId)
          ? {
              ...base,
              status: "Delayed",
              statusDetails: "Delayed",
              deliveryTimesOutAt: now + this.opts.deliveryTimeoutMs,
            }
          : { ...base, status: "InProgress", statusDetails: "InProgress", startedAt: now };
      }),
    };
    this.state.commands.push(cmd);
    for (const inv of cmd.invocations) {
      if (inv.status === "Delayed") this.#awaitDelivery(cmd, inv);
      else this.#start(cmd, inv, spec.script);
    }
    for (const id of unreachable) {
      const inst = this.fleet.get(id);
      if (inst) this.#deliverWhenOnline(inst);
    }
    this.changes.command(cmd);
    return cmd;
  }

  /**
   * The invocation as GetCommandInvocation sees it, or undefined while it "does not exist
   * yet": AWS answers InvocationDoesNotExist for a short while after SendCommand.
   */
  invocation(commandId: string, instanceId: string): InvocationRecord | undefined {
    const cmd = this.get(commandId);
    const now = Date.now();
    if (!cmd || now < cmd.requestedAt + this.opts.invocationVisibleDelayMs) return undefined;
    const inv = cmd.invocations.find((i) => i.instanceId === instanceId);
    // A reader never sees a delivery timeout that is due but whose timer has not fired yet.
    if (inv?.status === "Delayed" && (inv.deliveryTimesOutAt ?? 0) <= now) {
      this.#endUndelivered(cmd, inv, deliveryTimedOut);
    }
    return inv;
  }

  /** Kill the process groups of the command's running invocations (all, or those named). */
  cancel(cmd: CommandRecord, instanceIds: string[] | undefined): void {
    for (const inv of cmd.invocations) {
      if (instanceIds && !instanceIds.includes(inv.instanceId)) continue;
      if (inv.status === "Delayed") {
        // Never delivered, so nothing to stop: it ends at once.
        this.#endUndelivered(cmd, inv, {
          status: "Cancelled",
          statusDetails: "Cancelled",
          responseCode: -1,
        });
        continue;
      }
      const live = this.#live.get(key(cmd.commandId, inv.instanceId));
      if (!live || inv.status !== "InProgress") continue;
      live.reason = "cancel";
      inv.status = "Cancelling";
      inv.statusDetails = "Cancelling";
      live.run.kill();
    }
    this.changes.command(cmd);
  }

  /**
   * Stop timers. Processes killed by the shutdown are left InProgress in the saved state, so the
   * next start reports them Failed/Terminated instead of a misleading exit status.
   */
  close(): void {
    this.#closed = true;
    for (const live of this.#live.values()) clearTimeout(live.timer);
    for (const timer of this.#undelivered.values()) clearTimeout(timer);
    for (const timer of this.#redelivery.values()) clearTimeout(timer);
  }

  /**
   * SSM tries a Delayed invocation again once the node is back: "The system will try to send
   * the command again" (StatusDetails, API_GetCommandInvocation.html), so a command sent while
   * the instance was stopped runs after its start if the agent is Online before the delivery
   * timeout, after which "it won't run" (TimeoutSeconds, API_SendCommand.html).
   */
  #deliverWhenOnline(inst: InstanceRecord): void {
    const at = this.fleet.agentOnlineAt(inst);
    if (at === undefined) return;
    clearTimeout(this.#redelivery.get(inst.id));
    const timer = setTimeout(
      () => {
        this.#redelivery.delete(inst.id);
        if (!this.#closed) this.#deliver(inst.id);
      },
      Math.max(0, at - Date.now()),
    );
    timer.unref();
    this.#redelivery.set(inst.id, timer);
  }

  #deliver(instanceId: string): void {
    const inst = this.fleet.get(instanceId);
    if (!inst || this.fleet.registration(inst)?.pingStatus !== "Online") return;
    const now = Date.now();
    for (const cmd of this.state.commands) {
      for (const inv of cmd.invocations) {
        if (inv.instanceId !== instanceId || inv.status !== "Delayed") continue;
        if ((inv.deliveryTimesOutAt ?? 0) <= now) {
          this.#endUndelivered(cmd, inv, deliveryTimedOut);
          continue;
        }
        const k = key(cmd.commandId, instanceId);
        clearTimeout(this.#undelivered.get(k));
        this.#undelivered.delete(k);
        Object.assign(inv, {
          status: "InProgress",
          statusDetails: "InProgress",
          startedAt: now,
        } satisfies Partial<InvocationRecord>);
        delete inv.deliveryTimesOutAt;
        // The script as SendCommand built it: the commands joined with newlines (ssm.ts).
        this.#start(cmd, inv, `${(cmd.parameters.commands ?? []).join("\n")}\n`);
        this.changes.command(cmd);
      }
    }
  }

  /**
   * SSM gives up on an undelivered invocation at its delivery timeout: Status TimedOut,
   * StatusDetails "Delivery Timed Out" (monitor-commands.html; the pair as the console and API
   * report it in aws/amazon-ssm-agent#289), ResponseCode -1 as nothing ran. The real timeout is
   * TimeoutSeconds plus executionTimeout; `deliveryTimeoutMs` stands in for it.
   */
  #awaitDelivery(cmd: CommandRecord, inv: InvocationRecord): void {
    const k = key(cmd.commandId, inv.instanceId);
    const delay = Math.max(0, (inv.deliveryTimesOutAt ?? 0) - Date.now());
    const timer = setTimeout(() => {
      if (this.#closed) return;
      this.#endUndelivered(cmd, inv, deliveryTimedOut);
    }, delay);
    timer.unref();
    this.#undelivered.set(k, timer);
  }

  #endUndelivered(cmd: CommandRecord, inv: InvocationRecord, outcome: Outcome): void {
    const k = key(cmd.commandId, inv.instanceId);
    clearTimeout(this.#undelivered.get(k));
    this.#undelivered.delete(k);
    if (inv.status !== "Delayed") return;
    Object.assign(inv, outcome);
    inv.endedAt = Date.now();
    delete inv.deliveryTimesOutAt;
    this.changes.command(cmd);
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
      .then((exit) => this.#finish(cmd, inv, exit, stdoutPath, stderrPath))
      .catch((err: unknown) => console.error("localcloud: command bookkeeping failed", err));
  }

  async #finish(
    cmd: CommandRecord,
    inv: InvocationRecord,
    exit: ScriptExit,
    stdoutPath: string,
    stderrPath: string,
  ): Promise<void> {
    if (this.#closed) return;
    const k = key(cmd.commandId, inv.instanceId);
    const live = this.#live.get(k);
    this.#live.delete(k);
    if (live) clearTimeout(live.timer);
    // The agent uploads the whole streams before it reports the plugin's result, also after a
    // timeout or a cancel, and never after the machine died under it.
    if (cmd.output && live?.reason !== "down") {
      await this.#upload(cmd.output, cmd.commandId, inv.instanceId, { stdoutPath, stderrPath });
      if (this.#closed) return;
    }
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
    this.changes.command(cmd);
  }

  /**
   * Uploads the non-empty streams (iomodule/fileS3.go uploads only when the file's size is above
   * 0). A failed upload is only logged by the agent, and the command's status is unaffected.
   */
  async #upload(
    output: { bucket: string; keyPrefix: string },
    commandId: string,
    instanceId: string,
    paths: { stdoutPath: string; stderrPath: string },
  ): Promise<void> {
    for (const [stream, path] of [
      ["stdout", paths.stdoutPath],
      ["stderr", paths.stderrPath],
    ] as const) {
      if (!this.uploads || (statSync(path, { throwIfNoEntry: false })?.size ?? 0) === 0) continue;
      const objectKey = outputKey(output, commandId, instanceId, stream);
      try {
        // No type of its own: S3 records what it records for an upload that names none.
        await this.uploads.putFile(output.bucket, objectKey, path, "binary/octet-stream");
      } catch (err) {
        const why = err instanceof Error ? err.message : String(err);
        console.error(
          `localcloud: the agent could not upload ${stream} to ${output.bucket}: ${why}`,
        );
      }
    }
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

function outcomeOf(reason: EndReason | undefined, exit: ScriptExit): Outcome {
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
