import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import {
  buildUserData,
  type UserDataInput,
  UserDataValueError,
} from "../../../lib/compute/user-data.js";

// buildUserData run by the real /bin/sh, as cloud-init runs it: the env file it writes must hold
// every value byte for byte, and nothing in a value may run.

const run = promisify(execFile);

const input = (env: Record<string, string>): UserDataInput => ({
  workspaceId: "3b0c5f2e-8a4f-4d6b-9f7e-2f6d1c0a9b8e",
  platformUrl: "https://api.example.com",
  token: "tok_ABC-def_123",
  image: "ghcr.io/example/runtime:1",
  env,
});

/** Runs the user-data with WORKSPACE_ROOT in a temp dir; returns the env file, dir and stdout. */
async function boot(userData: string): Promise<{ envFile: string; dir: string; stdout: string }> {
  const dir = await mkdtemp(join(tmpdir(), "user-data-"));
  const script = join(dir, "part-001");
  await writeFile(script, userData);
  const { stdout } = await run("/bin/sh", [script], {
    cwd: dir,
    env: { PATH: "/usr/bin:/bin", WORKSPACE_ROOT: dir },
  });
  return { envFile: await readFile(join(dir, "workspace.env"), "utf8"), dir, stdout };
}

describe("buildUserData", () => {
  it("writes every env value literally, quotes, $(), backticks and {{ }} included", async () => {
    // Prepare
    const values = {
      QUOTES: `it's "double" and 'single'`,
      // biome-ignore lint/suspicious/noTemplateCurlyInString: shell syntax that must stay literal
      SUBST: "$(touch pwned) `touch pwned2` ${HOME} $0",
      TEMPLATE: "{{ssm:/secret}} {{ .Name }}",
      SPACES: "  leading and trailing  ",
      UNICODE: "héllo wörld € 🚀",
      EMPTY: "",
    };

    // Act
    const { envFile, dir, stdout } = await boot(buildUserData(input(values)));

    // Assess
    try {
      expect(envFile).toBe(
        [
          ...Object.entries(values).map(([k, v]) => `${k}=${v}`),
          "WORKSPACE_ID=3b0c5f2e-8a4f-4d6b-9f7e-2f6d1c0a9b8e",
          "PLATFORM_URL=https://api.example.com",
          "WORKSPACE_TOKEN=tok_ABC-def_123",
          "",
        ].join("\n"),
      );
      expect((await stat(join(dir, "workspace.env"))).mode & 0o777).toBe(0o600);
      expect(stdout).toBe(
        `workspace 3b0c5f2e-8a4f-4d6b-9f7e-2f6d1c0a9b8e: files prepared in ${dir}\n`,
      );
      await expect(stat(join(dir, "pwned"))).rejects.toThrow(/ENOENT/);
      await expect(stat(join(dir, "pwned2"))).rejects.toThrow(/ENOENT/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("lets the product's variables win over the user's", async () => {
    const { envFile, dir } = await boot(buildUserData(input({ WORKSPACE_TOKEN: "forged" })));
    await rm(dir, { recursive: true, force: true });

    expect(envFile).not.toContain("forged");
    expect(envFile.match(/^WORKSPACE_TOKEN=/gm)).toHaveLength(1);
  });

  it("is deterministic, so a re-driven launch sends the same parameters", () => {
    expect(buildUserData(input({ A: "1" }))).toBe(buildUserData(input({ A: "1" })));
  });

  it.each([
    ["a value with a newline (a second, injected line)", { A: "x\nWORKSPACE_TOKEN=forged" }],
    ["a value with a carriage return", { A: "x\ry" }],
    ["a value with NUL", { A: "x\0y" }],
    ["a value with a lone surrogate", { A: "x\ud800y" }],
    ["a key that is not a variable name", { "A B": "x" }],
    ["a key with =", { "A=B": "x" }],
  ])("refuses %s", (_name, env) => {
    expect(() => buildUserData(input(env))).toThrow(UserDataValueError);
  });
});
