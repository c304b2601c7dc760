import { resolve } from "node:path";
import { startLocalCloud } from "./index.js";

// `npm run localcloud`: the local cloud on its own, until Ctrl-C. Its settings are checked as
// the product's are: a bad one, or a port in use, is one line naming the variable, exit status 2.
// (lib/localcloud/ imports nothing else from lib/, so the two settings are read here.)

/** The region the local cloud answers for: S3 reports its buckets in us-east-1. */
const REGION = "us-east-1";

function refuse(line: string): never {
  console.error(line);
  process.exit(2);
}

const portText = process.env.LOCALCLOUD_PORT ?? "4566";
const port = /^[0-9]+$/.test(portText.trim()) ? Number(portText) : Number.NaN;
// 0 asks for any free port (the printed URL names it), as `startLocalCloud` takes it.
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  refuse("LOCALCLOUD_PORT: must be a port number 0-65535 (0: any free port)");
}
const dirText = process.env.LOCALCLOUD_DIR ?? "./.data/localcloud";
if (dirText.trim() === "") refuse("LOCALCLOUD_DIR: must be a directory path");
const dir = resolve(dirText);

// Its state holds user data and instance tokens: files 0600, directories 0700.
process.umask(0o077);
const cloud = await startLocalCloud({ port, dir }).catch((err: NodeJS.ErrnoException) => {
  if (err.code === "EADDRINUSE") {
    refuse(
      `LOCALCLOUD_PORT ${port} is already in use on 127.0.0.1; set LOCALCLOUD_PORT to a free port`,
    );
  }
  if (err.code === "EACCES" || err.code === "EROFS" || err.code === "ENOTDIR") {
    refuse(
      `LOCALCLOUD_DIR ${dir} cannot be used (${err.code}); set LOCALCLOUD_DIR to a writable directory`,
    );
  }
  throw err;
});
console.log(`localcloud listening on ${cloud.url} (state in ${cloud.dir})`);
// The AWS CLI and SDKs need a region besides the endpoint and keys; they refuse to sign without.
console.log(
  `  export AWS_ENDPOINT_URL=${cloud.url} AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_REGION=${REGION}`,
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
