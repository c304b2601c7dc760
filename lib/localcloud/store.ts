import {
  chmodSync,
  closeSync,
  fchmodSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeFileSync,
  writeSync,
} from "node:fs";
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
  /**
   * Before this time DescribeInstances and the calls that name the instance do not see it yet
   * (eventual consistency); absent means visible.
   */
  visibleAt?: number;
  tags: Tag[];
  /** Decoded user data (UTF-8). */
  userData?: string;
  userDataStatus: "none" | "pending" | "running" | "done" | "interrupted";
  privateIp: string;
  launchTime: number;
  state: InstanceStateName;
  stateTransitionReason: string;
  stateReason?: { code: string; message: string };
  /**
   * When the current transitional state ends (pending → running, stopping → stopped,
   * shutting-down → terminated, terminated → gone).
   */
  dueAt?: number;
  /** When it last reached running: the latest boot, since a start boots again. */
  runningSince?: number;
  /** When it last stopped running: crashed (stopped), began stopping or began shutting down. */
  downAt?: number;
  /**
   * When its SSM agent stopped reaching SSM while the machine kept running (the control API's
   * agent loss: a dead agent, a removed instance profile, a blocked network); absent: it works.
   */
  agentLostAt?: number;
  terminatedAt?: number;
  console: string;
  /** `HibernationOptions.Configured` at launch; it cannot change afterwards. Absent: false. */
  hibernationConfigured?: boolean;
  /**
   * How the current stopping/stopped state came about through StopInstances: a plain stop or a
   * hibernation. Absent while running, after a crash and once terminating.
   */
  stopMode?: "stop" | "hibernate";
  /** What SSM remembers of the instance's agent once it registered and the machine went down. */
  agent?: AgentRecord;
}

/** SSM's memory of an agent that registered: kept across stops, crashes and starts. */
export interface AgentRecord {
  registeredAt: number;
  /** Its last ping: when the machine it ran on went down. */
  lastPingAt: number;
  /**
   * Whether DescribeInstanceInformation lists it (as ConnectionLost) while the machine is down:
   * yes after a crash or during termination, no once stopped through StopInstances.
   */
  listed: boolean;
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
  | "Delayed"
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
  /** Set while an invocation waits for an agent that is not there: when delivery times out. */
  deliveryTimesOutAt?: number;
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
  /** SendCommand's OutputS3BucketName / OutputS3KeyPrefix: where the agent uploads output. */
  output?: { bucket: string; keyPrefix: string };
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
 * Where the parts of the cloud say what they changed; the state file writes each record as it is
 * when it writes, so marking one twice costs nothing.
 */
export interface StateChanges {
  instance(inst: InstanceRecord): void;
  /** The instance left the state (its visibility window ended). */
  instanceRemoved(id: string): void;
  command(cmd: CommandRecord): void;
  clientToken(token: string): void;
}

/** One line of the journal: the records changed since the previous line, whole. */
interface JournalEntry {
  /** The snapshot this line follows; lines of an older snapshot are ignored. */
  epoch: number;
  nextSeq: number;
  instances: InstanceRecord[];
  removedInstances: string[];
  commands: CommandRecord[];
  clientTokens: Record<string, ClientTokenRecord>;
}

/** Below this the journal is never compacted: rewriting a small snapshot often buys nothing. */
const minCompactBytes = 1024 * 1024;

/**
 * The state on disk: a snapshot (`state.json`, written whole, atomically: temp file + rename) and
 * a journal (`state.journal`, one JSON line per write holding the records changed since).
 *
 * {@link flush} appends the pending changes with one synchronous `write`, and the server calls it
 * before every answer, so anything a client was told survives the process dying at once (`kill
 * -9`; the page cache outlives the process — a machine crash is out of scope, there is no fsync).
 * Rewriting the whole snapshot per call instead would cost O(fleet) per call: 10,000 instances
 * are ~19 MB of JSON. The journal is folded into a new snapshot once it outgrows it, so a write
 * costs O(changed records) amortised. A torn last line (never acknowledged) is ignored on load.
 */
export class StateFile implements StateChanges {
  readonly path: string;
  readonly journalPath: string;
  /** The live state object; every write serialises it as it is at that moment. */
  readonly state: CloudState;
  #epoch = 0;
  #journal: number;
  #journalBytes = 0;
  #snapshotBytes = 0;
  /** Marked records by id: the objects themselves, so a write looks nothing up in the fleet. */
  readonly #instances = new Map<string, InstanceRecord>();
  readonly #removed = new Set<string>();
  readonly #commands = new Map<string, CommandRecord>();
  readonly #tokens = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(
    dir: string,
    /** Changes no answer waits for (timers: boots, finished commands) are written this soon. */
    private readonly debounceMs = 100,
  ) {
    // The state holds user data (base64 env values) and instance tokens: its owner's only.
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    this.path = join(dir, "state.json");
    this.journalPath = join(dir, "state.journal");
    this.state = this.#load();
    this.#journal = openSync(this.journalPath, "a", 0o600);
    fchmodSync(this.#journal, 0o600);
  }

  instance(inst: InstanceRecord): void {
    this.#instances.set(inst.id, inst);
    this.#soon();
  }

  instanceRemoved(id: string): void {
    this.#instances.delete(id);
    this.#removed.add(id);
    this.#soon();
  }

  command(cmd: CommandRecord): void {
    this.#commands.set(cmd.commandId, cmd);
    this.#soon();
  }

  clientToken(token: string): void {
    this.#tokens.add(token);
    this.#soon();
  }

  /** Write every change noted so far, now; nothing to do when nothing changed. */
  flush(): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending() === 0) return;
    const line = `${JSON.stringify(this.#entry())}\n`;
    // Cleared only once the line is built: if serialising throws, the marks stay for a retry.
    this.#clearMarks();
    this.#journalBytes += writeAll(this.#journal, line);
    if (this.#journalBytes > Math.max(this.#snapshotBytes, minCompactBytes)) this.compact();
  }

  /** Write the whole state as a new snapshot and start an empty journal. */
  compact(): void {
    this.#clearMarks();
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const epoch = this.#epoch + 1;
    const text = JSON.stringify({ ...this.state, epoch });
    const tmp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(tmp, text, { mode: 0o600 });
    renameSync(tmp, this.path);
    // From here the old journal's lines carry an older epoch: a crash before the truncate below
    // leaves lines that loading skips.
    this.#epoch = epoch;
    this.#snapshotBytes = text.length;
    ftruncateSync(this.#journal, 0);
    this.#journalBytes = 0;
  }

  /** Write a final snapshot and stop accepting changes. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.compact();
    this.#closed = true;
    closeSync(this.#journal);
  }

  #soon(): void {
    if (this.#closed || this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      try {
        this.flush();
      } catch (err) {
        // A failed save must not take the server down; the changes stay marked for the next try.
        console.error("localcloud: saving state failed", err);
      }
    }, this.debounceMs);
    this.#timer.unref();
  }

  #pending(): number {
    return this.#instances.size + this.#removed.size + this.#commands.size + this.#tokens.size;
  }

  #clearMarks(): void {
    this.#instances.clear();
    this.#removed.clear();
    this.#commands.clear();
    this.#tokens.clear();
  }

  #entry(): JournalEntry {
    const { state } = this;
    const entry: JournalEntry = {
      epoch: this.#epoch,
      nextSeq: state.nextSeq,
      instances: [...this.#instances.values()],
      removedInstances: [...this.#removed],
      commands: [...this.#commands.values()],
      clientTokens: {},
    };
    for (const token of this.#tokens) {
      const rec = Object.hasOwn(state.clientTokens, token) ? state.clientTokens[token] : undefined;
      if (rec) entry.clientTokens[token] = rec;
    }
    return entry;
  }

  #load(): CloudState {
    let text: string;
    try {
      text = readFileSync(this.path, "utf8");
    } catch {
      text = "";
    }
    let state = emptyState();
    if (text !== "") {
      const parsed = JSON.parse(text) as CloudState & { epoch?: number };
      if (parsed.version !== 1) {
        throw new Error(`unsupported localcloud state version in ${this.path}`);
      }
      this.#epoch = parsed.epoch ?? 0;
      delete parsed.epoch;
      state = parsed;
      this.#snapshotBytes = text.length;
    }
    let journal = "";
    try {
      journal = readFileSync(this.journalPath, "utf8");
    } catch {
      // No journal yet.
    }
    for (const line of journal.split("\n")) {
      if (line === "") continue;
      let entry: JournalEntry;
      try {
        entry = JSON.parse(line) as JournalEntry;
      } catch {
        // Only the last line can be torn, and it was never acknowledged.
        break;
      }
      if (entry.epoch === this.#epoch) replay(state, entry);
    }
    state.instances.sort((a, b) => a.seq - b.seq);
    return state;
  }
}

function replay(state: CloudState, entry: JournalEntry): void {
  state.nextSeq = Math.max(state.nextSeq, entry.nextSeq);
  upsert(state.instances, entry.instances, (i) => i.id);
  const goneInstances = new Set(entry.removedInstances);
  if (goneInstances.size > 0) {
    state.instances = state.instances.filter((i) => !goneInstances.has(i.id));
  }
  upsert(state.commands, entry.commands, (c) => c.commandId);
  Object.assign(state.clientTokens, entry.clientTokens);
}

function upsert<T>(list: T[], records: T[], key: (r: T) => string): void {
  if (records.length === 0) return;
  const at = new Map(list.map((r, i) => [key(r), i]));
  for (const r of records) {
    const i = at.get(key(r));
    if (i === undefined) {
      at.set(key(r), list.length);
      list.push(r);
    } else {
      list[i] = r;
    }
  }
}

/** `writeSync` may write less than asked; a journal line must go out whole. */
function writeAll(fd: number, text: string): number {
  const buf = Buffer.from(text, "utf8");
  let off = 0;
  while (off < buf.byteLength) off += writeSync(fd, buf, off, buf.byteLength - off);
  return buf.byteLength;
}
