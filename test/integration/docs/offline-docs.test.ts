import type { AddressInfo } from "node:net";
import { type ServerType, serve } from "@hono/node-server";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../../lib/http/app.js";
import { unitDeps } from "../../support/unit-deps.js";

// `/docs` in a real headless Chromium with no way out: every request to anywhere but the test
// server is aborted and recorded. The page must render the API's routes from what the product
// serves alone, and must not even try to reach elsewhere (a CDN, a font host, telemetry).

const CHROMIUM = "/usr/bin/chromium";
let server: ServerType;
let origin: string;
let browser: Browser;

beforeAll(async () => {
  const app = createApp(unitDeps());
  server = await new Promise<ServerType>((resolve) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s));
  });
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    // No proxy, no background traffic of the browser's own (updates, safe browsing).
    args: ["--no-proxy-server", "--disable-background-networking", "--disable-component-update"],
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await new Promise((resolve) => server?.close(resolve));
});

describe("/docs offline", () => {
  it("shows the API's routes with every request served by the product", async () => {
    // Prepare
    const context = await browser.newContext();
    const elsewhere: string[] = [];
    await context.route("**/*", (route) => {
      const url = route.request().url();
      if (url.startsWith(`${origin}/`)) return route.continue();
      elsewhere.push(url);
      return route.abort("internetdisconnected");
    });
    // WebSockets are not routed by context.route; any attempt shows here.
    const page = await context.newPage();
    page.on("websocket", (ws) => elsewhere.push(ws.url()));
    const served: { url: string; status: number; cache: string | null }[] = [];
    page.on("response", (res) =>
      served.push({
        url: res.url(),
        status: res.status(),
        cache: res.headers()["cache-control"] ?? null,
      }),
    );

    // Act
    await page.goto(`${origin}/docs`, { waitUntil: "load" });

    // Assess: every route's summary is on the page, as the reference UI renders /openapi.json.
    const doc = (await (await fetch(`${origin}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, { summary: string }>>;
    };
    const summaries = Object.values(doc.paths).flatMap((ops) =>
      Object.values(ops).map((op) => op.summary),
    );
    expect(summaries.length).toBeGreaterThan(20);
    await page.getByText("Create a workspace").first().waitFor({ timeout: 30_000 });
    const text = (await page.locator("body").textContent()) ?? "";
    expect(summaries.filter((s) => !text.includes(s))).toEqual([]);
    await page.waitForLoadState("networkidle");
    expect(elsewhere).toEqual([]);
    const script = served.find((r) =>
      /\/docs\/assets\/api-reference\.[0-9a-f]{16}\.js$/.test(r.url),
    );
    expect(script?.status).toBe(200);
    expect(script?.cache).toBe("public, max-age=31536000, immutable");
    expect(served.some((r) => r.url === `${origin}/openapi.json` && r.status === 200)).toBe(true);
    await context.close();
  }, 60_000);

  it("answers 404 for a script URL that is not the current build's", async () => {
    const res = await fetch(`${origin}/docs/assets/api-reference.0000000000000000.js`);
    expect(res.status).toBe(404);
  });
});
