import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../lib/config.js";

const problemsOf = (env: Record<string, string>, mode: "lambda" | "local" = "local") => {
  try {
    loadConfig(env, mode);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems.map((p) => p.variable);
  }
  return [];
};

describe("settings", () => {
  it("has embedded defaults for local mode", () => {
    const c = loadConfig({}, "local");
    expect(c.databaseUrl).toBe("file://./.data/pglite");
    expect(c.deploymentId).toBe("local");
    expect(c.tierInstanceTypes["1"]).toBe("t3.small");
    expect(c.pluginMaxBytes).toBe(100 * 1024 * 1024);
    expect(c.launchGraceSeconds).toBe(300);
    expect(c.localCloud).toBe(true);
    expect(c.port).toBe(8787);
  });

  it("requires the admin token, database and bucket in Lambda", () => {
    expect(problemsOf({}, "lambda").sort()).toEqual([
      "ADMIN_TOKEN",
      "DATABASE_URL",
      "STAGING_BUCKET",
    ]);
  });

  it.each([
    ["PORT", "eighty"],
    ["DATABASE_URL", "mysql://x"],
    ["TIER_INSTANCE_TYPES", "{not json"],
    ["TIER_INSTANCE_TYPES", '{"small":"t3.small"}'],
    ["RUNTIME_IMAGES", '{"external":"x"}'],
    ["PLUGIN_ALLOW_UNPINNED", "maybe"],
    ["LAUNCH_GRACE_SECONDS", "-5"],
    ["DEPLOYMENT_ID", "has spaces"],
    ["GITHUB_TARBALL_BASE", "not a url"],
    ["ADMIN_TOKEN", "short"],
    ["LOCAL_CLOUD", "sometimes"],
    ["DATABASE_DRIVER", "mysql"],
  ])("a bad %s stops start-up naming it", (variable, value) => {
    expect(problemsOf({ [variable]: value })).toEqual([variable]);
  });

  it("takes LOG_LEVEL in any letter case", () => {
    expect(loadConfig({ LOG_LEVEL: "debug" }, "local").logLevel).toBe("DEBUG");
    expect(loadConfig({ LOG_LEVEL: " Warn " }, "local").logLevel).toBe("WARN");
    expect(problemsOf({ LOG_LEVEL: "loud" })).toEqual(["LOG_LEVEL"]);
  });

  it.each(["", " ", "0", "1.5", "0x50", "65536"])(
    "refuses PORT=%j rather than pick a port",
    (v) => {
      expect(problemsOf({ PORT: v })).toEqual(["PORT"]);
    },
  );

  it("says what each bad setting accepts, one problem per variable", () => {
    try {
      loadConfig({ PORT: "", IDLE_STOP_SECONDS: "soon", PLUGIN_ALLOW_UNPINNED: "yes" }, "local");
      expect.unreachable();
    } catch (err) {
      expect((err as ConfigError).problems).toEqual([
        { variable: "PLUGIN_ALLOW_UNPINNED", message: "must be true, false, 1 or 0" },
        { variable: "IDLE_STOP_SECONDS", message: "must be a whole number of seconds (0 = never)" },
        { variable: "PORT", message: "must be a port number 1-65535" },
      ]);
    }
  });

  it("keeps PGlite and the local cloud inside DATA_DIR unless told otherwise", () => {
    const c = loadConfig({ DATA_DIR: "/srv/wcp/" }, "local");
    expect([c.dataDir, c.databaseUrl, c.localCloudDir]).toEqual([
      "/srv/wcp/",
      "file:///srv/wcp/pglite",
      "/srv/wcp/localcloud",
    ]);
    const apart = loadConfig({ DATA_DIR: "/srv/wcp", LOCALCLOUD_DIR: "/var/cloud" }, "local");
    expect(apart.localCloudDir).toBe("/var/cloud");
  });

  it("DATABASE_DRIVER: neon, pg or unset, and only with a postgres:// URL", () => {
    const pg = "postgres://u:p@db.internal:5432/app";
    expect(loadConfig({ DATABASE_URL: pg }, "local").databaseDriver).toBeUndefined();
    expect(loadConfig({ DATABASE_URL: pg, DATABASE_DRIVER: "neon" }, "local").databaseDriver).toBe(
      "neon",
    );
    expect(loadConfig({ DATABASE_URL: pg, DATABASE_DRIVER: "pg" }, "local").databaseDriver).toBe(
      "pg",
    );
    expect(problemsOf({ DATABASE_DRIVER: "pg" })).toEqual(["DATABASE_DRIVER"]);
    expect(problemsOf({ DATABASE_URL: "memory://", DATABASE_DRIVER: "neon" })).toEqual([
      "DATABASE_DRIVER",
    ]);
  });

  it("never puts the bad value in the message", () => {
    try {
      loadConfig({ ADMIN_TOKEN: "tiny" }, "local");
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).toContain("ADMIN_TOKEN");
      expect((err as Error).message).not.toContain("tiny");
    }
  });

  it("parses lists and maps", () => {
    const c = loadConfig(
      {
        WORKSPACE_SUBNET_IDS: "subnet-a, subnet-b,,",
        RUNTIME_IMAGES: '{"langgraph":"img:1"}',
        PLUGIN_ALLOW_UNPINNED: "true",
      },
      "local",
    );
    expect(c.workspaceSubnetIds).toEqual(["subnet-a", "subnet-b"]);
    expect(c.runtimeImages).toEqual({ langgraph: "img:1" });
    expect(c.pluginAllowUnpinned).toBe(true);
  });
});

describe("webhook settings", () => {
  const lambda = {
    ADMIN_TOKEN: "x".repeat(16),
    DATABASE_URL: "postgres://h/db",
    STAGING_BUCKET: "bkt",
  };

  it("allow private targets by default only in local mode", () => {
    expect(loadConfig({}, "local").webhooks.allowPrivate).toBe(true);
    expect(loadConfig(lambda, "lambda").webhooks.allowPrivate).toBe(false);
    expect(
      loadConfig({ ...lambda, WEBHOOK_ALLOW_PRIVATE: "true" }, "lambda").webhooks.allowPrivate,
    ).toBe(true);
    expect(loadConfig({ WEBHOOK_ALLOW_PRIVATE: "false" }, "local").webhooks.allowPrivate).toBe(
      false,
    );
  });

  it("default to a 24 h retry period from 5 s, capped at 1 h, 5 s per attempt, 2 s in a request", () => {
    expect(loadConfig({}, "local").webhooks).toEqual({
      allowPrivate: true,
      timeoutMs: 5_000,
      retryPeriodMs: 86_400_000,
      firstRetryDelayMs: 5_000,
      maxRetryDelayMs: 3_600_000,
      inlineMs: 2_000,
    });
  });

  it.each([
    ["WEBHOOK_ALLOW_PRIVATE", "yes"],
    ["WEBHOOK_TIMEOUT_SECONDS", "0"],
    ["WEBHOOK_TIMEOUT_SECONDS", "30"],
    ["WEBHOOK_RETRY_PERIOD_SECONDS", "-1"],
    ["WEBHOOK_RETRY_FIRST_DELAY_SECONDS", "soon"],
    ["WEBHOOK_INLINE_SECONDS", "11"],
  ])("refuses %s=%s, naming it", (variable, value) => {
    expect(problemsOf({ [variable]: value })).toEqual([variable]);
  });

  it("refuses a cap below the first delay", () => {
    expect(
      problemsOf({
        WEBHOOK_RETRY_FIRST_DELAY_SECONDS: "60",
        WEBHOOK_RETRY_MAX_DELAY_SECONDS: "10",
      }),
    ).toEqual(["WEBHOOK_RETRY_MAX_DELAY_SECONDS"]);
  });
});
