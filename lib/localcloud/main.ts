import { resolve } from "node:path";
import { startLocalCloud } from "./index.js";

// `npm run localcloud`: the local cloud on its own, until Ctrl-C.
const port = Number(process.env.LOCALCLOUD_PORT ?? "4566");
const dir = resolve(process.env.LOCALCLOUD_DIR ?? "./.data/localcloud");

const cloud = await startLocalCloud({ port, dir });
console.log(`localcloud listening on ${cloud.url} (state in ${cloud.dir})`);
console.log(
  `  export AWS_ENDPOINT_URL=${cloud.url} AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local`,
);

let stopping = false;
const stop = (signal: string) => {
  if (stopping) return;
  stopping = true;
  console.log(`localcloud: ${signal}, saving state`);
  cloud.close().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error("localcloud: close failed", err);
      process.exit(1);
    },
  );
};
process.on("SIGINT", () => stop("SIGINT"));
process.on("SIGTERM", () => stop("SIGTERM"));
