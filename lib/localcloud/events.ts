import { randomUUID } from "node:crypto";
import { accountId } from "./catalogue.js";
import type { FaultTable } from "./faults.js";
import type { InstanceStateName } from "./store.js";

const region = "us-east-1";

/**
 * An `EC2 Instance State-change Notification` as EventBridge hands it to a target
 * (docs.aws.amazon.com/AWSEC2/latest/UserGuide/monitoring-instance-state-changes.html): the
 * envelope and a detail of only the instance id and the state it entered — no tags.
 */
export interface StateChangeEvent {
  version: "0";
  id: string;
  "detail-type": "EC2 Instance State-change Notification";
  source: "aws.ec2";
  account: string;
  time: string;
  region: string;
  resources: string[];
  detail: { "instance-id": string; state: InstanceStateName };
}

/** An in-process event target (`eventTargets` option): throwing or rejecting is a failed delivery. */
export type EventSink = (event: StateChangeEvent) => unknown;

/** Delivery settings, from the cloud's options. */
export interface EventDeliveryOptions {
  eventDelayMs: number;
  eventJitterMs: number;
  eventMaxAgeMs: number;
  eventRetryBaseMs: number;
}

/** A target registered through `POST /_localcloud/eventTargets`. */
export interface UrlTarget {
  id: string;
  url: string;
}

export interface DeliveryStats {
  /** Events the fleet announced. */
  emitted: number;
  /** Successful deliveries (a duplicate counts again). */
  delivered: number;
  /** Attempts that failed and were retried (or given up on). */
  failed: number;
  /** Deliveries given up on past `eventMaxAgeMs` or 185 attempts. */
  dropped: number;
  /** Events a `lose` fault swallowed. */
  lost: number;
  /** Deliveries waiting for their time. */
  pending: number;
}

// "By default, EventBridge retries sending the event for 24 hours and up to 185 times with an
// exponential back off and jitter" (docs.aws.amazon.com/eventbridge/latest/userguide/
// eb-rule-retry-policy.html). AWS does not publish the base or the cap of the backoff; the base is
// an option (`eventRetryBaseMs`), the cap the local cloud's own.
const MAX_ATTEMPTS = 185;
const MAX_RETRY_MS = 300_000;
// A target URL's answer is awaited this long before the attempt counts as failed.
const URL_TIMEOUT_MS = 10_000;

/**
 * Delivers the fleet's state changes to event targets as EventBridge would: asynchronously, after
 * a delay with jitter (so two changes close together can arrive in either order, as nothing in
 * EventBridge promises order), at least once (a failed delivery is retried with exponential
 * backoff), and with what the `events` faults ask for: extra copies, longer delays, losses.
 * Targets are in-process callbacks (`npm start` wires the product's handler this way) and
 * loopback URLs that get the event as a JSON POST (2xx is success). Nothing is persisted: a
 * restarted cloud does not deliver what the previous process had not.
 */
export class StateChangeEvents {
  #timers = new Set<NodeJS.Timeout>();
  #urls: UrlTarget[] = [];
  #closed = false;
  #stats: DeliveryStats = { emitted: 0, delivered: 0, failed: 0, dropped: 0, lost: 0, pending: 0 };

  constructor(
    private readonly opts: EventDeliveryOptions,
    private readonly faults: FaultTable,
    private readonly sinks: readonly EventSink[],
    private readonly random: () => number = Math.random,
  ) {}

  /** Registers a loopback URL target; refuses anything else (no requests leave the machine). */
  addUrl(url: string): UrlTarget | { error: string } {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return { error: "url must be an absolute http:// URL" };
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
      return { error: "url must be http:// or https://" };
    }
    if (!["127.0.0.1", "localhost", "[::1]"].includes(parsed.hostname)) {
      return { error: "event targets must be on loopback" };
    }
    const target = { id: randomUUID(), url: parsed.toString() };
    this.#urls.push(target);
    return target;
  }

  removeUrl(id: string): boolean {
    const before = this.#urls.length;
    this.#urls = this.#urls.filter((t) => t.id !== id);
    return this.#urls.length < before;
  }

  urls(): UrlTarget[] {
    return [...this.#urls];
  }

  stats(): DeliveryStats {
    return { ...this.#stats };
  }

  /** The fleet's hook: `instanceId` entered `state` at `at` (epoch ms). */
  emit(instanceId: string, state: InstanceStateName, at = Date.now()): void {
    if (this.#closed) return;
    this.#stats.emitted++;
    const event: StateChangeEvent = {
      version: "0",
      id: randomUUID(),
      "detail-type": "EC2 Instance State-change Notification",
      source: "aws.ec2",
      account: accountId,
      // EventBridge times are whole seconds, UTC (the page's example: "2021-11-11T21:29:54Z").
      time: new Date(at).toISOString().replace(/\.\d{3}Z$/, "Z"),
      region,
      resources: [`arn:aws:ec2:${region}:${accountId}:instance/${instanceId}`],
      detail: { "instance-id": instanceId, state },
    };
    const fault = this.faults.match("events", state, this.random);
    if (fault?.lose) {
      this.#stats.lost++;
      return;
    }
    const copies = 1 + (fault?.duplicate ?? 0);
    const extra = fault?.latencyMs ?? 0;
    const targets: ((e: StateChangeEvent) => Promise<void>)[] = [
      ...this.sinks.map((sink) => async (e: StateChangeEvent) => {
        await sink(e);
      }),
      ...this.#urls.map((t) => (e: StateChangeEvent) => postTo(t.url, e)),
    ];
    for (const deliver of targets) {
      for (let n = 0; n < copies; n++) {
        // Each copy travels on its own: the same event id, its own delay.
        const delay = this.opts.eventDelayMs + extra + this.random() * this.opts.eventJitterMs;
        this.#schedule(delay, () => this.#attempt(deliver, event, at, 1));
      }
    }
  }

  /** Stops every pending delivery. */
  close(): void {
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    this.#stats.pending = 0;
  }

  #schedule(delayMs: number, run: () => Promise<void>): void {
    if (this.#closed) return;
    this.#stats.pending++;
    const timer = setTimeout(
      () => {
        this.#timers.delete(timer);
        this.#stats.pending--;
        run().catch((err: unknown) => console.error("localcloud: event delivery failed", err));
      },
      Math.max(0, delayMs),
    );
    timer.unref();
    this.#timers.add(timer);
  }

  async #attempt(
    deliver: (e: StateChangeEvent) => Promise<void>,
    event: StateChangeEvent,
    emittedAt: number,
    attempt: number,
  ): Promise<void> {
    if (this.#closed) return;
    try {
      await deliver(event);
      this.#stats.delivered++;
      return;
    } catch {
      this.#stats.failed++;
    }
    const backoff = Math.min(MAX_RETRY_MS, this.opts.eventRetryBaseMs * 2 ** (attempt - 1));
    // Equal jitter: between half the backoff and all of it.
    const wait = backoff / 2 + (this.random() * backoff) / 2;
    if (attempt >= MAX_ATTEMPTS || Date.now() + wait - emittedAt > this.opts.eventMaxAgeMs) {
      this.#stats.dropped++;
      return;
    }
    this.#schedule(wait, () => this.#attempt(deliver, event, emittedAt, attempt + 1));
  }
}

async function postTo(url: string, event: StateChangeEvent): Promise<void> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(event),
    redirect: "manual",
    signal: AbortSignal.timeout(URL_TIMEOUT_MS),
  });
  // Read to the end so the connection is reused; the body says nothing.
  await res.arrayBuffer().catch(() => undefined);
  if (res.status < 200 || res.status > 299) throw new Error(`target answered ${res.status}`);
}
