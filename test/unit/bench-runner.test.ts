import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type BenchSection, runBench } from "../bench/runner.js";

// `npm run bench` says how long each section takes before it starts, a line per step while it
// runs, and writes the figures file only after a complete run, merging its sections into it.

let dir: string;
let file: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "wcp-bench-runner-"));
  file = join(dir, "BENCHMARKS.md");
  writeFileSync(file, "# Benchmarks\n\nold header\n\n## Kept\n\nkept figures\n\n## A\n\nold A\n");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const section = (name: string, estimateSeconds: number, fail = false): BenchSection => ({
  name,
  estimateSeconds,
  steps: 2,
  async run(step) {
    step(`${name} first`);
    if (fail) throw new Error(`${name} failed`);
    step(`${name} second`);
    return `## ${name}\n\nnew ${name}`;
  },
});

describe("bench runner", () => {
  it("announces each section's estimate first and a progress line per step", async () => {
    const lines: string[] = [];
    await runBench([section("A", 90), section("B", 20)], {
      only: [],
      header: "# Benchmarks\n\nnew header",
      file,
      say: (l) => lines.push(l),
    });

    const firstStep = lines.findIndex((l) => l.includes("step 1/2"));
    const plan = lines.slice(0, firstStep).join("\n");
    expect(plan).toContain("about 1m50s in all");
    expect(plan).toMatch(/A\s+~1m30s/);
    expect(plan).toMatch(/B\s+~20s/);
    expect(plan).toContain(`${file} is rewritten once all of them finish`);
    expect(lines.filter((l) => / step \d\/2: /.test(l))).toHaveLength(4);
    expect(lines.some((l) => l.includes("B step 2/2: B second"))).toBe(true);
  });

  it("merges the sections it ran into the file once all finish", async () => {
    await runBench([section("A", 1), section("B", 1)], {
      only: [],
      header: "# Benchmarks\n\nnew header",
      file,
      say: () => {},
    });

    const text = readFileSync(file, "utf8");
    expect(text).toContain("new header");
    expect(text).toContain("## Kept\n\nkept figures");
    expect(text).toContain("## A\n\nnew A");
    expect(text).not.toContain("old A");
    expect(text).toContain("## B\n\nnew B");
  });

  it("leaves the file untouched when a section fails part-way", async () => {
    const before = readFileSync(file, "utf8");

    await expect(
      runBench([section("A", 1), section("B", 1, true)], {
        only: [],
        header: "# Benchmarks\n\nnew header",
        file,
        say: () => {},
      }),
    ).rejects.toThrow("B failed");

    expect(readFileSync(file, "utf8")).toBe(before);
  });

  it("runs only the sections named, and refuses a name it does not know", async () => {
    const lines: string[] = [];
    await runBench([section("A", 1), section("B", 1)], {
      only: ["B"],
      header: "# Benchmarks",
      file,
      say: (l) => lines.push(l),
    });
    expect(lines.some((l) => l.includes("A step"))).toBe(false);
    await expect(
      runBench([section("A", 1)], { only: ["nope"], header: "", file, say: () => {} }),
    ).rejects.toThrow("unknown bench section(s): nope; known: A");
  });
});
