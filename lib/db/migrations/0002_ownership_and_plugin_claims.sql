ALTER TABLE "workspace_plugins" ADD COLUMN "op_id" uuid;--> statement-breakpoint
ALTER TABLE "workspace_plugins" ADD COLUMN "instance_id" text;--> statement-breakpoint
ALTER TABLE "workspace_plugins" ADD COLUMN "archive_key" text;--> statement-breakpoint
ALTER TABLE "workspace_plugins" ADD COLUMN "archive_sha256" text;--> statement-breakpoint
ALTER TABLE "workspace_plugins" ADD COLUMN "skills" jsonb DEFAULT '[]'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "workspace_plugins" ADD COLUMN "previous" jsonb;--> statement-breakpoint
ALTER TABLE "workspace_tokens" ADD COLUMN "generation" integer;--> statement-breakpoint
-- Operations in progress before claims existed: give each a claim on the instance it ran on, so
-- the sweep finishes them as it finishes every other.
UPDATE "workspace_plugins" p SET "op_id" = gen_random_uuid(), "instance_id" = w."instance_id"
FROM "workspaces" w
WHERE w."id" = p."workspace_id" AND p."state" IN ('installing', 'uninstalling');
