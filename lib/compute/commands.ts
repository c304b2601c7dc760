import {
  CancelCommandCommand,
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  type GetCommandInvocationCommandOutput,
  SendCommandCommand,
} from "@aws-sdk/client-ssm";
import type { Deps } from "../deps.js";
import { awsErrorCode, describeAwsError } from "./errors.js";
import type { Program } from "./script.js";

/**
 * Commands on instances over SSM Run Command — the product's `docker exec`. The only module that
 * sends `SendCommandCommand`, and it sends only a {@link Program} built by the quoting builder.
 */

export type CommandStatus =
  | "Pending"
  | "InProgress"
  | "Delayed"
  | "Success"
  | "Cancelled"
  | "TimedOut"
  | "Failed"
  | "Cancelling";

export interface CommandResult {
  /** `Success` with exit code 0, and nothing else, is success. */
  ok: boolean;
  status: CommandStatus | "DeadlineExceeded";
  statusDetails: string;
  /** The script's exit code; -1 when it never ran or was killed. */
  exitCode: number;
  stdout: string;
  stderr: string;
  /** SSM keeps the first 24,000 stdout / 8,000 stderr characters and marks the cut. */
  truncated: boolean;
  commandId: string;
}

/** Why a command could not be sent at all (nothing ran). */
export type SendFailure =
  | { kind: "unreachable"; pingStatus: string }
  | { kind: "transient"; error: { code: string; message: string } };

export type SendResult = { kind: "sent"; commandId: string } | SendFailure;

export type RunResult = { kind: "finished"; result: CommandResult } | SendFailure;

const TERMINAL: ReadonlySet<string> = new Set(["Success", "Cancelled", "TimedOut", "Failed"]);
// The agent's own marker when it cuts output (amazon-ssm-agent; notes/aws.md).
const TRUNCATION_MARKER = "--output truncated--";
// executionTimeout: the agent accepts 5–172,800 s and silently falls back to 3,600 outside it
// (amazon-ssm-agent pluginutil.go), so clamp rather than let a bad value become an hour.
const MIN_EXECUTION_SECONDS = 5;
const MAX_EXECUTION_SECONDS = 172_800;
// SendCommand's TimeoutSeconds (delivery) is 30–2,592,000
// (docs.aws.amazon.com/systems-manager/latest/APIReference/API_SendCommand.html).
const MIN_DELIVERY_SECONDS = 30;

export interface SendOptions {
  /** The script's own deadline on the instance (executionTimeout). */
  timeoutSeconds: number;
  /** Shown in the SSM console; at most 100 characters. */
  comment?: string;
}

/**
 * Sends `program` to one instance after checking that its SSM agent is `Online`
 * (DescribeInstanceInformation): SendCommand itself answers only a vague InvalidInstanceId for an
 * agent that is offline, unregistered or shutting down.
 */
export async function sendCommand(
  deps: Pick<Deps, "aws">,
  instanceId: string,
  script: Program,
  opts: SendOptions,
): Promise<SendResult> {
  const ping = await pingStatus(deps, instanceId);
  if (ping.kind === "transient") return ping;
  if (ping.status !== "Online") return { kind: "unreachable", pingStatus: ping.status };
  const executionTimeout = Math.min(
    MAX_EXECUTION_SECONDS,
    Math.max(MIN_EXECUTION_SECONDS, Math.ceil(opts.timeoutSeconds)),
  );
  try {
    const out = await deps.aws.ssm.send(
      new SendCommandCommand({
        DocumentName: "AWS-RunShellScript",
        InstanceIds: [instanceId],
        Parameters: { commands: [script.text], executionTimeout: [String(executionTimeout)] },
        TimeoutSeconds: Math.max(MIN_DELIVERY_SECONDS, executionTimeout),
        ...(opts.comment !== undefined && { Comment: opts.comment.slice(0, 100) }),
      }),
    );
    const commandId = out.Command?.CommandId;
    if (!commandId) {
      return { kind: "transient", error: { code: "MalformedReply", message: "no CommandId" } };
    }
    return { kind: "sent", commandId };
  } catch (err) {
    if (awsErrorCode(err) === "InvalidInstanceId") {
      return { kind: "unreachable", pingStatus: "InvalidInstanceId" };
    }
    return { kind: "transient", error: describeAwsError(err) };
  }
}

/** The SSM agent's `PingStatus` for one instance; `NotRegistered` when SSM does not know it. */
export async function pingStatus(
  deps: Pick<Deps, "aws">,
  instanceId: string,
): Promise<
  | { kind: "known"; status: string }
  | { kind: "transient"; error: { code: string; message: string } }
> {
  try {
    const out = await deps.aws.ssm.send(
      new DescribeInstanceInformationCommand({
        Filters: [{ Key: "InstanceIds", Values: [instanceId] }],
      }),
    );
    const info = out.InstanceInformationList?.find((i) => i.InstanceId === instanceId);
    return { kind: "known", status: info?.PingStatus ?? "NotRegistered" };
  } catch (err) {
    return { kind: "transient", error: describeAwsError(err) };
  }
}

/**
 * Reads a command's result once. `null` while it runs — including right after SendCommand, when
 * GetCommandInvocation may answer InvocationDoesNotExist for a while (a known race).
 */
export async function readCommand(
  deps: Pick<Deps, "aws">,
  commandId: string,
  instanceId: string,
): Promise<CommandResult | null> {
  let out: GetCommandInvocationCommandOutput;
  try {
    out = await deps.aws.ssm.send(
      new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId }),
    );
  } catch (err) {
    if (awsErrorCode(err) === "InvocationDoesNotExist") return null;
    throw err;
  }
  const status = (out.Status ?? "Pending") as CommandStatus;
  if (!TERMINAL.has(status)) return null;
  const stdout = out.StandardOutputContent ?? "";
  const stderr = out.StandardErrorContent ?? "";
  const exitCode = out.ResponseCode ?? -1;
  return {
    ok: status === "Success" && exitCode === 0,
    status,
    statusDetails: out.StatusDetails ?? status,
    exitCode,
    stdout,
    stderr,
    truncated: stdout.endsWith(TRUNCATION_MARKER) || stderr.endsWith(TRUNCATION_MARKER),
    commandId,
  };
}

export async function cancelCommand(
  deps: Pick<Deps, "aws">,
  commandId: string,
  instanceId: string,
): Promise<void> {
  await deps.aws.ssm.send(
    new CancelCommandCommand({ CommandId: commandId, InstanceIds: [instanceId] }),
  );
}

export interface RunOptions extends SendOptions {
  /**
   * How long to wait for the result before giving up (default: the execution timeout plus a
   * margin). Past it the command is cancelled and the result says `DeadlineExceeded`.
   */
  waitSeconds?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Poll every 250 ms while a command is young — most finish within seconds, and each interval is
// latency added to the answer — then back off, doubling to 2 s, so long commands do not hammer
// GetCommandInvocation (its rate limits are not published; notes/aws.md).
const FAST_POLL_MS = 250;
const FAST_PHASE_MS = 2_000;
const MAX_POLL_MS = 2_000;

/**
 * Polls until the command finishes or the deadline passes (then `null`). Errors other than the
 * invocation race are retried until the deadline: the SDK has already retried them, and a flaky
 * poll says nothing about the command.
 */
export async function waitForCommand(
  deps: Pick<Deps, "aws">,
  commandId: string,
  instanceId: string,
  deadline: number,
): Promise<CommandResult | null> {
  const started = Date.now();
  let delay = FAST_POLL_MS;
  for (;;) {
    await sleep(Math.min(delay, Math.max(0, deadline - Date.now())));
    try {
      const result = await readCommand(deps, commandId, instanceId);
      if (result) return result;
    } catch {
      // Keep polling until the deadline.
    }
    if (Date.now() >= deadline) return null;
    if (Date.now() - started >= FAST_PHASE_MS) delay = Math.min(delay * 2, MAX_POLL_MS);
  }
}

/**
 * Runs a program on an instance and waits for its result: the ping precondition, SendCommand,
 * polling, and — past the deadline — CancelCommand.
 */
export async function runCommand(
  deps: Pick<Deps, "aws">,
  instanceId: string,
  script: Program,
  opts: RunOptions,
): Promise<RunResult> {
  const sent = await sendCommand(deps, instanceId, script, opts);
  if (sent.kind !== "sent") return sent;
  const waitSeconds = opts.waitSeconds ?? opts.timeoutSeconds + 10;
  const deadline = Date.now() + waitSeconds * 1000;
  const result = await waitForCommand(deps, sent.commandId, instanceId, deadline);
  if (result) return { kind: "finished", result };
  try {
    await cancelCommand(deps, sent.commandId, instanceId);
  } catch {
    // Best effort: executionTimeout stops it on the instance regardless.
  }
  return {
    kind: "finished",
    result: {
      ok: false,
      status: "DeadlineExceeded",
      statusDetails: `no result within ${waitSeconds}s; cancelled`,
      exitCode: -1,
      stdout: "",
      stderr: "",
      truncated: false,
      commandId: sent.commandId,
    },
  };
}
