CREATE TYPE "public"."command_status" AS ENUM('pending', 'running', 'succeeded', 'failed', 'timed_out', 'cancelled', 'undeliverable');--> statement-breakpoint
CREATE TABLE "workspace_commands" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"seq" bigint GENERATED ALWAYS AS IDENTITY (sequence name "workspace_commands_seq_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"workspace_id" uuid NOT NULL,
	"instance_id" text NOT NULL,
	"generation" integer NOT NULL,
	"requested_by" text NOT NULL,
	"kind" text NOT NULL,
	"argv" jsonb,
	"script_sha256" text,
	"script_bytes" integer,
	"cwd" text,
	"env_keys" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"timeout_seconds" integer NOT NULL,
	"status" "command_status" DEFAULT 'pending' NOT NULL,
	"exit_code" integer,
	"ssm_command_id" text,
	"error" text,
	"idempotency_key" text,
	"request_hash" text,
	"requested_at" timestamp with time zone DEFAULT now() NOT NULL,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "workspace_commands_kind_check" CHECK (("workspace_commands"."kind" = 'argv' and "workspace_commands"."argv" is not null and "workspace_commands"."script_sha256" is null) or ("workspace_commands"."kind" = 'script' and "workspace_commands"."argv" is null and "workspace_commands"."script_sha256" is not null))
);
--> statement-breakpoint
ALTER TABLE "workspace_commands" ADD CONSTRAINT "workspace_commands_workspace_id_workspaces_id_fk" FOREIGN KEY ("workspace_id") REFERENCES "public"."workspaces"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "workspace_commands_workspace_seq_idx" ON "workspace_commands" USING btree ("workspace_id","seq");--> statement-breakpoint
CREATE INDEX "workspace_commands_status_idx" ON "workspace_commands" USING btree ("status","seq");--> statement-breakpoint
CREATE UNIQUE INDEX "workspace_commands_idempotency_idx" ON "workspace_commands" USING btree ("workspace_id","idempotency_key");