import { z } from "zod";
import { CloudError, type WireResponse } from "./errors.js";
import type { Fleet, Registration } from "./fleet.js";
import {
  type CommandRunner,
  executionTimeoutDefault,
  executionTimeoutMax,
  executionTimeoutMin,
  outputKey,
} from "./runcommand.js";
import type { CommandRecord, InstanceRecord, InvocationRecord } from "./store.js";

/** The SSM JSON 1.1 API of the local cloud (`X-Amz-Target: AmazonSSM.<Action>`). */

const accountId = "123456789012";
const region = "us-east-1";
const agentVersion = "3.3.1142.0";
const pluginName = "aws:runShellScript";
/** SendCommand: "You can specify a maximum of 50 IDs" (ssm/latest/APIReference/API_SendCommand.html). */
export const maxInstanceIdsPerCommand = 50;
/** AWS-RunShellScript's document parameters; anything else is InvalidParameters. */
const documentParameters = new Set(["commands", "workingDirectory", "executionTimeout"]);

export interface SsmDeps {
  fleet: Fleet;
  runner: CommandRunner;
}

type SsmAction = (deps: SsmDeps, input: unknown) => unknown;

const actions: Record<string, SsmAction> = {
  SendCommand: sendCommand,
  GetCommandInvocation: getCommandInvocation,
  CancelCommand: cancelCommand,
  DescribeInstanceInformation: describeInstanceInformation,
  ListCommands: listCommands,
};

export function isSsmAction(action: string): boolean {
  return Object.hasOwn(actions, action);
}

export function handleSsm(deps: SsmDeps, action: string, body: string): WireResponse {
  const run = Object.hasOwn(actions, action) ? actions[action] : undefined;
  if (!run) {
    throw new CloudError(
      "UnknownOperationException",
      `The operation ${action} is not supported by the local cloud.`,
    );
  }
  let input: unknown;
  try {
    input = body.trim() === "" ? {} : JSON.parse(body);
  } catch {
    throw new CloudError(
      "SerializationException",
      "Start of structure or map found where not expected.",
    );
  }
  return jsonResponse(200, run(deps, input));
}

/** JSON 1.1 error: `{"__type": code, "message": …}`; the SDK takes err.name from `__type`. */
export function ssmError(err: CloudError): WireResponse {
  return jsonResponse(err.status, { __type: err.code, message: err.message });
}

/** 200 with half a JSON document: the SDK's JSON parser rejects it. */
export function ssmMalformed(): WireResponse {
  return {
    status: 200,
    headers: { "content-type": "application/x-amz-json-1.1" },
    body: '{"Command": {"CommandId": ',
  };
}

function jsonResponse(status: number, value: unknown): WireResponse {
  return {
    status,
    headers: { "content-type": "application/x-amz-json-1.1" },
    body: JSON.stringify(value),
  };
}

/** Zod issues worded like AWS's ValidationException ("1 validation error detected: …"). */
function parse<T>(schema: z.ZodType<T>, input: unknown): T {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issues = result.error.issues.map((i) => {
    const path = i.path.map((p) =>
      typeof p === "string" ? p.charAt(0).toLowerCase() + p.slice(1) : String(p),
    );
    return `Value at '${path.join(".")}' failed to satisfy constraint: ${i.message}`;
  });
  const n = issues.length;
  throw new CloudError(
    "ValidationException",
    `${n} validation error${n === 1 ? "" : "s"} detected: ${issues.join("; ")}`,
  );
}

const instanceIdPattern = /^(?:i-(?:\w{8}|\w{17})|mi-\w{17})$/;
const instanceId = z.string().regex(instanceIdPattern, {
  error: "Member must satisfy regular expression pattern: (^i-(\\w{8}|\\w{17})$)|(^mi-\\w{17}$)",
});
const commandId = z.string().length(36, { error: "Member must have length equal to 36" });
const epochSeconds = (ms: number): number => ms / 1000;

// ---------------------------------------------------------------------------------------------
// SendCommand

const sendCommandInput = z.object({
  DocumentName: z.string().min(1, { error: "Member must not be null" }),
  InstanceIds: z
    .array(instanceId)
    .max(maxInstanceIdsPerCommand, {
      error: `Member must have length less than or equal to ${maxInstanceIdsPerCommand}`,
    })
    .optional(),
  Parameters: z.record(z.string(), z.array(z.string())).optional(),
  // TimeoutSeconds (delivery): "Minimum value of 30. Maximum value of 2592000." (API_SendCommand.html)
  TimeoutSeconds: z
    .number()
    .int()
    .min(30, { error: "Member must have value greater than or equal to 30" })
    .max(2_592_000, { error: "Member must have value less than or equal to 2592000" })
    .optional(),
  // Comment: "Maximum length of 100" (API_SendCommand.html)
  Comment: z
    .string()
    .max(100, { error: "Member must have length less than or equal to 100" })
    .optional(),
  DocumentVersion: z.string().optional(),
  Targets: z.array(z.unknown()).optional(),
  // OutputS3BucketName: 3–63 characters; OutputS3KeyPrefix: at most 500; OutputS3Region is
  // deprecated and ignored (API_SendCommand.html). SSM does not check the bucket: the agent's
  // upload fails later, and only its log says so.
  OutputS3BucketName: z
    .string()
    .min(3, { error: "Member must have length greater than or equal to 3" })
    .max(63, { error: "Member must have length less than or equal to 63" })
    .optional(),
  OutputS3KeyPrefix: z
    .string()
    .max(500, { error: "Member must have length less than or equal to 500" })
    .optional(),
  OutputS3Region: z.string().optional(),
});

/**
 * The agent's `ValidateExecutionTimeout` (amazon-ssm-agent agent/plugins/pluginutil/pluginutil.go):
 * an integer or float string, and anything unparsable or outside 5–172800 silently becomes 3600.
 */
export function agentExecutionTimeout(raw: string | undefined): number {
  if (raw === undefined) return executionTimeoutDefault;
  const text = raw.trim();
  let n: number;
  if (/^[+-]?\d+$/.test(text)) n = Number.parseInt(text, 10);
  else if (text !== "" && Number.isFinite(Number(text))) n = Math.trunc(Number(text));
  else n = executionTimeoutDefault;
  return n < executionTimeoutMin || n > executionTimeoutMax ? executionTimeoutDefault : n;
}

function sendCommand({ fleet, runner }: SsmDeps, raw: unknown): unknown {
  const input = parse(sendCommandInput, raw);
  if (input.DocumentName !== "AWS-RunShellScript") {
    throw new CloudError(
      "InvalidDocument",
      `Document with name ${input.DocumentName} does not exist.`,
    );
  }
  if (input.Targets && input.Targets.length > 0) {
    throw new CloudError(
      "InvalidParameters",
      "Targets are not supported by the local cloud; pass InstanceIds.",
    );
  }
  const ids = [...new Set(input.InstanceIds ?? [])];
  if (ids.length === 0) {
    throw new CloudError("ValidationException", "Either InstanceIds or Targets must be specified.");
  }
  const parameters = input.Parameters ?? {};
  for (const name of Object.keys(parameters)) {
    if (!documentParameters.has(name)) {
      throw new CloudError(
        "InvalidParameters",
        `Parameter "${name}" is not defined in the document.`,
      );
    }
  }
  const commands = parameters.commands ?? [];
  if (commands.length === 0) {
    throw new CloudError(
      "InvalidParameters",
      'Parameter "commands" is required but was not provided.',
    );
  }
  // SSM takes instances that are "Running, Pending, Stopped, Stopping" and refuses
  // "Shutting-down and Terminated", and any whose agent never registered (InvalidInstanceId,
  // docs.aws.amazon.com/systems-manager/latest/APIReference/API_SendCommand.html). One whose
  // agent registered at some boot but is not Online now (stopping, stopped, starting again) is
  // accepted, and its invocation waits for the agent to come back.
  const notReady = ids.filter((id) => {
    const inst = fleet.get(id);
    if (!inst || inst.state === "shutting-down" || inst.state === "terminated") return true;
    // A running machine whose agent no longer reaches SSM: "the SSM Agent isn't running".
    if (inst.state === "running" && inst.agentLostAt !== undefined) return true;
    return !fleet.agentKnown(inst);
  });
  if (notReady.length > 0) {
    throw new CloudError(
      "InvalidInstanceId",
      `Instances [[${notReady.join(", ")}]] not in a valid state for account ${accountId}`,
    );
  }
  const cmd = runner.send({
    documentName: input.DocumentName,
    comment: input.Comment ?? "",
    parameters,
    instanceIds: ids,
    unreachable: ids.filter((id) => {
      const inst = fleet.get(id);
      return !inst || fleet.registration(inst)?.pingStatus !== "Online";
    }),
    timeoutSeconds: input.TimeoutSeconds ?? 3600,
    executionTimeoutSeconds: agentExecutionTimeout(parameters.executionTimeout?.[0]),
    // The agent joins the commands with newlines into _script.sh (pluginutil.CreateScriptFile).
    script: `${commands.join("\n")}\n`,
    ...(input.OutputS3BucketName && {
      output: { bucket: input.OutputS3BucketName, keyPrefix: input.OutputS3KeyPrefix ?? "" },
    }),
  });
  return { Command: commandJson(cmd) };
}

function commandJson(cmd: CommandRecord): Record<string, unknown> {
  const status = commandStatus(cmd);
  const done = cmd.invocations.filter((i) => finished.has(i.status));
  return {
    CommandId: cmd.commandId,
    DocumentName: cmd.documentName,
    DocumentVersion: "$DEFAULT",
    Comment: cmd.comment,
    ExpiresAfter: epochSeconds(cmd.requestedAt + cmd.timeoutSeconds * 1000),
    Parameters: cmd.parameters,
    InstanceIds: cmd.instanceIds,
    Targets: [],
    RequestedDateTime: epochSeconds(cmd.requestedAt),
    Status: status,
    StatusDetails: status,
    OutputS3Region: region,
    OutputS3BucketName: cmd.output?.bucket ?? "",
    OutputS3KeyPrefix: cmd.output?.keyPrefix ?? "",
    MaxConcurrency: "50",
    MaxErrors: "0",
    TargetCount: cmd.instanceIds.length,
    CompletedCount: done.length,
    ErrorCount: done.filter((i) => i.status !== "Success").length,
    DeliveryTimedOutCount: 0,
    ServiceRole: "",
    NotificationConfig: { NotificationArn: "", NotificationEvents: [], NotificationType: "" },
    CloudWatchOutputConfig: { CloudWatchLogGroupName: "", CloudWatchOutputEnabled: false },
    TimeoutSeconds: cmd.timeoutSeconds,
  };
}

/**
 * A command's own status from its invocations (monitor-commands.html): Pending until one runs,
 * InProgress while any does, then Success only when all succeeded, else the first failure's.
 */
function commandStatus(cmd: CommandRecord): string {
  const statuses = cmd.invocations.map((i) => i.status);
  if (statuses.length === 0 || statuses.every((s) => s === "Pending")) return "Pending";
  if (statuses.some((s) => !finished.has(s))) return "InProgress";
  return statuses.find((s) => s !== "Success") ?? "Success";
}

// ---------------------------------------------------------------------------------------------
// ListCommands

// CommandFilter: key InvokedAfter | InvokedBefore | Status | ExecutionStage | DocumentName, value
// 1–128 characters; MaxResults 1–50 (ssm/latest/APIReference/API_ListCommands.html,
// API_CommandFilter.html). InvokedAfter/InvokedBefore take an ISO 8601 timestamp.
const listCommandsInput = z.object({
  CommandId: commandId.optional(),
  InstanceId: instanceId.optional(),
  MaxResults: z
    .number()
    .int()
    .min(1, { error: "Member must have value greater than or equal to 1" })
    .max(50, { error: "Member must have value less than or equal to 50" })
    .optional(),
  NextToken: z.string().optional(),
  Filters: z
    .array(
      z.object({
        key: z.enum(["InvokedAfter", "InvokedBefore", "Status", "ExecutionStage", "DocumentName"]),
        value: z.string().min(1).max(128),
      }),
    )
    .max(5)
    .optional(),
});

/** The commands sent, newest first, narrowed by id, instance and filters; paged. */
function listCommands({ runner }: SsmDeps, raw: unknown): unknown {
  const input = parse(listCommandsInput, raw);
  let commands = runner.all();
  if (input.CommandId !== undefined)
    commands = commands.filter((c) => c.commandId === input.CommandId);
  if (input.InstanceId !== undefined) {
    const id = input.InstanceId;
    commands = commands.filter((c) => c.instanceIds.includes(id));
  }
  for (const f of input.Filters ?? []) {
    const at = Date.parse(f.value);
    switch (f.key) {
      case "InvokedAfter":
      case "InvokedBefore":
        if (Number.isNaN(at)) {
          throw new CloudError("InvalidFilterValue", `The filter value ${f.value} is not valid.`);
        }
        commands = commands.filter((c) =>
          f.key === "InvokedAfter" ? c.requestedAt >= at : c.requestedAt <= at,
        );
        break;
      case "Status":
        commands = commands.filter((c) => commandStatus(c) === f.value);
        break;
      case "DocumentName":
        commands = commands.filter((c) => c.documentName === f.value);
        break;
      case "ExecutionStage":
        commands = commands.filter((c) =>
          f.value === "Executing"
            ? !finished.has(commandStatus(c) as never)
            : f.value === "Complete" && finished.has(commandStatus(c) as never),
        );
        break;
    }
  }
  commands = [...commands].sort((a, b) => b.requestedAt - a.requestedAt);
  let start = 0;
  if (input.NextToken) {
    start = Number(Buffer.from(input.NextToken, "base64url").toString("utf8"));
    if (!Number.isInteger(start) || start < 0) {
      throw new CloudError("InvalidNextToken", "The specified token is not valid.");
    }
  }
  const size = input.MaxResults ?? 50;
  const page = commands.slice(start, start + size);
  const out: Record<string, unknown> = { Commands: page.map(commandJson) };
  if (start + size < commands.length) {
    out.NextToken = Buffer.from(String(start + size)).toString("base64url");
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// GetCommandInvocation

const getInvocationInput = z.object({
  CommandId: commandId,
  InstanceId: instanceId,
  PluginName: z.string().optional(),
});

const finished = new Set<InvocationRecord["status"]>([
  "Success",
  "Failed",
  "TimedOut",
  "Cancelled",
]);

/** ISO 8601 duration as SSM prints it: "PT1.234S". */
function elapsed(ms: number): string {
  return `PT${(ms / 1000).toFixed(3)}S`;
}

function getCommandInvocation({ runner }: SsmDeps, raw: unknown): unknown {
  const input = parse(getInvocationInput, raw);
  if (input.PluginName !== undefined && input.PluginName !== pluginName) {
    throw new CloudError("InvalidPluginName", "The plugin name is not valid.");
  }
  const cmd = runner.get(input.CommandId);
  const inv = runner.invocation(input.CommandId, input.InstanceId);
  if (!cmd || !inv) {
    // Also the answer for a while right after SendCommand: a race callers must poll through.
    throw new CloudError(
      "InvocationDoesNotExist",
      `Invocation for command ${input.CommandId} on instance ${input.InstanceId} does not exist.`,
    );
  }
  const done = finished.has(inv.status);
  const end = inv.endedAt ?? Date.now();
  return {
    CommandId: cmd.commandId,
    InstanceId: inv.instanceId,
    Comment: cmd.comment,
    DocumentName: cmd.documentName,
    DocumentVersion: "$DEFAULT",
    PluginName: pluginName,
    ResponseCode: inv.responseCode,
    ExecutionStartDateTime: inv.startedAt ? new Date(inv.startedAt).toISOString() : "",
    ExecutionElapsedTime: inv.startedAt ? elapsed(end - inv.startedAt) : "",
    ExecutionEndDateTime: done && inv.endedAt ? new Date(inv.endedAt).toISOString() : "",
    Status: inv.status,
    StatusDetails: inv.statusDetails,
    // Output is only reported once the plugin finishes.
    StandardOutputContent: done ? inv.stdout : "",
    StandardOutputUrl: done ? outputUrl(cmd, inv, "stdout") : "",
    StandardErrorContent: done ? inv.stderr : "",
    StandardErrorUrl: done ? outputUrl(cmd, inv, "stderr") : "",
    CloudWatchOutputConfig: { CloudWatchLogGroupName: "", CloudWatchOutputEnabled: false },
  };
}

/**
 * "The URL for the complete text written by the plugin to stdout in Amazon S3. If an S3 bucket
 * wasn't specified, then this string is empty." (API_GetCommandInvocation.html). The host form
 * is not documented; a path-style regional URL names the same object.
 */
function outputUrl(cmd: CommandRecord, inv: InvocationRecord, stream: "stdout" | "stderr") {
  if (!cmd.output) return "";
  const objectKey = outputKey(cmd.output, cmd.commandId, inv.instanceId, stream);
  return `https://s3.${region}.amazonaws.com/${cmd.output.bucket}/${objectKey}`;
}

// ---------------------------------------------------------------------------------------------
// CancelCommand

const cancelInput = z.object({
  CommandId: commandId,
  InstanceIds: z.array(instanceId).max(maxInstanceIdsPerCommand).optional(),
});

function cancelCommand({ runner }: SsmDeps, raw: unknown): unknown {
  const input = parse(cancelInput, raw);
  const cmd = runner.get(input.CommandId);
  if (!cmd) throw new CloudError("InvalidCommandId", `Command ${input.CommandId} does not exist.`);
  const ids = input.InstanceIds && input.InstanceIds.length > 0 ? input.InstanceIds : undefined;
  const stranger = ids?.find((id) => !cmd.instanceIds.includes(id));
  if (stranger) {
    throw new CloudError(
      "InvalidInstanceId",
      `Instance ${stranger} is not part of command ${cmd.commandId}`,
    );
  }
  runner.cancel(cmd, ids);
  return {};
}

// ---------------------------------------------------------------------------------------------
// DescribeInstanceInformation

const infoInput = z.object({
  InstanceInformationFilterList: z
    .array(z.object({ key: z.string(), valueSet: z.array(z.string()).min(1).max(100) }))
    .optional(),
  Filters: z
    .array(z.object({ Key: z.string(), Values: z.array(z.string()).min(1).max(100) }))
    .optional(),
  // MaxResults: "Minimum value of 5. Maximum value of 50." (API_DescribeInstanceInformation.html)
  MaxResults: z
    .number()
    .int()
    .min(5, { error: "Member must have value greater than or equal to 5" })
    .max(50, { error: "Member must have value less than or equal to 50" })
    .optional(),
  NextToken: z.string().optional(),
});

type InfoFilterKey = "InstanceIds" | "PingStatus" | "PlatformTypes" | "ResourceType";
const infoFilterKeys = new Set<string>([
  "InstanceIds",
  "PingStatus",
  "PlatformTypes",
  "ResourceType",
]);

function infoField(key: InfoFilterKey, inst: InstanceRecord, reg: Registration): string {
  switch (key) {
    case "InstanceIds":
      return inst.id;
    case "PingStatus":
      return reg.pingStatus;
    case "PlatformTypes":
      return "Linux";
    case "ResourceType":
      return "EC2Instance";
    default: {
      const never: never = key;
      throw new Error(`unknown filter ${String(never)}`);
    }
  }
}

function describeInstanceInformation({ fleet }: SsmDeps, raw: unknown): unknown {
  const input = parse(infoInput, raw);
  const filters: { key: InfoFilterKey; values: string[] }[] = [];
  for (const f of input.InstanceInformationFilterList ?? []) {
    if (!infoFilterKeys.has(f.key)) {
      throw new CloudError(
        "InvalidInstanceInformationFilterValue",
        `The filter key ${f.key} is not valid.`,
      );
    }
    filters.push({ key: f.key as InfoFilterKey, values: f.valueSet });
  }
  for (const f of input.Filters ?? []) {
    if (!infoFilterKeys.has(f.Key)) {
      throw new CloudError("InvalidFilterKey", `The filter key ${f.Key} is not valid.`);
    }
    filters.push({ key: f.Key as InfoFilterKey, values: f.Values });
  }
  let after = 0;
  if (input.NextToken) {
    try {
      const parsed = JSON.parse(Buffer.from(input.NextToken, "base64url").toString("utf8")) as {
        after?: unknown;
      };
      if (typeof parsed.after !== "number") throw new Error("bad token");
      after = parsed.after;
    } catch {
      throw new CloudError("InvalidNextToken", "The specified token is not valid.");
    }
  }
  const now = Date.now();
  const registered = fleet
    .all()
    .map((inst) => ({ inst, reg: fleet.registration(inst, now) }))
    .filter((r): r is { inst: InstanceRecord; reg: Registration } => r.reg !== undefined)
    .filter(({ inst, reg }) => filters.every((f) => f.values.includes(infoField(f.key, inst, reg))))
    .filter(({ inst }) => inst.seq > after);
  const pageSize = input.MaxResults ?? 50;
  const page = registered.slice(0, pageSize);
  const last = page.at(-1);
  const out: Record<string, unknown> = {
    InstanceInformationList: page.map(({ inst, reg }) => ({
      InstanceId: inst.id,
      PingStatus: reg.pingStatus,
      LastPingDateTime: epochSeconds(reg.lastPingAt),
      AgentVersion: agentVersion,
      IsLatestVersion: false,
      PlatformType: "Linux",
      PlatformName: "Amazon Linux",
      PlatformVersion: "2023",
      ResourceType: "EC2Instance",
      IPAddress: inst.privateIp,
      ComputerName: `ip-${inst.privateIp.replaceAll(".", "-")}.ec2.internal`,
      SourceId: inst.id,
      SourceType: "AWS::EC2::Instance",
    })),
  };
  if (registered.length > page.length && last) {
    out.NextToken = Buffer.from(JSON.stringify({ after: last.inst.seq })).toString("base64url");
  }
  return out;
}
