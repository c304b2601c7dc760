import { describe, expect, it } from "vitest";
import {
  defaultSourceRegistry,
  type SourceParse,
  SourceRegistry,
} from "../../../lib/plugins/sources.js";
import { testConfig } from "../../support/context.js";

const config = testConfig({ GITHUB_TARBALL_BASE: "http://127.0.0.1:9/codeload" });
const sources = defaultSourceRegistry();
const parse = (raw: string, cfg = config) => sources.parse(raw, cfg);

function parsed(result: SourceParse) {
  if (result.kind !== "parsed") throw new Error(`expected a source, got ${JSON.stringify(result)}`);
  return result.source;
}

describe("plugin sources: parsing", () => {
  it("reads a bare NAME as local://NAME", () => {
    const source = parsed(parse("code-review"));
    expect(source).toMatchObject({
      scheme: "local",
      canonical: "local://code-review",
      name: "code-review",
    });
  });

  it("reads local://NAME and keeps the name", () => {
    expect(parsed(parse("local://a.b_c-9")).name).toBe("a.b_c-9");
  });

  it("parses without touching the disk: a missing plugin still parses", () => {
    expect(parse("local://no-such-plugin-anywhere").kind).toBe("parsed");
  });

  it.each([
    ["http://example.com/x.tgz", "http"],
    ["s3://bucket/key", "s3"],
    ["git+ssh://host/repo", "git+ssh"],
  ])("refuses the unknown scheme of %s", (raw, scheme) => {
    const result = parse(raw);
    expect(result).toMatchObject({ kind: "invalid", code: "UNKNOWN_SOURCE_SCHEME" });
    expect(result.kind === "invalid" && result.message).toContain(scheme);
  });

  // SPEC §11: plugin names with `/`, `..`, spaces, uppercase, > 128 chars → 400 INVALID_PLUGIN_NAME.
  it.each([
    ["slash", "a/b"],
    ["parent", ".."],
    ["parent inside", "a..b"],
    ["leading dot", ".hidden"],
    ["space", "code review"],
    ["uppercase", "CodeReview"],
    ["129 chars", "a".repeat(129)],
    ["empty", ""],
    ["newline", "a\nb"],
    ["shell", "$(reboot)"],
  ])("refuses a plugin name with %s, bare and as local://", (_what, name) => {
    expect(parse(`local://${name}`)).toMatchObject({
      kind: "invalid",
      code: "INVALID_PLUGIN_NAME",
    });
    if (name !== "") {
      expect(parse(name)).toMatchObject({ kind: "invalid", code: "INVALID_PLUGIN_NAME" });
    }
  });

  it("accepts names of 1 and 128 characters", () => {
    expect(parsed(parse("a")).name).toBe("a");
    expect(parsed(parse("b".repeat(128))).name).toBe("b".repeat(128));
  });

  it("parses github://OWNER/REPO#REF without knowing the plugin's name", () => {
    const source = parsed(parse("github://acme/plugins#v1.2.0"));
    expect(source).toMatchObject({
      scheme: "github",
      canonical: "github://acme/plugins#v1.2.0",
      name: null,
    });
  });

  it("refuses an unpinned github source unless PLUGIN_ALLOW_UNPINNED", () => {
    expect(parse("github://acme/plugins")).toMatchObject({
      kind: "invalid",
      code: "UNPINNED_SOURCE",
    });
    expect(parse("github://acme/plugins#")).toMatchObject({
      kind: "invalid",
      code: "UNPINNED_SOURCE",
    });
    const loose = testConfig({ PLUGIN_ALLOW_UNPINNED: "true" });
    expect(parsed(parse("github://acme/plugins", loose)).canonical).toBe("github://acme/plugins");
  });

  it.each([
    "github://acme",
    "github://acme/plugins/extra#v1",
    "github://-acme/plugins#v1",
    "github://acme/..#v1",
    "github://acme/plu gins#v1",
    "github://acme/plugins#../../etc",
    "github://acme/plugins#-x",
    "github://acme/plugins#a//b",
    "github://acme/plugins#/abs",
    "github://acme/plugins#v1?x=1",
    "github://acme/plugins#main.lock",
  ])("refuses the malformed github source %s", (raw) => {
    expect(parse(raw)).toMatchObject({ kind: "invalid", code: "VALIDATION_FAILED" });
  });

  it("lets a deployment register its own scheme", () => {
    const registry = defaultSourceRegistry().register("vault", (rest) => ({
      kind: "parsed",
      source: {
        scheme: "vault",
        canonical: `vault://${rest}`,
        name: rest,
        open: async () => ({ kind: "failed", code: "PLUGIN_NOT_FOUND", message: "none" }),
      },
    }));
    expect(registry.schemes()).toEqual(["github", "local", "vault"]);
    expect(parsed(registry.parse("VAULT://x", config)).canonical).toBe("vault://x");
    // The built-in registry is untouched: each deployment builds its own.
    expect(parse("vault://x")).toMatchObject({ code: "UNKNOWN_SOURCE_SCHEME" });
  });

  it("refuses registering a scheme twice or a malformed scheme", () => {
    expect(() => defaultSourceRegistry().register("local", () => parse("x"))).toThrow(/already/);
    expect(() => new SourceRegistry().register("Bad Scheme", () => parse("x"))).toThrow(/invalid/);
  });

  it("without a local scheme a bare name is an unknown scheme", () => {
    expect(new SourceRegistry().parse("x", config)).toMatchObject({
      code: "UNKNOWN_SOURCE_SCHEME",
    });
  });
});
