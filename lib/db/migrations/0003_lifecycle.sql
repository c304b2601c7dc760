ALTER TYPE "public"."workspace_status" ADD VALUE 'stopping' BEFORE 'removing';--> statement-breakpoint
ALTER TYPE "public"."workspace_status" ADD VALUE 'stopped' BEFORE 'removing';--> statement-breakpoint
ALTER TYPE "public"."workspace_status" ADD VALUE 'starting' BEFORE 'removing';--> statement-breakpoint
ALTER TABLE "workspaces" ADD COLUMN "hibernation" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "workspaces" ADD COLUMN "stopped_reason" text;--> statement-breakpoint
ALTER TABLE "workspaces" ADD COLUMN "hibernated" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "workspaces" ADD COLUMN "idle_stop_seconds" integer;--> statement-breakpoint
ALTER TABLE "workspaces" ADD COLUMN "idle_action" text;--> statement-breakpoint
ALTER TABLE "workspaces" ADD COLUMN "last_activity_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "workspaces" ADD CONSTRAINT "workspaces_idle_action_check" CHECK ("workspaces"."idle_action" in ('stop', 'hibernate'));--> statement-breakpoint
ALTER TABLE "workspaces" ADD CONSTRAINT "workspaces_stopped_reason_check" CHECK ("workspaces"."stopped_reason" in ('user', 'idle'));--> statement-breakpoint
ALTER TABLE "workspaces" ADD CONSTRAINT "workspaces_idle_stop_check" CHECK ("workspaces"."idle_stop_seconds" >= 0);