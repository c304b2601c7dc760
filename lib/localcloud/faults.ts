import { randomUUID } from "node:crypto";
import { z } from "zod";

export const serviceNames = ["ec2", "ssm", "s3"] as const;
export type ServiceName = (typeof serviceNames)[number];

/**
 * What a fault can be armed on: a service's API calls, or `events` — the EC2 state-change events
 * the local cloud delivers to its event targets (events.ts), by the state they announce.
 */
export type FaultService = ServiceName | "events";

/** The body of `POST /_localcloud/faults`. */
export const faultSpec = z
  .object({
    service: z.enum([...serviceNames, "events"]),
    /**
     * An action name ("DescribeInstances", "SendCommand", "GetObject") or "*"; for `events`, the
     * state the event announces ("stopped", "running", …) or "*".
     */
    action: z.string().min(1),
    /** The error code to answer with; "" or absent means no error (latency only). */
    error: z.string().optional(),
    httpStatus: z.number().int().min(400).max(599).optional(),
    message: z.string().optional(),
    /** Fire this many times, then remove the fault. */
    times: z.number().int().positive().optional(),
    /** Chance in 0..1 that a matching call is faulted. */
    probability: z.number().min(0).max(1).optional(),
    latencyMs: z.number().int().min(0).max(600_000).optional(),
    /** Never answer: the client's own timeout is the only way out. */
    hang: z.boolean().optional(),
    /** Answer 200 with a body (or response) the SDK cannot parse. */
    malformed: z.boolean().optional(),
    /**
     * Perform the action, then lose its answer: "drop" destroys the socket without a response
     * (the SDK sees a connection reset), "hang" never answers (the client's own timeout fires).
     * A call can succeed while its caller sees a timeout or a network error; an SDK that retries
     * it repeats it (docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html,
     * docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html). RunInstances'
     * ClientToken makes the repeat harmless; SendCommand has no token, so its script runs again.
     */
    loseAnswer: z.enum(["drop", "hang"]).optional(),
    /**
     * Events only: deliver this many extra copies, each on its own delay. EventBridge delivers
     * at least once and Lambda's asynchronous queue can hand the same event over twice
     * (docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html). With
     * `latencyMs` (the event's delivery is held this much longer, so later events overtake it)
     * this is how duplicates and reordering are made.
     */
    duplicate: z.number().int().min(1).max(10).optional(),
    /**
     * Events only: never deliver it. Events from AWS services reach EventBridge "best effort"
     * unless listed as durable: "in some rare cases an event might not be delivered"
     * (docs.aws.amazon.com/eventbridge/latest/ref/event-delivery-level.html).
     */
    lose: z.boolean().optional(),
  })
  .strict()
  .refine((f) => !f.loseAnswer || (!f.error && !f.hang && !f.malformed), {
    message: "loseAnswer performs the call; it cannot be combined with error, hang or malformed",
  })
  .refine(
    (f) =>
      f.service === "events"
        ? !f.error && !f.httpStatus && !f.hang && !f.malformed && !f.loseAnswer
        : f.duplicate === undefined && f.lose === undefined,
    {
      message:
        "events faults take latencyMs, duplicate and lose; duplicate and lose are for events only",
    },
  );

export type FaultSpec = z.infer<typeof faultSpec>;

export interface Fault extends FaultSpec {
  id: string;
  /** How many times it fired. */
  fired: number;
}

/**
 * The status AWS uses for a code when the fault names none: throttling on EC2 is observed as
 * 503, SSM's ThrottlingException is a 400 (shared/notes/aws.md), server faults are 5xx and the
 * usual client errors 4xx.
 */
export function defaultStatus(service: ServiceName, code: string): number {
  switch (code) {
    case "RequestLimitExceeded":
    case "SlowDown":
    case "ServiceUnavailable":
    case "Unavailable":
      return 503;
    case "ThrottlingException":
    case "Throttling":
    case "TooManyUpdates":
      return 400;
    case "InternalError":
    case "InternalFailure":
    case "InternalServerError":
      return 500;
    case "UnauthorizedOperation":
    case "AccessDenied":
    case "AccessDeniedException":
      return 403;
    case "NoSuchKey":
    case "NoSuchBucket":
      return 404;
    default:
      if (/NotFound|Malformed|^Invalid|Mismatch|Validation|DoesNotExist|Exceeded$/.test(code)) {
        return service === "s3" && code.endsWith("NotFound") ? 404 : 400;
      }
      return 500;
  }
}

export function defaultMessage(code: string): string {
  switch (code) {
    case "RequestLimitExceeded":
      return "Request limit exceeded.";
    case "ThrottlingException":
      return "Rate exceeded";
    case "SlowDown":
      return "Please reduce your request rate.";
    case "InternalError":
    case "InternalServerError":
      return "An internal error has occurred";
    default:
      return `Injected fault: ${code}`;
  }
}

/** Faults armed through the control API, matched in the order they were added. */
export class FaultTable {
  #faults: Fault[] = [];

  add(spec: FaultSpec): Fault {
    const fault: Fault = { ...spec, id: randomUUID(), fired: 0 };
    this.#faults.push(fault);
    return fault;
  }

  list(): Fault[] {
    return [...this.#faults];
  }

  remove(id: string): boolean {
    const before = this.#faults.length;
    this.#faults = this.#faults.filter((f) => f.id !== id);
    return this.#faults.length < before;
  }

  clear(): number {
    const n = this.#faults.length;
    this.#faults = [];
    return n;
  }

  /** The fault that fires for this call, if any; a fault that has used up `times` is removed. */
  match(
    service: FaultService,
    action: string,
    random: () => number = Math.random,
  ): Fault | undefined {
    for (const fault of this.#faults) {
      if (fault.service !== service || (fault.action !== "*" && fault.action !== action)) continue;
      if (fault.probability !== undefined && random() >= fault.probability) continue;
      fault.fired++;
      if (fault.times !== undefined && fault.fired >= fault.times) this.remove(fault.id);
      return fault;
    }
    return undefined;
  }
}
