import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  StartInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { StateChangeEvent } from "../../../lib/localcloud/events.js";
import { launch, startTestCloud, type TestCloud, waitFor } from "./harness.js";

// The local cloud announces every state an instance enters as EventBridge's
// `EC2 Instance State-change Notification`, asynchronously and at least once, and faults make the
// deliveries as unruly as EventBridge may be: duplicated, reordered, lost.

let t: TestCloud;
const received: StateChangeEvent[] = [];
let failNext = 0;

const statesOf = (id: string) =>
  received.filter((e) => e.detail["instance-id"] === id).map((e) => e.detail.state);
const waitForStates = (id: string, n: number) =>
  waitFor(() => (statesOf(id).length >= n ? statesOf(id) : undefined), 5_000);

beforeAll(async () => {
  t = await startTestCloud({
    eventDelayMs: 5,
    eventJitterMs: 0,
    eventRetryBaseMs: 20,
    eventTargets: [
      (event) => {
        if (failNext > 0) {
          failNext--;
          throw new Error("target unavailable");
        }
        received.push(event);
      },
    ],
  });
});
afterAll(() => t.close());
beforeEach(async () => {
  received.length = 0;
  failNext = 0;
  await t.control("DELETE", "/faults");
});

describe("EC2 state-change events", () => {
  it("announces launch to running in EventBridge's shape", async () => {
    // Act
    const id = await launch(t);

    // Assess
    expect(await waitForStates(id, 2)).toEqual(["pending", "running"]);
    const [event] = received;
    expect(event).toMatchObject({
      version: "0",
      "detail-type": "EC2 Instance State-change Notification",
      source: "aws.ec2",
      account: "123456789012",
      region: "us-east-1",
      resources: [`arn:aws:ec2:us-east-1:123456789012:instance/${id}`],
      detail: { "instance-id": id, state: "pending" },
    });
    expect(event?.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(new Set(received.map((e) => e.id)).size).toBe(2);
  });

  it("announces a crash, a stop, a start and a termination", async () => {
    // Prepare
    const id = await launch(t);
    await waitForStates(id, 2);

    // Act / Assess
    await t.control("POST", `/instances/${id}/crash`);
    expect((await waitForStates(id, 3)).at(-1)).toBe("stopped");
    await t.ec2.send(new StartInstancesCommand({ InstanceIds: [id] }));
    expect((await waitForStates(id, 5)).slice(3)).toEqual(["pending", "running"]);
    await t.ec2.send(new StopInstancesCommand({ InstanceIds: [id] }));
    expect((await waitForStates(id, 7)).slice(5)).toEqual(["stopping", "stopped"]);
    await t.ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    expect((await waitForStates(id, 9)).slice(7)).toEqual(["shutting-down", "terminated"]);
  });

  it("retries a failed delivery until the target takes it", async () => {
    // Prepare
    const id = await launch(t);
    await waitForStates(id, 2);
    failNext = 2;

    // Act
    await t.control("POST", `/instances/${id}/crash`);

    // Assess
    await waitForStates(id, 3);
    expect(failNext).toBe(0);
    expect(statesOf(id)).toEqual(["pending", "running", "stopped"]);
    const stats = await t.control<{ failed: number; delivered: number }>("GET", "/events/stats");
    expect(stats.json.failed).toBeGreaterThanOrEqual(2);
  });

  it("duplicates, delays past later events, and loses, as told", async () => {
    // Prepare
    const id = await launch(t);
    await waitForStates(id, 2);
    await t.control("POST", "/faults", {
      service: "events",
      action: "stopped",
      duplicate: 1,
      latencyMs: 400,
      times: 1,
    });
    await t.control("POST", "/faults", { service: "events", action: "pending", lose: true });

    // Act: crash, then start at once — the stopped event is held past the running one.
    await t.control("POST", `/instances/${id}/crash`);
    await t.ec2.send(new StartInstancesCommand({ InstanceIds: [id] }));

    // Assess
    const states = await waitForStates(id, 5);
    expect(states).toEqual(["pending", "running", "running", "stopped", "stopped"]);
    const stopped = received.filter(
      (e) => e.detail["instance-id"] === id && e.detail.state === "stopped",
    );
    expect(stopped[0]?.id).toBe(stopped[1]?.id);
  });

  it("refuses faults that make no sense for events", async () => {
    const res = await t.control("POST", "/faults", {
      service: "events",
      action: "*",
      error: "InternalError",
    });
    expect(res.status).toBe(400);
    const dup = await t.control("POST", "/faults", {
      service: "ec2",
      action: "*",
      duplicate: 1,
    });
    expect(dup.status).toBe(400);
  });
});

describe("URL event targets", () => {
  let server: Server;
  let url = "";
  const posted: { body: StateChangeEvent; type: string | undefined }[] = [];
  let answer500 = 0;

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => {
        body += c;
      });
      req.on("end", () => {
        if (answer500 > 0) {
          answer500--;
          res.writeHead(500).end();
          return;
        }
        posted.push({
          body: JSON.parse(body) as StateChangeEvent,
          type: req.headers["content-type"],
        });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it("POSTs every event as JSON to a registered loopback URL, retrying a 500", async () => {
    // Prepare
    const added = await t.control<{ id: string }>("POST", "/eventTargets", { url });
    expect(added.status).toBe(201);
    answer500 = 2;

    // Act
    const id = await launch(t);

    // Assess
    await waitFor(() =>
      posted.filter((p) => p.body.detail["instance-id"] === id).length >= 2 ? true : undefined,
    );
    const mine = posted.filter((p) => p.body.detail["instance-id"] === id);
    expect(new Set(mine.map((p) => p.body.detail.state))).toEqual(new Set(["pending", "running"]));
    expect(mine[0]?.type).toBe("application/json");
    expect(answer500).toBe(0);
    const list = await t.control<{ targets: { id: string; url: string }[] }>(
      "GET",
      "/eventTargets",
    );
    expect(list.json.targets).toEqual([{ id: added.json.id, url }]);
    expect((await t.control("DELETE", `/eventTargets/${added.json.id}`)).status).toBe(200);
  });

  it("refuses targets off loopback", async () => {
    for (const bad of ["http://169.254.169.254/latest", "http://example.com/", "file:///etc/x"]) {
      expect((await t.control("POST", "/eventTargets", { url: bad })).status, bad).toBe(400);
    }
  });
});
