import { existsSync, readFileSync, writeFileSync } from "node:fs";

export const BENCHMARKS_FILE = "BENCHMARKS.md";
const SOAK_HEADING = "## Fault soak";

/** Replaces (or adds) the soak's section, leaving the bench's sections as they are. */
export function writeSoakSection(body: string): void {
  const text = existsSync(BENCHMARKS_FILE)
    ? readFileSync(BENCHMARKS_FILE, "utf8")
    : "# Benchmarks\n";
  const at = text.indexOf(SOAK_HEADING);
  const head = (at === -1 ? text : text.slice(0, at)).trimEnd();
  writeFileSync(BENCHMARKS_FILE, `${head}\n\n${SOAK_HEADING}\n\n${body.trim()}\n`);
}

/**
 * BENCHMARKS.md with `header` and the given `## ` sections: a section replaces the one with the
 * same heading, sections not measured this time (and the soak's) keep their place and text.
 */
export function mergeSections(
  header: string,
  sections: readonly string[],
  file = BENCHMARKS_FILE,
): string {
  const existing = existsSync(file) ? readFileSync(file, "utf8") : "";
  const parts = existing
    .split(/^(?=## )/m)
    .slice(1)
    .map((p) => p.trimEnd());
  const heading = (s: string) => s.split("\n", 1)[0] ?? "";
  const fresh = new Map(sections.map((s) => [heading(s), s.trimEnd()]));
  const merged = parts.map((p) => fresh.get(heading(p)) ?? p);
  for (const [h, s] of fresh) if (!parts.some((p) => heading(p) === h)) merged.push(s);
  // The soak's section stays last.
  const soak = merged.filter((s) => heading(s) === SOAK_HEADING);
  const rest = merged.filter((s) => heading(s) !== SOAK_HEADING);
  return `${[header, ...rest, ...soak].join("\n\n")}\n`;
}
