import { existsSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { REFERENCE_UI_COPY } from "../../infra/bundling.js";

// The API Lambda reads the reference UI's script where infra copies it: the same relative path
// on both sides, and a source that the pinned package really has.
describe("reference UI in the Lambda package", () => {
  it("copies a file that exists to the path functions/api.ts reads", () => {
    expect(existsSync(REFERENCE_UI_COPY.from)).toBe(true);
    expect(readFileSync("functions/api.ts", "utf8")).toContain(`"${REFERENCE_UI_COPY.to}"`);
    expect(readFileSync("infra/api.ts", "utf8")).toContain("copyFiles: [REFERENCE_UI_COPY]");
  });
});
