#!/usr/bin/env node
// The `wcp` bin: runs the TypeScript entry through tsx, resolved from this package, so
// `npx wcp` works from any directory of the repository without a build step.
import { register } from "tsx/esm/api";

register();
await import("../functions/wcp.ts");
