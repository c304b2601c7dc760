// The esbuild plugins SST runs when it builds the Lambda functions (`nodejs.plugins`, a path
// to a module whose default export is the list; SST imports it with plain Node, hence
// JavaScript). test/bench/bundle.ts builds with the same list.
import { dirname } from "node:path";

/** zod's locale index, which re-exports every locale (zod/v4/locales/index.js). */
const ZOD_LOCALE_INDEX = /[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/;

/**
 * Only zod's English locale. zod re-exports all ~50 locales as one namespace from its classic
 * and core entries, and `@hono/zod-openapi` hands zod's whole namespace to
 * `extendZodWithOpenApi(z)`, so a bundler must keep every locale (~260 KiB, about an eighth of
 * the api bundle; https://github.com/colinhacks/zod/issues/6050). Nothing here reads a locale
 * but the English one zod registers by default, so the index is loaded as English alone:
 * `z.locales.en` stays, any other locale is gone.
 */
export const zodEnglishOnly = {
  name: "zod-english-only",
  setup(build) {
    // The filter is tested again in the callback: SST's plugin bridge matches `filter` against
    // something other than the path (.sst/platform/functions/nodejs-runtime/plugin.mjs), so
    // only a catch-all filter reaches the callback there.
    build.onLoad({ filter: /.*/ }, (args) => {
      if (!ZOD_LOCALE_INDEX.test(args.path)) return undefined;
      return {
        contents: 'export { default as en } from "./en.js";\n',
        loader: "js",
        resolveDir: dirname(args.path),
      };
    });
  },
};

export default [zodEnglishOnly];
