import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

// `npm test` runs this first (pretest): the infra suite evaluates sst.config.ts against SST's
// platform sources, which `sst install` unpacks into .sst/platform. Offline flags: without them
// SST tries to download Pulumi and bun, which fails on a machine without internet.
if (!existsSync(".sst/platform/config.d.ts")) {
  console.error("[pretest] installing SST platform sources offline (once, ~30 s)…");
  const result = spawnSync("npx", ["sst", "install", "--stage", "ci"], {
    stdio: "inherit",
    env: {
      ...process.env,
      SST_SKIP_DEPENDENCY_CHECK: "1",
      SST_NO_BUN: "1",
      SST_TELEMETRY_DISABLED: "1",
    },
  });
  process.exit(result.status ?? 1);
}
