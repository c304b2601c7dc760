import { z } from "@hono/zod-openapi";

// Building blocks every route declaration shares, so the OpenAPI document says the same thing
// the same way everywhere.

/** Bearer authentication (the admin token, or a workspace token where a route says so). */
export const security = [{ bearer: [] }];

/** The `{id}` path parameter; a malformed id is a 404 in the route, never a 400 here. */
export const IdParam = z.object({ id: z.string().openapi({ param: { name: "id", in: "path" } }) });

/** A JSON response entry. */
export const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});
