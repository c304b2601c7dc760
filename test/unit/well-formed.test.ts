import { describe, expect, it } from "vitest";
import { illFormedStringPaths } from "../../lib/http/well-formed.js";

describe("strings that are not well-formed Unicode", () => {
  it("names every lone surrogate's path, in values and keys, at any depth", () => {
    expect(
      illFormedStringPaths({
        name: "a\ud800",
        ok: "agent 🙂",
        env: { A: "fine", B: "\udc00", "K\ud83d": "v" },
        names: ["x", "y\udbff"],
        n: 5,
        none: null,
      }),
    ).toEqual(["name", "env.B", "env.K\ud83d", "names.1"]);
  });

  it("finds nothing in well-formed values, including surrogate pairs", () => {
    expect(illFormedStringPaths({ a: "🙂🙂", b: ["\ud83d\ude42"], c: { d: "é" } })).toEqual([]);
  });

  it("names the body itself when it is the string", () => {
    expect(illFormedStringPaths("\ud800")).toEqual(["(body)"]);
  });
});
