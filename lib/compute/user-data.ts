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
 * The boot script of a workspace instance: prepares `$WORKSPACE_ROOT` (configs/plugins and
 * configs/skills, which plugin installs write to), writes the workspace's env file (mode 0600) and
 * starts the runtime image with it. Every value goes through the quoting builder.
 *
 * The runtime container is started only where `WORKSPACE_ROOT` is the real instance's default: a
 * stand-in host (the local cloud presets `WORKSPACE_ROOT` to the instance's directory) gets the
 * files but its own container engine is never touched.
 *
 * @throws UserDataTooLargeError past 16 KB.
 */
export function buildUserData(input: UserDataInput): string {
  const lines = Object.entries({
    ...input.env,
    // The product's own variables win over the user's.
    WORKSPACE_ID: input.workspaceId,
    PLATFORM_URL: input.platformUrl,
    WORKSPACE_TOKEN: input.token,
  }).map(([k, v]) => `${k}=${v}`);
  const script = program(sh`
mkdir -p "$WORKSPACE_ROOT/configs/plugins" "$WORKSPACE_ROOT/configs/skills"
umask 077
printf '%s\\n' ${lines} > "$WORKSPACE_ROOT/workspace.env"
umask 022
echo "workspace ${input.workspaceId}: files prepared in $WORKSPACE_ROOT"
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
  echo "workspace ${input.workspaceId}: runtime started"
fi
`);
  const text = `#!/bin/sh\n${script.text}\n`;
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes > MAX_USER_DATA_BYTES) throw new UserDataTooLargeError(bytes);
  return text;
}
