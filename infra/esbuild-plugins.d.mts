import type { Plugin } from "esbuild";

/** Only zod's English locale (see infra/esbuild-plugins.mjs). */
export const zodEnglishOnly: Plugin;
declare const plugins: Plugin[];
export default plugins;
