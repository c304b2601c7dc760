/**
 * Which methods a path is served for, from the routes an app registered: what a 405's `Allow`
 * header lists (RFC 9110 §15.5.6: a 405 must carry `Allow` naming the target's methods). A path
 * no route matches has none, and stays a 404.
 */
export type AllowedMethods = (path: string) => string[];

/**
 * Builds the lookup over Hono's route list (`app.routes`): middleware registered for every
 * method (`ALL`) serves no path on its own, so it is left out. Parameters (`:id`) match one
 * path segment, as Hono's router matches them. `HEAD` is allowed wherever `GET` is: Hono answers
 * it with the GET handler and no body.
 */
export function allowedMethods(
  routes: readonly { method: string; path: string }[],
): AllowedMethods {
  const byPattern = new Map<string, { pattern: RegExp; methods: Set<string> }>();
  for (const route of routes) {
    if (route.method === "ALL" || route.path.includes("*")) continue;
    const entry = byPattern.get(route.path) ?? {
      pattern: pathPattern(route.path),
      methods: new Set<string>(),
    };
    entry.methods.add(route.method.toUpperCase());
    if (route.method.toUpperCase() === "GET") entry.methods.add("HEAD");
    byPattern.set(route.path, entry);
  }
  const entries = [...byPattern.values()];
  return (path) => {
    const methods = new Set<string>();
    for (const { pattern, methods: served } of entries) {
      if (pattern.test(path)) for (const m of served) methods.add(m);
    }
    return [...methods].sort();
  };
}

function pathPattern(path: string): RegExp {
  const source = path
    .split("/")
    .map((segment) =>
      segment.startsWith(":") ? "[^/]+" : segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"),
    )
    .join("/");
  return new RegExp(`^${source}$`);
}
