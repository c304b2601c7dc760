import { z } from "@hono/zod-openapi";
import { MAX_ARGV_ITEMS, MAX_SCRIPT_BYTES } from "../commands/program.js";
import type { WorkspaceCommandRow } from "../commands/records.js";
import { MAX_WAIT_SECONDS } from "../commands/run.js";
import type { Settled } from "../commands/settle.js";
import { COMMAND_STATUSES } from "../db/schema.js";
import { EnvSchema } from "./routes/workspaces.js";

// The commands API's request and response shapes, and the views of a record.

// The SSM agent accepts executionTimeout 5–172,800 s and silently runs anything else for 3,600
// (amazon-ssm-agent pluginutil.go ValidateExecutionTimeout): refused here instead.
const MIN_TIMEOUT_SECONDS = 5;
const MAX_TIMEOUT_SECONDS = 172_800;
const DEFAULT_TIMEOUT_SECONDS = 600;
const DEFAULT_WAIT_SECONDS = 10;
// PATH_MAX on Linux.
const MAX_CWD_CHARS = 4096;

export const RunCommandBody = z
  .object({
    argv: z
      .array(z.string())
      .min(1, "must name a program")
      .max(MAX_ARGV_ITEMS, `at most ${MAX_ARGV_ITEMS} items`)
      .refine((argv) => argv[0] !== "", { message: "must name a program", path: [0] })
      .optional()
      .openapi({
        example: ["ls", "-la", "/srv"],
        description: "The program and its arguments, each passed as one word, never parsed.",
      }),
    script: z
      .string()
      .min(1)
      .refine((s) => Buffer.byteLength(s) <= MAX_SCRIPT_BYTES, `at most ${MAX_SCRIPT_BYTES} bytes`)
      .optional()
      .openapi({
        description: "A shell script, run as is under `set -eu`. Only its sha256 is kept.",
      }),
    env: EnvSchema.default({}).openapi({ description: "Exported first; only keys are kept." }),
    cwd: z
      .string()
      .min(1)
      .max(MAX_CWD_CHARS)
      .optional()
      .openapi({ description: "Absolute, or relative to WORKSPACE_ROOT (the default)." }),
    timeoutSeconds: z
      .number()
      .int()
      .min(MIN_TIMEOUT_SECONDS)
      .max(MAX_TIMEOUT_SECONDS)
      .default(DEFAULT_TIMEOUT_SECONDS)
      .openapi({ description: "SSM executionTimeout: the command is killed after it." }),
    waitSeconds: z
      .number()
      .min(0)
      .max(MAX_WAIT_SECONDS)
      .default(DEFAULT_WAIT_SECONDS)
      .openapi({ description: "Answer 200 if it finishes within this, else 202." }),
  })
  .strict()
  .superRefine((body, ctx) => {
    if ((body.argv === undefined) === (body.script === undefined)) {
      ctx.addIssue({
        code: "custom",
        path: [body.argv === undefined ? "argv" : "script"],
        message: "give exactly one of argv and script",
      });
    }
  })
  .openapi("RunCommand");

export type RunCommandBody = z.infer<typeof RunCommandBody>;

export const CommandRecordSchema = z
  .object({
    commandId: z.uuid(),
    status: z.enum(COMMAND_STATUSES),
    kind: z.enum(["argv", "script"]),
    argv: z.array(z.string()).nullable(),
    scriptSha256: z.string().nullable(),
    scriptBytes: z.number().int().nullable(),
    cwd: z.string().nullable(),
    envKeys: z.array(z.string()),
    timeoutSeconds: z.number().int(),
    exitCode: z
      .number()
      .int()
      .nullable()
      .openapi({ description: "Null: it never ran, or was killed." }),
    instanceId: z.string(),
    generation: z.number().int(),
    ssmCommandId: z
      .string()
      .nullable()
      .openapi({ description: "Null while a lost send is confirmed." }),
    requestedBy: z.string().openapi({ description: "`admin`, or `token:<prefix>`." }),
    requestedAt: z.string(),
    startedAt: z.string().nullable(),
    finishedAt: z.string().nullable(),
    error: z.string().nullable(),
  })
  .openapi("CommandRecord");

export const CommandSchema = CommandRecordSchema.extend({
  stdout: z.string().nullable().openapi({
    description:
      "SSM's first 24,000 characters, cut with `--output truncated--`; the whole stream is at …/output. Null until the command ends (SSM reports output only then), or when SSM could not be read.",
  }),
  stderr: z.string().nullable().openapi({ description: "The first 8,000 characters, likewise." }),
  truncated: z.boolean(),
}).openapi("Command");

export const CommandAccepted = z
  .object({ commandId: z.uuid(), status: z.enum(COMMAND_STATUSES) })
  .openapi("CommandAccepted");

const iso = (d: Date | null) => (d === null ? null : d.toISOString());

/** A record as the audit list shows it: what, who, where, how it ended — never env values. */
export function commandRecordView(row: WorkspaceCommandRow): z.infer<typeof CommandRecordSchema> {
  return {
    commandId: row.id,
    status: row.status,
    kind: row.kind,
    argv: row.argv,
    scriptSha256: row.scriptSha256,
    scriptBytes: row.scriptBytes,
    cwd: row.cwd,
    envKeys: row.envKeys,
    timeoutSeconds: row.timeoutSeconds,
    exitCode: row.exitCode,
    instanceId: row.instanceId,
    generation: row.generation,
    ssmCommandId: row.ssmCommandId,
    requestedBy: row.requestedBy,
    requestedAt: row.requestedAt.toISOString(),
    startedAt: iso(row.startedAt),
    finishedAt: iso(row.finishedAt),
    error: row.error,
  };
}

/** A record with the output SSM keeps inline (empty when it never ran). */
export function commandView({ row, invocation }: Settled): z.infer<typeof CommandSchema> {
  const result = invocation?.result ?? null;
  const neverRan = row.ssmCommandId === null && row.status === "undeliverable";
  return {
    ...commandRecordView(row),
    stdout: result?.stdout ?? (neverRan ? "" : null),
    stderr: result?.stderr ?? (neverRan ? "" : null),
    truncated: result?.truncated ?? false,
  };
}
