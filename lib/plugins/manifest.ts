import { parse as parseYaml } from "yaml";
// A namespace import: esbuild cannot tree-shake zod's `z` re-export (it keeps the whole
// namespace, every locale included, ~260 KiB), but it does shake `import * as z`
// (https://github.com/colinhacks/zod/issues/6597).
import * as z from "zod";
import { isValidPluginName } from "./names.js";

/** The manifest's file name at the root of every plugin. */
export const MANIFEST_FILE = "plugin.yaml";
/** A manifest is a few lines; anything this large is not one. */
export const MAX_MANIFEST_BYTES = 64 * 1024;

const name = z
  .string()
  .refine(isValidPluginName, "must match ^[a-z0-9][a-z0-9._-]{0,127}$ and not contain '..'");

const PluginManifestSchema = z.object({
  name,
  // Versions end up in a download's file name (`<name>-<version>.tar.gz`), so no slashes or
  // spaces. A YAML number (`version: 1.0`) is refused rather than guessed at: 1.0 reads as 1.
  version: z
    .string({ error: 'must be a string (quote it: version: "1.0")' })
    .regex(/^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$/, "must be 1-64 of [0-9A-Za-z.+_-]"),
  description: z.string().max(1000).default(""),
  author: z.string().max(200).default(""),
  tags: z
    .array(z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, "lowercase words"))
    .max(32)
    .default([]),
  skills: z
    .array(name)
    .max(64)
    .default([])
    .refine((s) => new Set(s).size === s.length, "must not repeat a skill"),
  // Empty means the plugin does not restrict the runtimes it works with.
  runtimes: z
    .array(z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, "lowercase runtime names"))
    .max(32)
    .default([]),
});

export type PluginManifest = z.infer<typeof PluginManifestSchema>;

export type ManifestParse =
  | { kind: "valid"; manifest: PluginManifest }
  | { kind: "invalid"; message: string };

/**
 * Parses and validates `plugin.yaml`. `name` and `version` are required; `description`,
 * `author`, `tags`, `skills` and `runtimes` default to empty; unknown keys are ignored so a
 * newer manifest still loads. YAML aliases are capped, so an alias bomb is refused rather than
 * expanded. Never throws for bad input: the outcome says what is wrong, for 422 INVALID_MANIFEST.
 */
export function parseManifest(text: string): ManifestParse {
  let raw: unknown;
  try {
    raw = parseYaml(text, { maxAliasCount: 16, uniqueKeys: true, prettyErrors: false });
  } catch (err) {
    const detail = err instanceof Error ? err.message.split("\n")[0] : String(err);
    return { kind: "invalid", message: `${MANIFEST_FILE} is not valid YAML: ${detail}` };
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    return { kind: "invalid", message: `${MANIFEST_FILE} must be a mapping of fields` };
  }
  const parsed = PluginManifestSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues
      .slice(0, 5)
      .map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`)
      .join("; ");
    return { kind: "invalid", message: `${MANIFEST_FILE} is not valid: ${problems}` };
  }
  return { kind: "valid", manifest: parsed.data };
}
