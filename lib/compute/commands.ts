import {
  CancelCommandCommand,
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  type GetCommandInvocationCommandOutput,
  ListCommandsCommand,
  SendCommandCommand,
} from "@aws-sdk/client-ssm";
import { isThrottlingError } from "@smithy/core/retry";
import { forEachBounded } from "../bounded.js";
import { callOptions } from "../deadline.js";
import type { Deps } from "../deps.js";
import { type AwsProblem, awsErrorCode, describeAwsError, isPermissionError } from "./errors.js";
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

/** Why a command was not sent (nothing ran). */
export type SendFailure =
  | { kind: "unreachable"; pingStatus: string }
  | { kind: "transient"; error: AwsProblem };

/**
 * SendCommand's answer was lost (a timeout, a dropped connection, a 5xx, a reply that did not
 * parse): SSM may or may not have accepted the command. Never "not sent" — the caller records
 * the attempt as unknown and reconciles it, because SendCommand has no idempotency token and a
 * blind resend may run the script twice.
 */
export interface SendUnknown {
  kind: "unknown";
  error: AwsProblem;
}

export type SendResult = { kind: "sent"; commandId: string } | SendFailure | SendUnknown;

export type RunResult = { kind: "finished"; result: CommandResult } | SendFailure | SendUnknown;

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
  /**
   * Where the agent uploads the whole stdout and stderr (OutputS3BucketName/KeyPrefix): under
   * `<keyPrefix>/<CommandId>/<instance>/awsrunShellScript/0.awsrunShellScript/` — see
   * {@link commandOutputKey}. The instance uploads with its own role, not the caller's.
   */
  output?: { bucket: string; keyPrefix: string };
}

// How often a SendCommand that SSM certainly did not take is tried, and the backoff between:
// throttling and a refused connection mean the request was not processed (the SDK's standard
// strategy retries them the same way: 3 attempts, base 100 ms; smithy-typescript util-retry).
const SEND_ATTEMPTS = 3;
const SEND_BACKOFF_MS = 100;

/**
 * Sends `program` to one instance after checking that its SSM agent is `Online`
 * (DescribeInstanceInformation): SendCommand itself answers only a vague InvalidInstanceId for an
 * agent that is offline, unregistered or shutting down.
 *
 * SendCommand goes through the client without automatic retries (`aws.ssmNoRetry`). It is tried
 * again here only when SSM certainly did not take it (throttled, connection refused); a lost
 * answer is `unknown`, never `transient`.
 */
export async function sendCommand(
  deps: Pick<Deps, "aws" | "deadline">,
  instanceId: string,
  script: Program,
  opts: SendOptions,
): Promise<SendResult> {
  const ping = (await pingStatuses(deps, [instanceId])).get(instanceId);
  if (!ping || ping.kind === "transient") {
    return { kind: "transient", error: ping?.error ?? noAnswer };
  }
  if (ping.status !== "Online") return { kind: "unreachable", pingStatus: ping.status };
  const executionTimeout = Math.min(
    MAX_EXECUTION_SECONDS,
    Math.max(MIN_EXECUTION_SECONDS, Math.ceil(opts.timeoutSeconds)),
  );
  const command = new SendCommandCommand({
    DocumentName: "AWS-RunShellScript",
    InstanceIds: [instanceId],
    Parameters: { commands: [script.text], executionTimeout: [String(executionTimeout)] },
    TimeoutSeconds: Math.max(MIN_DELIVERY_SECONDS, executionTimeout),
    ...(opts.comment !== undefined && { Comment: opts.comment.slice(0, 100) }),
    ...(opts.output !== undefined && {
      OutputS3BucketName: opts.output.bucket,
      OutputS3KeyPrefix: opts.output.keyPrefix,
    }),
  });
  for (let attempt = 1; ; attempt++) {
    try {
      const out = await deps.aws.ssmNoRetry.send(command, callOptions(deps));
      const commandId = out.Command?.CommandId;
      if (!commandId) {
        // Accepted, but we cannot tell which command it is.
        return { kind: "unknown", error: { code: "MalformedReply", message: "no CommandId" } };
      }
      return { kind: "sent", commandId };
    } catch (err) {
      if (awsErrorCode(err) === "InvalidInstanceId") {
        return { kind: "unreachable", pingStatus: "InvalidInstanceId" };
      }
      const notTaken = certainlyNotTaken(err);
      if (notTaken && attempt < SEND_ATTEMPTS) {
        await sleep(SEND_BACKOFF_MS * 2 ** (attempt - 1) * (0.5 + Math.random()));
        continue;
      }
      return notTaken || answeredRefusal(err)
        ? { kind: "transient", error: describeAwsError(err) }
        : { kind: "unknown", error: describeAwsError(err) };
    }
  }
}

const noAnswer: AwsProblem = { code: "NoAnswer", message: "no ping status was returned" };

/** SSM answered, and the answer says the request was not processed. */
function certainlyNotTaken(err: unknown): boolean {
  const e = err as Error & { code?: string };
  return (
    isThrottlingError(e as unknown as Parameters<typeof isThrottlingError>[0]) ||
    e.code === "ECONNREFUSED"
  );
}

/** A 4xx with a service error code: SSM read the request and refused it. */
function answeredRefusal(err: unknown): boolean {
  const e = err as { $fault?: string; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  return (
    isPermissionError(err) ||
    (e.$fault === "client" && status !== undefined && status >= 400 && status < 500)
  );
}

// ListCommands pages hold at most 50 commands (ssm/latest/APIReference/API_ListCommands.html).
const LIST_PAGE_SIZE = 50;

/**
 * Finds the newest command sent to `instanceId` at or after `since` whose Comment starts with
 * `marker` — how a SendCommand whose answer was lost is recovered: the caller put a unique
 * marker in the comment, SSM keeps the command in its history. `null` when SSM lists none (it
 * may not list a command just sent yet: the caller waits a while before trusting "none").
 * Throws when ListCommands fails: "none" must not be read from a failed call.
 */
export async function findSentCommand(
  deps: Pick<Deps, "aws" | "deadline">,
  instanceId: string,
  marker: string,
  since: Date,
): Promise<string | null> {
  let best: { id: string; at: number } | null = null;
  let nextToken: string | undefined;
  do {
    const out = await deps.aws.ssm.send(
      new ListCommandsCommand({
        InstanceId: instanceId,
        Filters: [{ key: "InvokedAfter", value: since.toISOString() }],
        MaxResults: LIST_PAGE_SIZE,
        ...(nextToken !== undefined && { NextToken: nextToken }),
      }),
      callOptions(deps),
    );
    for (const cmd of out.Commands ?? []) {
      if (!cmd.CommandId || !(cmd.Comment ?? "").startsWith(marker)) continue;
      const at = cmd.RequestedDateTime?.getTime() ?? 0;
      if (!best || at > best.at) best = { id: cmd.CommandId, at };
    }
    nextToken = out.NextToken || undefined;
  } while (nextToken !== undefined);
  return best?.id ?? null;
}

/**
 * What SSM says of one instance's agent; `NotRegistered` when SSM does not know it. `lastPingAt`
 * is SSM's LastPingDateTime: when the agent last pinged it.
 */
export type PingResult =
  | { kind: "known"; status: string; lastPingAt?: Date }
  | { kind: "transient"; error: AwsProblem };

// DescribeInstanceInformation: "Array Members: Minimum number of 1 item. Maximum number of 100
// items" per filter (ssm/latest/APIReference/API_InstanceInformationStringFilter.html), pages of
// at most 50 (MaxResults 5–50, API_DescribeInstanceInformation.html).
export const MAX_PING_IDS_PER_CALL = 100;
const PING_PAGE_SIZE = 50;

/**
 * The SSM agents' `PingStatus` of many instances: ⌈N/100⌉ DescribeInstanceInformation filters
 * (each paged by 50), a few in parallel — cost grows with batches, not rows. A failed call makes
 * only its own ids `transient` (with `misconfigured` when SSM refused our identity); an id SSM
 * does not list is `NotRegistered`.
 */
export async function pingStatuses(
  deps: Pick<Deps, "aws" | "deadline">,
  instanceIds: readonly string[],
): Promise<Map<string, PingResult>> {
  const unique = [...new Set(instanceIds)].filter((id) => id !== "");
  const results = new Map<string, PingResult>();
  const chunks: string[][] = [];
  for (let i = 0; i < unique.length; i += MAX_PING_IDS_PER_CALL) {
    chunks.push(unique.slice(i, i + MAX_PING_IDS_PER_CALL));
  }
  await forEachBounded(chunks, 4, async (chunk) => {
    const seen = new Map<string, { status: string; lastPingAt?: Date }>();
    try {
      let nextToken: string | undefined;
      do {
        const out = await deps.aws.ssm.send(
          new DescribeInstanceInformationCommand({
            Filters: [{ Key: "InstanceIds", Values: chunk }],
            MaxResults: PING_PAGE_SIZE,
            ...(nextToken !== undefined && { NextToken: nextToken }),
          }),
          callOptions(deps),
        );
        for (const info of out.InstanceInformationList ?? []) {
          if (info.InstanceId && chunk.includes(info.InstanceId)) {
            seen.set(info.InstanceId, {
              status: info.PingStatus ?? "Unknown",
              ...(info.LastPingDateTime && { lastPingAt: info.LastPingDateTime }),
            });
          }
        }
        nextToken = out.NextToken || undefined;
      } while (nextToken !== undefined);
    } catch (err) {
      const error = describeAwsError(err);
      for (const id of chunk) results.set(id, { kind: "transient", error });
      return;
    }
    for (const id of chunk) {
      results.set(id, { kind: "known", ...(seen.get(id) ?? { status: "NotRegistered" }) });
    }
  });
  return results;
}

/** One read of an invocation: its status while it runs, and its result once it has ended. */
export interface Invocation {
  status: CommandStatus;
  statusDetails: string;
  startedAt: Date | null;
  finishedAt: Date | null;
  /** Set once the status is terminal (Success, Failed, TimedOut, Cancelled). */
  result: CommandResult | null;
}

// GetCommandInvocation's times are ISO 8601 strings, "" until they happen.
const dateOf = (text: string | undefined) => {
  const at = text ? Date.parse(text) : Number.NaN;
  return Number.isNaN(at) ? null : new Date(at);
};

/**
 * Reads an invocation once. `null` while SSM answers InvocationDoesNotExist — right after
 * SendCommand that is a known race, so callers keep polling.
 */
export async function readInvocation(
  deps: Pick<Deps, "aws" | "deadline">,
  commandId: string,
  instanceId: string,
): Promise<Invocation | null> {
  let out: GetCommandInvocationCommandOutput;
  try {
    out = await deps.aws.ssm.send(
      new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId }),
      callOptions(deps),
    );
  } catch (err) {
    if (awsErrorCode(err) === "InvocationDoesNotExist") return null;
    throw err;
  }
  const status = (out.Status ?? "Pending") as CommandStatus;
  const statusDetails = out.StatusDetails ?? status;
  const times = {
    startedAt: dateOf(out.ExecutionStartDateTime),
    finishedAt: dateOf(out.ExecutionEndDateTime),
  };
  if (!TERMINAL.has(status)) return { status, statusDetails, ...times, result: null };
  const stdout = out.StandardOutputContent ?? "";
  const stderr = out.StandardErrorContent ?? "";
  const exitCode = out.ResponseCode ?? -1;
  const result: CommandResult = {
    ok: status === "Success" && exitCode === 0,
    status,
    statusDetails,
    exitCode,
    stdout,
    stderr,
    truncated: stdout.endsWith(TRUNCATION_MARKER) || stderr.endsWith(TRUNCATION_MARKER),
    commandId,
  };
  return { status, statusDetails, ...times, result };
}

/**
 * Reads a command's result once. `null` while it runs — including right after SendCommand, when
 * GetCommandInvocation may answer InvocationDoesNotExist for a while (a known race).
 */
export async function readCommand(
  deps: Pick<Deps, "aws" | "deadline">,
  commandId: string,
  instanceId: string,
): Promise<CommandResult | null> {
  return (await readInvocation(deps, commandId, instanceId))?.result ?? null;
}

/**
 * Where the agent puts one stream of a command sent with {@link SendOptions.output}: it joins
 * the prefix, the CommandId and the instance id (amazon-ssm-agent agent/runcommand
 * parseSendCommandMessage: `path.Join(OutputS3KeyPrefix, CommandID, Destination)`), then the
 * plugin's name and step (`awsrunShellScript/0.awsrunShellScript`, the layout shown in
 * docs.aws.amazon.com/systems-manager/latest/APIReference/API_CommandPlugin.html), then
 * `stdout`/`stderr` (iohandler.DefaultOutputConfig). An empty stream is not uploaded at all
 * (iomodule/fileS3.go uploads only when the file's size is above 0).
 */
export function commandOutputKey(
  keyPrefix: string,
  commandId: string,
  instanceId: string,
  stream: "stdout" | "stderr",
): string {
  return [keyPrefix, commandId, instanceId, "awsrunShellScript", "0.awsrunShellScript", stream]
    .flatMap((part) => part.split("/"))
    .filter((part) => part !== "")
    .join("/");
}

export async function cancelCommand(
  deps: Pick<Deps, "aws" | "deadline">,
  commandId: string,
  instanceId: string,
): Promise<void> {
  await deps.aws.ssm.send(
    new CancelCommandCommand({ CommandId: commandId, InstanceIds: [instanceId] }),
    callOptions(deps),
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
 * Polls until the command finishes or the deadline passes, and returns the last read: terminal
 * (its `result` is set), still running, or `null` when SSM never showed the invocation. Errors
 * other than the invocation race are retried until the deadline: the SDK has already retried
 * them, and a flaky poll says nothing about the command.
 */
export async function waitForInvocation(
  deps: Pick<Deps, "aws" | "deadline">,
  commandId: string,
  instanceId: string,
  deadline: number,
): Promise<Invocation | null> {
  const started = Date.now();
  let delay = FAST_POLL_MS;
  let last: Invocation | null = null;
  for (;;) {
    await sleep(Math.min(delay, Math.max(0, deadline - Date.now())));
    try {
      last = (await readInvocation(deps, commandId, instanceId)) ?? last;
      if (last?.result) return last;
    } catch {
      // Keep polling until the deadline.
    }
    if (Date.now() >= deadline) return last;
    if (Date.now() - started >= FAST_PHASE_MS) delay = Math.min(delay * 2, MAX_POLL_MS);
  }
}

/** {@link waitForInvocation}'s result, or `null` when the command did not finish in time. */
export async function waitForCommand(
  deps: Pick<Deps, "aws" | "deadline">,
  commandId: string,
  instanceId: string,
  deadline: number,
): Promise<CommandResult | null> {
  return (await waitForInvocation(deps, commandId, instanceId, deadline))?.result ?? null;
}

/**
 * Runs a program on an instance and waits for its result: the ping precondition, SendCommand,
 * polling, and — past the deadline — CancelCommand.
 */
export async function runCommand(
  deps: Pick<Deps, "aws" | "deadline">,
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
