import { expect, inject, it } from "vitest";
import { modelOptionsFromEnv, runModel } from "../../support/model/run.js";

// The model-based test on real PostgreSQL, bounded for `npm test`: a few random runs of short
// command sequences — concurrent API calls through several containers' pools, the sweep
// alongside, crashes, faults and lost answers in the local cloud, time moved on — each ending
// at the sweep's fixpoint with every invariant checked (test/support/model/invariants.ts).
// `npm run soak` runs it long. A failure prints the MODEL_SEED / MODEL_PATH that replay it:
//   MODEL_SEED=… MODEL_PATH=… npx vitest run --project db:postgres test/integration/postgres/model.test.ts

it("random interleavings keep every invariant, and the sweep settles to a state that is true", async () => {
  const report = await runModel(modelOptionsFromEnv(inject("pgUrl"), { runs: 8, maxCommands: 12 }));
  const { reached, failure, ...figures } = report;
  console.log(`model: ${JSON.stringify({ ...figures, failed: failure !== null })}`);
  if (process.env.MODEL_REACHED === "1") console.log(JSON.stringify(reached, null, 1));
  if (failure !== null) throw new Error(failure);
  expect(report.runs).toBeGreaterThan(0);
}, 180_000);
