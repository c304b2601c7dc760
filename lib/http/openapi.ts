import { z } from "@hono/zod-openapi";

// Building blocks every route declaration shares, so the OpenAPI document says the same thing
// the same way everywhere.

/** Bearer authentication (the admin token, or a workspace token where a route says so). */
export const security = [{ bearer: [] }];

/**
 * The `{id}` path parameter, canonicalised to lower case at the boundary: a workspace id is a
 * uuid, which PostgreSQL compares case-insensitively, so every later comparison in code (a
 * workspace token's own workspace, say) must see the one spelling the database returns. A
 * malformed id is a 404 in the route, never a 400 here.
 */
export const IdParam = z.object({
  id: z
    .string()
    .toLowerCase()
    .openapi({
      param: { name: "id", in: "path" },
      description: "The workspace id (a uuid; any letter case).",
    }),
});

/** A JSON response entry. */
export const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});
