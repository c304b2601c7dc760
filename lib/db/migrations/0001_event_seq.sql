DROP INDEX "workspace_events_workspace_idx";--> statement-breakpoint
ALTER TABLE "workspace_events" ALTER COLUMN "at" SET DEFAULT clock_timestamp();--> statement-breakpoint
-- Written by hand around drizzle-kit's one-line ADD COLUMN … GENERATED ALWAYS AS IDENTITY, which
-- would number the existing events in whatever order the table rewrite meets them. Existing
-- events are numbered in the order the log was read until now, (at, id), and new ones follow.
ALTER TABLE "workspace_events" ADD COLUMN "seq" bigint;--> statement-breakpoint
UPDATE "workspace_events" AS e SET "seq" = o.n
FROM (SELECT "id", row_number() OVER (ORDER BY "at", "id") AS n FROM "workspace_events") AS o
WHERE e."id" = o."id";--> statement-breakpoint
ALTER TABLE "workspace_events" ALTER COLUMN "seq" SET NOT NULL;--> statement-breakpoint
ALTER TABLE "workspace_events" ALTER COLUMN "seq" ADD GENERATED ALWAYS AS IDENTITY (sequence name "workspace_events_seq_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1);--> statement-breakpoint
SELECT setval('"workspace_events_seq_seq"', (SELECT coalesce(max("seq"), 0) + 1 FROM "workspace_events"), false);--> statement-breakpoint
CREATE INDEX "workspace_events_workspace_seq_idx" ON "workspace_events" USING btree ("workspace_id","seq");
