import { program, sh } from "./script.js";

// "User data is limited to 16 KB, in raw form, before it is base64-encoded."
// (docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-add-user-data.html)
export const MAX_USER_DATA_BYTES = 16 * 1024;

export interface UserDataInput {
  workspaceId: string;
  platformUrl: string;
  /** The instance's workspace token (derived per generation, see `instanceToken`). */
  token: string;
  image: string;
  env: Record<string, string>;
}

export class UserDataTooLargeError extends Error {
  override name = "UserDataTooLargeError";
  constructor(readonly bytes: number) {
    super(`user-data is ${bytes} bytes; EC2 accepts at most ${MAX_USER_DATA_BYTES}`);
  }
}

/**
 * An env entry the env file cannot hold: a key that is not a shell variable name, or a value with
 * a line break, NUL or broken UTF-16. The API refuses these as 400; reaching here is a bug.
 */
export class UserDataValueError extends Error {
  override name = "UserDataValueError";
  constructor(readonly key: string) {
    super(`env entry ${JSON.stringify(key.slice(0, 64))} cannot be written to the env file`);
  }
}

const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
// A line break would start a second KEY=VALUE line (an injected variable); NUL and lone
// surrogates have no faithful UTF-8 bytes.
const BAD_VALUE = /[\r\n\0]|\p{Cs}/u;

/**
 * The boot script of a workspace instance: prepares `$WORKSPACE_ROOT` (configs/plugins and
 * configs/skills, which plugin installs write to), writes the workspace's env file (mode 0600) and
 * starts the runtime image with it. Every value goes through the quoting builder, and stands as
 * a word of its own: a quoted value inside a double-quoted string would keep its quotes.
 *
 * The env file travels base64-encoded: user-data is not an SSM document, so `{{` in an env value
 * (a prompt or Go template) is harmless here, but the quoting builder refuses `{{` in any value —
 * quoted as is, such a value would make the launch throw. Base64 has no `{{`, quotes or `$`.
 *
 * The runtime container is started only where `WORKSPACE_ROOT` is the real instance's default: a
 * stand-in host (the local cloud presets `WORKSPACE_ROOT` to the instance's directory) gets the
 * files but its own container engine is never touched.
 *
 * @throws UserDataTooLargeError past 16 KB.
 * @throws UserDataValueError for an env key or value the env file cannot hold.
 */
export function buildUserData(input: UserDataInput): string {
  const entries = Object.entries({
    ...input.env,
    // The product's own variables win over the user's.
    WORKSPACE_ID: input.workspaceId,
    PLATFORM_URL: input.platformUrl,
    WORKSPACE_TOKEN: input.token,
  });
  for (const [k, v] of entries) {
    if (!ENV_KEY.test(k) || BAD_VALUE.test(v)) throw new UserDataValueError(k);
  }
  const envFile = entries.map(([k, v]) => `${k}=${v}\n`).join("");
  const encoded = Buffer.from(envFile, "utf8").toString("base64");
  const script = program(sh`
mkdir -p "$WORKSPACE_ROOT/configs/plugins" "$WORKSPACE_ROOT/configs/skills"
umask 077
printf '%s' ${encoded} | base64 -d > "$WORKSPACE_ROOT/workspace.env"
umask 022
printf 'workspace %s: files prepared in %s\\n' ${input.workspaceId} "$WORKSPACE_ROOT"
if [ "$WORKSPACE_ROOT" = /var/lib/workspace ]; then
  if ! command -v docker >/dev/null 2>&1; then
    dnf install -y docker
    systemctl enable --now docker
  fi
  docker rm -f workspace >/dev/null 2>&1 || true
  docker run -d --name workspace --restart unless-stopped \\
    --env-file "$WORKSPACE_ROOT/workspace.env" \\
    -v "$WORKSPACE_ROOT/configs:/workspace/configs" \\
    -- ${input.image}
  printf 'workspace %s: runtime started\\n' ${input.workspaceId}
fi
`);
  const text = `#!/bin/sh\n${script.text}\n`;
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes > MAX_USER_DATA_BYTES) throw new UserDataTooLargeError(bytes);
  return text;
}
