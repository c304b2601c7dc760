import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { rename, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** Instance states and their codes (docs.aws.amazon.com/AWSEC2/latest/APIReference/API_InstanceState.html). */
export const stateCodes = {
  pending: 0,
  running: 16,
  "shutting-down": 32,
  terminated: 48,
  stopping: 64,
  stopped: 80,
} as const;

export type InstanceStateName = keyof typeof stateCodes;

export interface Tag {
  key: string;
  value: string;
}

export interface InstanceRecord {
  /** Creation order; the stable sort key behind DescribeInstances pagination. */
  seq: number;
  id: string;
  reservationId: string;
  imageId: string;
  instanceType: string;
  subnetId?: string;
  securityGroupIds: string[];
  iamInstanceProfile?: { arn?: string; name?: string };
  metadataOptions: {
    httpTokens: string;
    httpPutResponseHopLimit: number;
    httpEndpoint: string;
    instanceMetadataTags: string;
  };
  clientToken?: string;
  tags: Tag[];
  /** Decoded user data (UTF-8). */
  userData?: string;
  userDataStatus: "none" | "pending" | "running" | "done" | "interrupted";
  privateIp: string;
  launchTime: number;
  state: InstanceStateName;
  stateTransitionReason: string;
  stateReason?: { code: string; message: string };
  /** When the current transitional state ends (pending → running, shutting-down → terminated, terminated → gone). */
  dueAt?: number;
  runningSince?: number;
  /** When it stopped running: crashed (stopped) or began shutting down. */
  downAt?: number;
  terminatedAt?: number;
  console: string;
}

export interface ClientTokenRecord {
  reservationId: string;
  instanceIds: string[];
  /** The launch parameters, canonicalised, to detect `IdempotentParameterMismatch`. */
  fingerprint: string;
}

export type InvocationStatus =
  | "Pending"
  | "InProgress"
  | "Success"
  | "Failed"
  | "TimedOut"
  | "Cancelled"
  | "Cancelling";

export interface InvocationRecord {
  instanceId: string;
  status: InvocationStatus;
  statusDetails: string;
  responseCode: number;
  stdout: string;
  stderr: string;
  startedAt?: number;
  endedAt?: number;
}

export interface CommandRecord {
  commandId: string;
  documentName: string;
  comment: string;
  parameters: Record<string, string[]>;
  instanceIds: string[];
  requestedAt: number;
  timeoutSeconds: number;
  executionTimeoutSeconds: number;
  invocations: InvocationRecord[];
}

export interface CloudState {
  version: 1;
  nextSeq: number;
  instances: InstanceRecord[];
  clientTokens: Record<string, ClientTokenRecord>;
  commands: CommandRecord[];
}

export const emptyState = (): CloudState => ({
  version: 1,
  nextSeq: 1,
  instances: [],
  clientTokens: {},
  commands: [],
});

/**
 * The state file: one JSON document under the cloud's dir. Writes are debounced and atomic
 * (temp file + rename) so a crash mid-write leaves the previous state, never half a file.
 */
export class StateFile {
  readonly path: string;
  #timer: NodeJS.Timeout | undefined;
  #writing: Promise<void> = Promise.resolve();
  #closed = false;
  /** The live state object; every write serialises it as it is at that moment. */
  readonly state: CloudState;

  constructor(
    dir: string,
    private readonly debounceMs = 25,
  ) {
    mkdirSync(dir, { recursive: true });
    this.path = join(dir, "state.json");
    this.state = this.#load();
  }

  #load(): CloudState {
    let text: string;
    try {
      text = readFileSync(this.path, "utf8");
    } catch {
      return emptyState();
    }
    const parsed = JSON.parse(text) as CloudState;
    if (parsed.version !== 1) {
      throw new Error(`unsupported localcloud state version in ${this.path}`);
    }
    return parsed;
  }

  /** Note that state changed; it is written shortly after. */
  changed(): void {
    if (this.#closed || this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#writing = this.#writing.then(() => this.#write()).catch(logWriteError);
    }, this.debounceMs);
    this.#timer.unref();
  }

  async #write(): Promise<void> {
    const tmp = `${this.path}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(this.state));
    await rename(tmp, this.path);
  }

  /** Write now, synchronously, and stop accepting changes. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#writing;
    const tmp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.state));
    renameSync(tmp, this.path);
  }
}

function logWriteError(err: unknown): void {
  // A failed save must not take the server down; the next change retries the write.
  console.error("localcloud: saving state failed", err);
}
