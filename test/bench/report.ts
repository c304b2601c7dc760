import { existsSync, readFileSync, writeFileSync } from "node:fs";

export const BENCHMARKS_FILE = "BENCHMARKS.md";
const SOAK_HEADING = "## Fault soak";

/** The soak's section of BENCHMARKS.md, which `npm run soak` writes and `npm run bench` keeps. */
export function soakSection(): string | null {
  if (!existsSync(BENCHMARKS_FILE)) return null;
  const text = readFileSync(BENCHMARKS_FILE, "utf8");
  const at = text.indexOf(SOAK_HEADING);
  return at === -1 ? null : text.slice(at).trimEnd();
}

/** Replaces (or adds) the soak's section, leaving the bench's sections as they are. */
export function writeSoakSection(body: string): void {
  const text = existsSync(BENCHMARKS_FILE)
    ? readFileSync(BENCHMARKS_FILE, "utf8")
    : "# Benchmarks\n";
  const at = text.indexOf(SOAK_HEADING);
  const head = (at === -1 ? text : text.slice(0, at)).trimEnd();
  writeFileSync(BENCHMARKS_FILE, `${head}\n\n${SOAK_HEADING}\n\n${body.trim()}\n`);
}
