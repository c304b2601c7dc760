import { afterEach, describe, expect, it, vi } from "vitest";
import { emfSweepMetrics } from "../../../lib/sweep/metrics.js";
import type { PassName, SweepSummary } from "../../../lib/sweep/run.js";

const counts = (changed: number, transient: number, errors = 0, misconfigured = 0) => ({
  checked: 10,
  changed,
  transient,
  errors,
  misconfigured,
});

afterEach(() => {
  vi.restoreAllMocks();
});

describe("sweep metrics", () => {
  it("writes one CloudWatch EMF document with every pass's counts", () => {
    // Prepare
    const lines: string[] = [];
    vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    });
    const passes = Object.fromEntries(
      [
        "launch",
        "readiness",
        "liveness",
        "external",
        "provision-timeout",
        "removal",
        "idle",
        "power",
        "plugins",
        "orphans",
      ].map((p) => [p, counts(0, 0)]),
    ) as Record<PassName, ReturnType<typeof counts>>;
    passes.liveness = counts(3, 7, 1, 5);
    const summary: SweepSummary = {
      runId: "r",
      passes,
      degraded: true,
      misconfigured: 5,
      refusedActions: ["ec2:DescribeInstances"],
      durationMs: 1234,
    };

    // Act
    emfSweepMetrics("WorkspaceControlPlane", "prod").record(summary);

    // Assess
    const emf = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((d) => "_aws" in d);
    expect(emf).toBeDefined();
    expect(emf?.liveness_changed).toBe(3);
    expect(emf?.liveness_transient).toBe(7);
    expect(emf?.liveness_errors).toBe(1);
    expect(emf?.liveness_misconfigured).toBe(5);
    expect(emf?.Misconfigured).toBe(5);
    expect(emf?.provision_timeout_changed).toBe(0);
    expect(emf?.Degraded).toBe(1);
    expect(emf?.DurationMs).toBe(1234);
    expect(emf?.deployment).toBe("prod");
    const aws = emf?._aws as { CloudWatchMetrics: { Namespace: string }[] };
    expect(aws.CloudWatchMetrics[0]?.Namespace).toBe("WorkspaceControlPlane");
  });
});
