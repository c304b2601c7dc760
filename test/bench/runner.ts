import { writeFileSync } from "node:fs";
import { BENCHMARKS_FILE, mergeSections } from "./report.js";

/**
 * How `npm run bench` runs its sections: it says first what it will do and for about how long,
 * then one progress line per step with the time so far, and writes BENCHMARKS.md only once every
 * chosen section has finished — a run stopped or failed half-way leaves the file as it was, so
 * the figures in it always come from complete runs.
 */
export interface BenchSection {
  /** The name that selects it on the command line (`npm run bench -- sweep`). */
  name: string;
  /**
   * About how long it takes, in seconds, on the 2-core machine the figures in BENCHMARKS.md come
   * from (its last complete runs); a guide for whoever starts it, not a limit.
   */
  estimateSeconds: number;
  /** How many steps it announces through `step`. */
  steps: number;
  /** Measures, announcing each step as it starts; returns the section's Markdown (`## …`). */
  run(step: (what: string) => void): Promise<string>;
}

export interface BenchRunOptions {
  /** Section names to run; empty: all of them. */
  only: readonly string[];
  header: string;
  /** Where the figures go; default BENCHMARKS.md. */
  file?: string;
  /** Where progress goes (stderr by default, so stdout stays the report). */
  say?: (line: string) => void;
  /** Monotonic milliseconds (tests pass their own). */
  now?: () => number;
}

/** `m:ss` (or `Ns` under a minute), as a person reads a duration. */
export function duration(seconds: number): string {
  const s = Math.round(seconds);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
}

/**
 * Runs the chosen sections in order and merges their Markdown into the figures file at the end.
 * @returns the sections' Markdown; throws (writing nothing) if any section fails.
 */
export async function runBench(
  all: readonly BenchSection[],
  opts: BenchRunOptions,
): Promise<string[]> {
  const say = opts.say ?? ((line: string) => console.error(line));
  const now = opts.now ?? (() => performance.now());
  const file = opts.file ?? BENCHMARKS_FILE;
  const unknown = opts.only.filter((n) => !all.some((s) => s.name === n));
  if (unknown.length > 0) {
    throw new Error(
      `unknown bench section(s): ${unknown.join(", ")}; known: ${all.map((s) => s.name).join(", ")}`,
    );
  }
  const chosen = all.filter((s) => opts.only.length === 0 || opts.only.includes(s.name));
  const total = chosen.reduce((t, s) => t + s.estimateSeconds, 0);
  say(`[bench] ${chosen.length} section(s), about ${duration(total)} in all on a 2-core machine:`);
  for (const s of chosen) say(`[bench]   ${s.name.padEnd(10)} ~${duration(s.estimateSeconds)}`);
  say(
    `[bench] ${file} is rewritten once all of them finish (these sections replaced, the others kept); stopping early leaves it as it is.`,
  );

  const started = now();
  const sections: string[] = [];
  for (const [i, section] of chosen.entries()) {
    const sectionStarted = now();
    let step = 0;
    say(
      `[bench] (${i + 1}/${chosen.length}) ${section.name}, ~${duration(section.estimateSeconds)}`,
    );
    sections.push(
      await section.run((what) => {
        step++;
        const elapsed = duration((now() - started) / 1000);
        say(`[bench]   ${section.name} step ${step}/${section.steps}: ${what} (${elapsed} so far)`);
      }),
    );
    say(`[bench]   ${section.name} done in ${duration((now() - sectionStarted) / 1000)}`);
  }
  writeFileSync(file, mergeSections(opts.header, sections, file));
  say(`[bench] all done in ${duration((now() - started) / 1000)}; wrote ${file}`);
  return sections;
}
