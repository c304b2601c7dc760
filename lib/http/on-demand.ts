// What only some routes need, loaded the first time one of them runs. The Lambda bundle is
// built with code splitting (infra/bundling.ts), so each module here — and whatever only it
// imports — becomes a chunk of its own that a cold start does not evaluate: plugin staging with
// its archive (tar) and manifest (YAML) code, the curated registry's manifest reader, the
// reference UI. A route imports such a verb through this list, never statically, and
// test/infra/bundle-contents.test.ts fails when one of them reaches the api's cold start.
// A failed load rejects that request (a 500) and is retried by the next one.

/** Installing a plugin: fetch, stage, pack (tar), upload, send. */
export const pluginInstall = () => import("../plugins/install.js");
/** A plugin's archive for an external workspace: stage and pack (tar). */
export const pluginDownload = () => import("../plugins/download.js");
/** The curated registry listing: reads each plugin's YAML manifest. */
export const pluginRegistry = () => import("../plugins/registry.js");
/** `/docs`: the API reference page. */
export const referenceUi = () => import("@scalar/hono-api-reference");
