import { Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import type { SweepMetrics, SweepSummary } from "./run.js";

/**
 * The run's counts as CloudWatch metrics in Embedded Metric Format (one log line that CloudWatch
 * turns into metrics, no PutMetricData call and no permission for it): per pass `changed`,
 * `transient`, `errors`, `misconfigured`, plus `Degraded`, `Misconfigured` (rows AWS refused to
 * be asked about) and the run's duration.
 */
export function emfSweepMetrics(namespace: string, deploymentId: string): SweepMetrics {
  const metrics = new Metrics({ namespace, serviceName: "sweep" });
  metrics.addDimension("deployment", deploymentId);
  return {
    record(summary: SweepSummary) {
      for (const [pass, c] of Object.entries(summary.passes)) {
        const prefix = pass.replace(/[^A-Za-z0-9]/g, "_");
        metrics.addMetric(`${prefix}_changed`, MetricUnit.Count, c.changed);
        metrics.addMetric(`${prefix}_transient`, MetricUnit.Count, c.transient);
        metrics.addMetric(`${prefix}_errors`, MetricUnit.Count, c.errors);
        metrics.addMetric(`${prefix}_misconfigured`, MetricUnit.Count, c.misconfigured);
      }
      metrics.addMetric("Misconfigured", MetricUnit.Count, summary.misconfigured);
      metrics.addMetric("Degraded", MetricUnit.Count, summary.degraded ? 1 : 0);
      metrics.addMetric("DurationMs", MetricUnit.Milliseconds, summary.durationMs);
      metrics.publishStoredMetrics();
    },
  };
}
