import { pathToFileURL } from "node:url";
import { modelOptionsFromEnv, runModel } from "../support/model/run.js";
import { startPostgres } from "../support/postgres.js";

// The model-based test's long run (`npm run soak:model`, and the end of `npm run soak`): the
// same commands and invariants as the bounded run in `npm test`
// (test/integration/postgres/model.test.ts), many more runs of longer sequences, on a
// throwaway PostgreSQL 15 server. MODEL_RUNS / MODEL_STEPS size it; MODEL_SEED, MODEL_PATH (and
// MODEL_REPLAY_PATH) replay a failure; MODEL_SHRINK=1 shrinks one first.

const DEFAULTS = { runs: 200, maxCommands: 20 };

/** Runs the long model test; prints its figures (and a failure's report). False on a failure. */
export async function soakModel(): Promise<boolean> {
  const server = await startPostgres();
  try {
    const report = await runModel(modelOptionsFromEnv(server.url, DEFAULTS));
    const { reached, failure, ...figures } = report;
    console.log(JSON.stringify({ model: { ...figures, failed: failure !== null } }));
    if (process.env.MODEL_REACHED === "1") console.log(JSON.stringify(reached, null, 1));
    if (failure !== null) console.error(failure);
    return failure === null;
  } finally {
    await server.stop();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (!(await soakModel())) process.exitCode = 1;
}
