/**
 * Plugin and skill names. A name becomes a directory on the instance
 * (`$WORKSPACE_ROOT/configs/plugins/<name>`), an S3 key segment and part of a download's file
 * name, so it is kept to a small alphabet that needs no escaping anywhere: lowercase letters,
 * digits, `.`, `_`, `-`, starting with a letter or digit, at most 128 characters.
 */
export const PLUGIN_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,127}$/;

/**
 * True when `name` is a valid plugin (or skill) name. `..` anywhere is refused as well: the
 * pattern already stops `.` and `..` as whole names, and refusing the pair inside a name keeps
 * every path built from one obviously free of parent references.
 */
export function isValidPluginName(name: string): boolean {
  return PLUGIN_NAME_PATTERN.test(name) && !name.includes("..");
}

/** Why a name was refused, for the 400 INVALID_PLUGIN_NAME message. */
export function pluginNameProblem(name: string): string {
  if (name.length === 0) return "is empty";
  if (name.length > 128) return "is longer than 128 characters";
  if (name.includes("..")) return "contains '..'";
  if (/[A-Z]/.test(name)) return "contains uppercase letters";
  if (!/^[a-z0-9]/.test(name)) return "must start with a lowercase letter or digit";
  return "may only contain lowercase letters, digits, '.', '_' and '-'";
}

/** Runtime names compare with `-` and `_` taken as equal (`claude_code` = `claude-code`). */
export const normalizeRuntime = (runtime: string): string =>
  runtime.trim().toLowerCase().replaceAll("_", "-");
