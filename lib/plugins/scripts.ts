import { type Program, program, sh } from "../compute/script.js";

/**
 * The install and uninstall programs sent to instances over SSM. Built only with the quoting
 * builder: every value (name, URL, digest, skill names) is a single-quoted word, and names are
 * validated besides, so word-splitting the `placed` list below is safe.
 *
 * Layout on the instance:
 *
 *     $WORKSPACE_ROOT/configs/plugins/<name>/          the plugin's files
 *     $WORKSPACE_ROOT/configs/skills/<skill>/          each declared skill, copied from
 *                                                     skills/<skill>/ of the plugin
 *     $WORKSPACE_ROOT/configs/skills/<skill>/.wcp-plugin  the owning plugin's name
 *
 * The marker lets an upgrade drop skills the new version no longer declares, lets uninstall
 * find its skills without the manifest, and stops one plugin from replacing another plugin's
 * (or a hand-made) skill of the same name.
 *
 * Work directories are dot-names (`.staging-<txn>`, `.backup-<txn>`), which no plugin or skill
 * name can be, next to their targets so every swap is a `rename` on one filesystem.
 */

export interface InstallScriptInput {
  name: string;
  /** Presigned GET of the packed archive. */
  url: string;
  /** SHA-256 of the archive's bytes. */
  archiveSha256: string;
  skills: readonly string[];
  /** Unique per attempt: names the work directories so concurrent attempts never collide. */
  txn: string;
}

/** Exit codes of the install program, for messages and tests. */
export const INSTALL_EXIT = {
  digestMismatch: 3,
  oddEntry: 4,
  missingSkill: 5,
  skillConflict: 6,
  locked: 7,
} as const;

// How long a program waits for another operation on the same plugin to let go of its lock:
// longer than an uninstall may run, shorter than an install's executionTimeout leaves.
const LOCK_WAIT_SECONDS = 120;

/**
 * Serialises operations on one plugin on the instance (`flock`, util-linux, on Amazon Linux and
 * Debian alike): a program re-sent after a lost SendCommand answer, or a claim taken over after
 * it expired, may overlap one still running; taking turns makes the overlap a repetition, never
 * a mix. Lock files live outside `configs/` (the runtime reads that tree) and are never removed
 * (removing a lock file races whoever opens it next).
 */
const lockPlugin = (exitCode: number) => sh`
mkdir -p "$WORKSPACE_ROOT/.locks"
exec 9>"$WORKSPACE_ROOT/.locks/plugin-$name"
if ! flock -w ${LOCK_WAIT_SECONDS} 9; then
  echo "another operation on plugin $name held its lock too long" >&2
  exit ${exitCode}
fi`;

/**
 * Downloads, verifies and installs a plugin in one program.
 *
 * Contract: everything up to the swap happens in fresh work directories, so any failure there
 * (download, sha256 mismatch, unpack, a missing or foreign skill) leaves the installed version
 * and its skills untouched. The swap moves the old skills and plugin directory aside, renames
 * the new ones in, and only then deletes the old ones; if a step of the swap fails, the EXIT
 * trap puts the old ones back. Work directories are removed on every exit.
 */
export function installProgram(input: InstallScriptInput): Program {
  const { name, url, archiveSha256, skills, txn } = input;
  return program(sh`
name=${name}
url=${url}
want=${archiveSha256}
txn=${txn}
plugins="$WORKSPACE_ROOT/configs/plugins"
skills="$WORKSPACE_ROOT/configs/skills"
stage="$plugins/.staging-$txn"
backup="$plugins/.backup-$txn"
skstage="$skills/.staging-$txn"
skbackup="$skills/.backup-$txn"
committed=0
placed_plugin=0
placed=""
rollback() {
  for s in $placed; do rm -rf "$skills/$s"; done
  for b in "$skbackup"/*; do
    if [ -e "$b" ]; then mv "$b" "$skills/"; fi
  done
  if [ "$placed_plugin" = 1 ]; then rm -rf "$plugins/$name"; fi
  if [ -e "$backup/$name" ]; then mv "$backup/$name" "$plugins/$name"; fi
}
finish() {
  rc=$?
  set +e
  if [ "$committed" != 1 ]; then rollback; fi
  rm -rf "$stage" "$backup" "$skstage" "$skbackup"
  exit "$rc"
}
mkdir -p "$plugins" "$skills"
${lockPlugin(INSTALL_EXIT.locked)}
trap finish EXIT
trap 'exit 143' HUP INT TERM
mkdir "$stage" "$backup" "$skstage" "$skbackup"
curl -fsS --retry 2 --connect-timeout 10 --max-time 240 -o "$stage/plugin.tar.gz" "$url"
got=$(sha256sum "$stage/plugin.tar.gz" | cut -d ' ' -f 1)
if [ "$got" != "$want" ]; then
  echo "archive sha256 mismatch: expected $want, got $got" >&2
  exit ${INSTALL_EXIT.digestMismatch}
fi
mkdir "$stage/tree"
tar -xzf "$stage/plugin.tar.gz" -C "$stage/tree" --no-same-owner --no-same-permissions
odd=$(find "$stage/tree" ! -type f ! -type d | head -n 1)
if [ -n "$odd" ]; then
  echo "archive holds something other than files and directories" >&2
  exit ${INSTALL_EXIT.oddEntry}
fi
for s in ${skills}; do
  if [ ! -d "$stage/tree/skills/$s" ]; then
    echo "declared skill $s is missing from the archive" >&2
    exit ${INSTALL_EXIT.missingSkill}
  fi
  if [ -e "$skills/$s" ]; then
    owner=$(cat "$skills/$s/.wcp-plugin" 2>/dev/null || true)
    if [ "$owner" != "$name" ]; then
      echo "skill $s already exists and does not belong to plugin $name" >&2
      exit ${INSTALL_EXIT.skillConflict}
    fi
  fi
  cp -R "$stage/tree/skills/$s" "$skstage/$s"
  printf '%s\\n' "$name" > "$skstage/$s/.wcp-plugin"
done
for d in "$skills"/*; do
  if [ -f "$d/.wcp-plugin" ] && [ "$(cat "$d/.wcp-plugin")" = "$name" ]; then
    mv "$d" "$skbackup/"
  fi
done
for s in ${skills}; do
  mv "$skstage/$s" "$skills/$s"
  placed="$placed $s"
done
if [ -e "$plugins/$name" ]; then mv "$plugins/$name" "$backup/$name"; fi
mv "$stage/tree" "$plugins/$name"
placed_plugin=1
committed=1
echo "installed $name"
`);
}

/**
 * Removes a plugin's skills (those whose marker names it) and its directory: each is renamed
 * into a trash directory first, so nothing is left half-deleted under its own name, then the
 * trash is removed. A plugin that is already absent is not an error: the goal state holds.
 */
export function uninstallProgram(input: { name: string; txn: string }): Program {
  return program(sh`
name=${input.name}
txn=${input.txn}
plugins="$WORKSPACE_ROOT/configs/plugins"
skills="$WORKSPACE_ROOT/configs/skills"
trash="$plugins/.removing-$txn"
mkdir -p "$plugins" "$skills"
${lockPlugin(INSTALL_EXIT.locked)}
mkdir "$trash"
trap 'rm -rf "$trash"' EXIT
for d in "$skills"/*; do
  if [ -f "$d/.wcp-plugin" ] && [ "$(cat "$d/.wcp-plugin")" = "$name" ]; then
    mv "$d" "$trash/skill-$(basename "$d")"
  fi
done
if [ -e "$plugins/$name" ]; then mv "$plugins/$name" "$trash/plugin"; fi
rm -rf "$trash"
echo "uninstalled $name"
`);
}
