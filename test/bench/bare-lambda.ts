import { Hono } from "hono";
import { handle } from "hono/aws-lambda";

// The baseline for cold-start figures: the smallest Hono Lambda there is.
export const handler = handle(new Hono().get("/", (c) => c.json({ ok: true })));
