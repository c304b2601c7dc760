import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { deadlineIn } from "../../../lib/deadline.js";
import type { Deps } from "../../../lib/deps.js";
import { createApp } from "../../../lib/http/app.js";
import { deliverPending } from "../../../lib/webhooks/deliver.js";
import { ADMIN_TOKEN, createTestContext, dbKind, type TestContext } from "../../support/context.js";
import { type Receiver, startReceiver } from "../../support/webhook-receiver.js";

// The SSRF guard: where a webhook may be sent. With private targets refused (as in Lambda), a
// URL naming a private, loopback, link-local or metadata address is refused when subscribed, and
// a host name is judged by what it resolves to when each attempt is sent; with them allowed
// (development), the metadata service and link-local addresses stay refused. The connection goes
// to the address that was checked, never to a second lookup's answer.

let t: TestContext;
let strict: Deps;
let lax: Deps;
let rx: Receiver;

const withPrivate = (deps: Deps, allowPrivate: boolean): Deps => ({
  ...deps,
  config: { ...deps.config, webhooks: { ...deps.config.webhooks, allowPrivate, inlineMs: 0 } },
});

beforeAll(async () => {
  t = await createTestContext({ env: { WEBHOOK_TIMEOUT_SECONDS: "0.5" } });
  strict = withPrivate(t.deps, false);
  lax = withPrivate(t.deps, true);
  rx = await startReceiver();
});
afterAll(async () => {
  await rx?.close();
  await t?.close();
});
beforeEach(async () => {
  await t.reset();
  rx.received.length = 0;
  rx.answer = () => 200;
});

async function post(deps: Deps, path: string, body: unknown) {
  const res = await createApp(deps).request(path, {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  // biome-ignore lint/suspicious/noExplicitAny: the answers' shapes are asserted, not typed
  const answer = (await res.json()) as any;
  return { status: res.status, body: answer };
}

async function lastAttemptError(deps: Deps, webhookId: string): Promise<string | null> {
  const res = await createApp(deps).request(`/webhooks/${webhookId}/deliveries`, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  const body = (await res.json()) as { deliveries: { lastError: string | null }[] };
  return body.deliveries[0]?.lastError ?? null;
}

/** Subscribes `url`, logs one event, and makes one delivery pass with `resolve`. */
async function attemptTo(deps: Deps, url: string, resolve?: (h: string) => Promise<string[]>) {
  const sub = await post(deps, "/webhooks", { url, events: ["workspace.created"] });
  expect(sub.status).toBe(201);
  expect((await post(deps, "/workspaces", { name: "x", runtime: "external" })).status).toBe(201);
  const report = await deliverPending(deps, {
    deadline: deadlineIn(3_000),
    ...(resolve && { resolve }),
  });
  return { report, webhookId: String(sub.body.webhook.id) };
}

describe(`webhook SSRF guard over ${dbKind()}`, () => {
  it("refuses private, loopback, link-local, metadata and mapped addresses at subscription", async () => {
    for (const url of [
      `http://127.0.0.1:${rx.port}/`,
      "https://127.0.0.1/",
      "https://127.1.2.3/",
      "https://[::1]/",
      "https://[::ffff:127.0.0.1]/",
      "https://[::ffff:a9fe:a9fe]/",
      "https://10.0.0.5/",
      "https://172.16.0.1/",
      "https://192.168.1.1/",
      "https://100.64.0.1/",
      "https://169.254.169.254/latest/meta-data/",
      "https://[fd00:ec2::254]/",
      "https://[fe80::1]/",
      "https://0.0.0.0/",
      "https://user:pw@hooks.example.com/",
      "ftp://hooks.example.com/",
    ]) {
      const res = await post(strict, "/webhooks", { url, events: ["*"] });
      expect(res.status, url).toBe(400);
      expect(res.body.error.fields[0].path).toBe("url");
    }
    // Allowed in development: loopback and http://; never the metadata service.
    expect((await post(lax, "/webhooks", { url: rx.url, events: ["*"] })).status).toBe(201);
    for (const url of [
      "http://169.254.169.254/",
      "https://[fd00:ec2::254]/",
      "http://[::ffff:169.254.169.254]/",
    ]) {
      expect((await post(lax, "/webhooks", { url, events: ["*"] })).status, url).toBe(400);
    }
  });

  it("refuses at send time a host name that resolves to a private address", async () => {
    // `localhost` resolves (through the system resolver) to loopback.
    const { report, webhookId } = await attemptTo(strict, `https://localhost:${rx.port}/hooks`);
    expect(report).toMatchObject({ attempted: 1, delivered: 0 });
    expect(await lastAttemptError(strict, webhookId)).toMatch(
      /localhost resolves to a private address/,
    );
    expect(rx.received).toHaveLength(0);
  });

  it("refuses a name that resolves to the metadata service, even with private targets allowed", async () => {
    const { webhookId } = await attemptTo(lax, "http://hooks.example.test/", async () => [
      "169.254.169.254",
    ]);
    expect(await lastAttemptError(lax, webhookId)).toMatch(/metadata address/);
    // One bad answer among good ones is enough to refuse.
    const mixed = await attemptTo(strict, "https://mixed.example.test/", async () => [
      "93.184.215.14",
      "10.0.0.1",
    ]);
    expect(await lastAttemptError(strict, mixed.webhookId)).toMatch(/private address/);
  });

  it("connects to the checked address, naming the host, with no second lookup", async () => {
    // A name no real resolver knows: the send can only reach the receiver through the one
    // answer the guard checked.
    const looked: string[] = [];
    await attemptTo(lax, `http://rebind.example.test:${rx.port}/hooks`, async (h) => {
      looked.push(h);
      return ["127.0.0.1"];
    });
    expect(rx.received).toHaveLength(1);
    const headers: IncomingHttpHeaders = rx.received[0]?.headers ?? {};
    expect(headers.host).toBe(`rebind.example.test:${rx.port}`);
    expect(looked).toEqual(["rebind.example.test"]);
  });

  it("follows no redirect, and bounds a receiver that never answers", async () => {
    // A redirect answer is a failed attempt; its target is never asked.
    rx.answer = () => 307;
    const redirect = await attemptTo(lax, rx.url);
    expect(await lastAttemptError(lax, redirect.webhookId)).toMatch(/redirects are not followed/);
    expect(rx.received).toHaveLength(1);
    // A receiver that takes the request and never answers is given up on at the timeout.
    const silent = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const port = (silent.address() as AddressInfo).port;
    try {
      await t.reset();
      const hung = await attemptTo(lax, `http://127.0.0.1:${port}/`);
      expect(hung.report).toMatchObject({ attempted: 1, delivered: 0, retrying: 1 });
      expect(await lastAttemptError(lax, hung.webhookId)).toMatch(/no answer within 500 ms/);
    } finally {
      silent.closeAllConnections();
      await new Promise((r) => silent.close(r));
    }
  });
});
