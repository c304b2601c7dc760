/**
 * Where a validated request value holds a string that is not well-formed UTF-16: a lone
 * surrogate, which JSON allows as an escape (`"\ud800"`) but nothing downstream can keep —
 * PostgreSQL's jsonb refuses it (a 500 once it reached the insert) and text columns store it as
 * U+FFFD (a silently different name). Keys count as well as values.
 *
 * @returns the paths, written as validation issues are (`env.A`, `names.0`, `(body)`), empty
 *   when every string is well-formed.
 */
export function illFormedStringPaths(value: unknown, path: string[] = []): string[] {
  if (typeof value === "string") return value.isWellFormed() ? [] : [path.join(".") || "(body)"];
  if (Array.isArray(value)) {
    return value.flatMap((item, i) => illFormedStringPaths(item, [...path, String(i)]));
  }
  if (value !== null && typeof value === "object") {
    return Object.entries(value).flatMap(([key, item]) => [
      ...(key.isWellFormed() ? [] : [[...path, key].join(".")]),
      ...illFormedStringPaths(item, [...path, key]),
    ]);
  }
  return [];
}
