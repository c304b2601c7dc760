import { describe, expect, it } from "vitest";
import { parseManifest } from "../../../lib/plugins/manifest.js";

describe("plugin.yaml", () => {
  it("parses a full manifest", () => {
    const result = parseManifest(
      'name: code-review\nversion: "1.2.0"\ndescription: d\nauthor: me\ntags: [a, b]\nskills: [review]\nruntimes: [claude_code]\n',
    );
    expect(result).toEqual({
      kind: "valid",
      manifest: {
        name: "code-review",
        version: "1.2.0",
        description: "d",
        author: "me",
        tags: ["a", "b"],
        skills: ["review"],
        runtimes: ["claude_code"],
      },
    });
  });

  it("defaults the optional fields and ignores unknown keys", () => {
    const result = parseManifest("name: x\nversion: 1.0.0\nhomepage: https://example.com\n");
    expect(result).toEqual({
      kind: "valid",
      manifest: {
        name: "x",
        version: "1.0.0",
        description: "",
        author: "",
        tags: [],
        skills: [],
        runtimes: [],
      },
    });
  });

  it.each([
    ["broken YAML", "name: [unclosed\n", /not valid YAML/],
    ["a list, not a mapping", "- name: x\n", /mapping/],
    ["an empty file", "", /mapping/],
    ["no name", "version: 1.0.0\n", /name/],
    ["no version", "name: x\n", /version/],
    ["a numeric version", "name: x\nversion: 1.0\n", /version.*quote/],
    ["an invalid name", "name: Bad/Name\nversion: 1.0.0\n", /name/],
    ["a name with ..", "name: a..b\nversion: 1.0.0\n", /name/],
    ["a version with a slash", "name: x\nversion: 1/2\n", /version/],
    ["an invalid skill name", "name: x\nversion: 1.0.0\nskills: [../etc]\n", /skills/],
    ["a repeated skill", "name: x\nversion: 1.0.0\nskills: [a, a]\n", /repeat/],
    ["a duplicate key", "name: x\nname: y\nversion: 1.0.0\n", /not valid YAML/],
    ["a multi-document file", "name: x\nversion: 1.0.0\n---\nname: y\n", /not valid YAML/],
  ])("refuses %s", (_what, text, message) => {
    const result = parseManifest(text);
    expect(result.kind).toBe("invalid");
    expect(result.kind === "invalid" && result.message).toMatch(message);
  });

  it("refuses an alias bomb instead of expanding it", () => {
    const lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
    for (let i = 0; i < 8; i++) {
      const prev = String.fromCharCode(97 + i);
      const next = String.fromCharCode(98 + i);
      lines.push(`${next}: &${next} [${Array(10).fill(`*${prev}`).join(",")}]`);
    }
    lines.push("name: x", "version: 1.0.0");
    const started = performance.now();
    const result = parseManifest(lines.join("\n"));
    expect(result.kind).toBe("invalid");
    expect(performance.now() - started).toBeLessThan(1000);
  });
});
