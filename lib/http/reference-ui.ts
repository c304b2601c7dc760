import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { Hono } from "hono";
import type { AppEnv } from "./context.js";
import { referenceUi } from "./on-demand.js";

/**
 * `/docs` served entirely by this product: the reference UI's script is the pinned
 * `@scalar/api-reference` build (`dist/browser/standalone.js`, its version fixed by
 * package-lock.json), read from disk on the first `/docs` request and served from a URL named by
 * its content hash — so it can be cached forever (`immutable`), and a new build is a new URL.
 * Nothing on the page is fetched from anywhere else: no CDN, no web fonts.
 *
 * Read lazily and kept out of the bundle on purpose: the script is ~4 MB, which would multiply
 * the API Lambda's bundle and cold start for a page few requests ask for. In Lambda the file is
 * copied beside the bundle (infra/api.ts `copyFiles`); locally it is read from node_modules.
 */
export interface ReferenceUi {
  /** Where the script is on disk. */
  file: string;
}

/** The script in this checkout's node_modules (`npm start`, tests). */
export function installedReferenceUi(): ReferenceUi {
  // The package exports only its ES entry (dist/index.js); the browser build sits beside it.
  const entry = createRequire(import.meta.url).resolve("@scalar/api-reference");
  return { file: join(dirname(entry), "browser", "standalone.js") };
}

/** A year, the longest `max-age` caches are asked to keep (RFC 9111 §5.2.2.1); RFC 8246 `immutable`. */
const IMMUTABLE = "public, max-age=31536000, immutable";

/** `GET /docs` and the script it loads. */
export function referenceUiRoutes(ui: ReferenceUi) {
  let loading: Promise<{ body: Uint8Array<ArrayBuffer>; path: string }> | undefined;
  const script = () => {
    loading ??= readFile(ui.file).then((body) => ({
      body: new Uint8Array(body),
      path: `/docs/assets/api-reference.${createHash("sha256").update(body).digest("hex").slice(0, 16)}.js`,
    }));
    // A failed read is not kept: the next request tries again.
    loading.catch(() => {
      loading = undefined;
    });
    return loading;
  };

  const routes = new Hono<AppEnv>();
  // The page's renderer loads on the first /docs request (on-demand.ts): not in a cold start.
  routes.get("/docs", async (c, next) => {
    const { Scalar } = await referenceUi();
    return Scalar<AppEnv>(async () => ({
      url: "/openapi.json",
      pageTitle: "workspace-control-plane API",
      cdn: (await script()).path,
      // The default fonts come from the vendor's font host; the page uses the system's instead.
      withDefaultFonts: false,
      // Every route on the page at once, as a reference to read (and search) end to end.
      defaultOpenAllTags: true,
    }))(c, next);
  });
  routes.get("/docs/assets/:file", async (c) => {
    const { body, path } = await script();
    if (c.req.path !== path) return c.notFound();
    c.header("Content-Type", "text/javascript; charset=utf-8");
    c.header("Cache-Control", IMMUTABLE);
    return c.body(body, 200);
  });
  return routes;
}
