import { mkdirSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { bootLines, capConsole, noUserData, userDataFinished } from "./bootlog.js";
import { newInstanceId, newReservationId } from "./ids.js";
import type { ResolvedOptions } from "./options.js";
import { type ProcessGroups, readHead } from "./processes.js";
import type { CloudState, InstanceRecord, InstanceStateName, StateChanges, Tag } from "./store.js";

/** What RunInstances asked for, already validated. */
export interface LaunchSpec {
  count: number;
  imageId: string;
  instanceType: string;
  subnetId?: string;
  securityGroupIds: string[];
  iamInstanceProfile?: { arn?: string; name?: string };
  metadataOptions: InstanceRecord["metadataOptions"];
  clientToken?: string;
  tags: Tag[];
  userData?: string;
}

export type PingStatus = "Online" | "ConnectionLost";

export interface Registration {
  pingStatus: PingStatus;
  lastPingAt: number;
  registeredAt: number;
}

/** Called when an instance stops running (crash, terminate) so its commands end. */
export type InstanceDownListener = (instanceId: string) => void;

/**
 * The simulated instances and their state machine: pending → running after the boot delay,
 * shutting-down → terminated after the terminate delay, terminated → gone after the visibility
 * window. Transitions carry absolute due times, so a restarted cloud picks up where it was.
 * One timer fires at the next due time; every API call also ticks first, so states never lag
 * (what lags is EC2's view of a new instance: `describeLagMs`, applied by the EC2 API).
 */
export class Fleet {
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #downListeners: InstanceDownListener[] = [];

  constructor(
    private readonly state: CloudState,
    private readonly opts: ResolvedOptions,
    private readonly groups: ProcessGroups,
    private readonly changes: StateChanges,
  ) {
    // A user-data script cut off by the previous process's shutdown does not run again, as
    // cloud-init runs user data once per instance.
    for (const inst of state.instances) {
      if (inst.userDataStatus === "running") {
        inst.userDataStatus = "interrupted";
        inst.console = capConsole(`${inst.console}cloud-init[2101]: user data interrupted\n`);
        changes.instance(inst);
      }
    }
    this.tick();
  }

  onInstanceDown(listener: InstanceDownListener): void {
    this.#downListeners.push(listener);
  }

  instanceDir(id: string): string {
    return join(this.opts.dir, "instances", id);
  }

  /** Every instance still visible, in launch order. */
  all(): InstanceRecord[] {
    this.tick();
    return [...this.state.instances].sort((a, b) => a.seq - b.seq);
  }

  get(id: string): InstanceRecord | undefined {
    this.tick();
    return this.state.instances.find((i) => i.id === id);
  }

  launch(spec: LaunchSpec): InstanceRecord[] {
    const now = Date.now();
    const reservationId = newReservationId();
    const launched: InstanceRecord[] = [];
    for (let n = 0; n < spec.count; n++) {
      const seq = this.state.nextSeq++;
      const id = newInstanceId();
      mkdirSync(this.instanceDir(id), { recursive: true });
      const inst: InstanceRecord = {
        seq,
        id,
        reservationId,
        imageId: spec.imageId,
        instanceType: spec.instanceType,
        securityGroupIds: spec.securityGroupIds,
        metadataOptions: spec.metadataOptions,
        tags: spec.tags.map((t) => ({ ...t })),
        userDataStatus: spec.userData ? "pending" : "none",
        // AWS reserves the first four addresses of a subnet.
        privateIp: `10.0.${Math.floor((seq + 4) / 256) % 256}.${(seq + 4) % 256}`,
        launchTime: now,
        state: "pending",
        stateTransitionReason: "",
        dueAt: now + this.opts.bootDelayMs,
        console: "",
      };
      if (spec.subnetId !== undefined) inst.subnetId = spec.subnetId;
      if (spec.iamInstanceProfile !== undefined) inst.iamInstanceProfile = spec.iamInstanceProfile;
      if (spec.clientToken !== undefined) inst.clientToken = spec.clientToken;
      if (spec.userData !== undefined) inst.userData = spec.userData;
      // Read at each launch, so a lag set at run time applies to the next launch only.
      if (this.opts.describeLagMs > 0) inst.visibleAt = now + this.opts.describeLagMs;
      this.state.instances.push(inst);
      launched.push(inst);
    }
    this.#afterChange(launched);
    return launched;
  }

  /** Begin terminating; returns the state each instance was in before. Idempotent. */
  terminate(ids: string[]): { inst: InstanceRecord; previous: InstanceStateName }[] {
    this.tick();
    const now = Date.now();
    const out: { inst: InstanceRecord; previous: InstanceStateName }[] = [];
    for (const id of ids) {
      const inst = this.state.instances.find((i) => i.id === id);
      if (!inst) continue;
      const previous = inst.state;
      if (previous !== "shutting-down" && previous !== "terminated") {
        if (previous === "running" || previous === "pending") inst.downAt = now;
        inst.state = "shutting-down";
        inst.dueAt = now + this.opts.terminateDelayMs;
        inst.stateTransitionReason = `User initiated (${new Date(now)
          .toISOString()
          .replace(/\.\d+Z$/, " GMT")
          .replace("T", " ")})`;
        inst.stateReason = {
          code: "Client.UserInitiatedShutdown",
          message: "Client.UserInitiatedShutdown: User initiated shutdown",
        };
        this.#down(inst);
      }
      out.push({ inst, previous });
    }
    this.#afterChange(out.map((o) => o.inst));
    return out;
  }

  /** The control API's crash: the machine stops (code 80), every process on it dies. */
  crash(id: string): InstanceRecord | undefined {
    const inst = this.get(id);
    if (!inst || inst.state === "terminated" || inst.state === "shutting-down") return inst;
    if (inst.state !== "stopped") {
      if (inst.state === "running") inst.downAt = Date.now();
      inst.state = "stopped";
      delete inst.dueAt;
      inst.stateTransitionReason = "Server.InternalError";
      inst.stateReason = {
        code: "Server.InternalError",
        message: "Server.InternalError: Internal error on launch",
      };
      inst.console = capConsole(
        `${inst.console}[ 9999.000000] Kernel panic - not syncing: localcloud crash\n`,
      );
      this.#down(inst);
      this.#afterChange([inst]);
    }
    return inst;
  }

  createTags(ids: string[], tags: Tag[]): void {
    const tagged: InstanceRecord[] = [];
    for (const id of ids) {
      const inst = this.state.instances.find((i) => i.id === id);
      if (!inst) continue;
      for (const tag of tags) {
        const existing = inst.tags.find((t) => t.key === tag.key);
        if (existing) existing.value = tag.value;
        else inst.tags.push({ ...tag });
      }
      tagged.push(inst);
    }
    this.#afterChange(tagged);
  }

  /**
   * SSM's view of the instance's agent: registered (Online) `ssmOnlineDelayMs` after running,
   * ConnectionLost once the machine went down — or its agent was lost — after registering (its
   * LastPingDateTime is then when that happened), absent otherwise.
   */
  registration(inst: InstanceRecord, now = Date.now()): Registration | undefined {
    if (inst.runningSince === undefined || inst.state === "terminated") return undefined;
    const registeredAt = inst.runningSince + this.opts.ssmOnlineDelayMs;
    const lost = [inst.agentLostAt, inst.state === "running" ? undefined : inst.downAt].filter(
      (t): t is number => t !== undefined,
    );
    if (lost.length === 0) {
      if (inst.state !== "running") return undefined;
      return now >= registeredAt
        ? { pingStatus: "Online", lastPingAt: now, registeredAt }
        : undefined;
    }
    const lastPingAt = Math.min(...lost);
    return lastPingAt >= registeredAt
      ? { pingStatus: "ConnectionLost", lastPingAt, registeredAt }
      : undefined;
  }

  /**
   * The control API's agent loss: the machine keeps running (EC2 says `running`) while its SSM
   * agent no longer reaches SSM — PingStatus `ConnectionLost` with the last ping at this moment,
   * and SendCommand refused with InvalidInstanceId, which SSM answers for an agent that is not
   * running (docs.aws.amazon.com/systems-manager/latest/APIReference/API_SendCommand.html).
   * How long real SSM keeps saying `Online` after the last ping is not published; here the change
   * is at once. Commands already running are not interrupted. `lost: false` brings it back.
   */
  setAgentLost(id: string, lost: boolean): InstanceRecord | undefined {
    const inst = this.get(id);
    if (!inst) return undefined;
    if (lost && inst.agentLostAt === undefined) inst.agentLostAt = Date.now();
    if (!lost) delete inst.agentLostAt;
    this.#afterChange([inst]);
    return inst;
  }

  /** Current console text, including what a still-running user-data script printed so far. */
  consoleOutput(inst: InstanceRecord): string {
    if (inst.userDataStatus !== "running") return inst.console;
    const live = readHead(join(this.#userDataDir(inst.id), "output"), 64 * 1024).text;
    return capConsole(inst.console + live);
  }

  /** Apply every transition that is due, then arm the timer for the next one. */
  tick(now = Date.now()): void {
    if (this.#closed) return;
    for (;;) {
      const due = this.state.instances
        .filter((i) => i.dueAt !== undefined && i.dueAt <= now)
        .sort((a, b) => (a.dueAt ?? 0) - (b.dueAt ?? 0))[0];
      if (!due || due.dueAt === undefined) break;
      const at = due.dueAt;
      switch (due.state) {
        case "pending":
          due.state = "running";
          due.runningSince = at;
          delete due.dueAt;
          due.console = capConsole(
            due.console + bootLines(due.id, due.instanceType, due.privateIp, at),
          );
          this.#runUserData(due, at);
          this.changes.instance(due);
          break;
        case "shutting-down":
          due.state = "terminated";
          due.terminatedAt = at;
          due.dueAt = at + this.opts.terminatedVisibleMs;
          this.changes.instance(due);
          break;
        case "terminated":
          this.state.instances = this.state.instances.filter((i) => i !== due);
          this.#removeDisk(due.id);
          this.changes.instanceRemoved(due.id);
          break;
        default:
          delete due.dueAt;
          this.changes.instance(due);
      }
    }
    this.#arm();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }

  #afterChange(changed: InstanceRecord[]): void {
    for (const inst of changed) this.changes.instance(inst);
    this.#arm();
  }

  #arm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#closed) return;
    let next = Number.POSITIVE_INFINITY;
    for (const i of this.state.instances) if (i.dueAt !== undefined) next = Math.min(next, i.dueAt);
    if (next === Number.POSITIVE_INFINITY) return;
    // setTimeout overflows past 2^31-1 ms; a shorter wake-up that finds nothing due is harmless.
    const delay = Math.min(Math.max(0, next - Date.now()), 2 ** 31 - 1);
    this.#timer = setTimeout(() => {
      try {
        this.tick();
      } catch (err) {
        // A timer callback that throws would take the whole process down; the next call retries.
        console.error("localcloud: instance state transition failed", err);
      }
    }, delay);
    this.#timer.unref();
  }

  #down(inst: InstanceRecord): void {
    this.groups.killOwner(inst.id);
    if (inst.userDataStatus === "running") inst.userDataStatus = "interrupted";
    for (const listener of this.#downListeners) listener(inst.id);
  }

  #userDataDir(id: string): string {
    return join(this.opts.dir, "runtime", id, "user-data");
  }

  #runUserData(inst: InstanceRecord, at: number): void {
    const userData = inst.userData;
    if (inst.userDataStatus !== "pending" || !userData) {
      inst.console = capConsole(inst.console + noUserData(at));
      return;
    }
    if (userData.startsWith("#cloud-config")) {
      inst.userDataStatus = "done";
      inst.console = capConsole(
        `${inst.console}cloud-init[2101]: cloud-config user data is not applied by localcloud\n${noUserData(at)}`,
      );
      return;
    }
    const dir = this.#userDataDir(inst.id);
    mkdirSync(dir, { recursive: true });
    const output = join(dir, "output");
    const home = this.instanceDir(inst.id);
    inst.userDataStatus = "running";
    const run = this.groups.start(inst.id, {
      script: userData,
      scriptPath: join(dir, "part-001"),
      cwd: home,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, WORKSPACE_ROOT: home },
      // cloud-init sends both streams to the console.
      stdoutPath: output,
      stderrPath: output,
    });
    run.done
      .then((exit) => {
        if (this.#closed || inst.userDataStatus !== "running") return;
        inst.userDataStatus = "done";
        const text = readHead(output, 64 * 1024).text;
        const code = exit.spawnError ? 127 : exit.code;
        const spawnNote = exit.spawnError ? `${exit.spawnError}\n` : "";
        inst.console = capConsole(
          inst.console + userDataFinished(spawnNote + text, code, Date.now()),
        );
        this.changes.instance(inst);
      })
      .catch((err: unknown) => console.error("localcloud: user data bookkeeping failed", err));
  }

  #removeDisk(id: string): void {
    // The root volume goes with the instance (DeleteOnTermination defaults to true).
    for (const path of [this.instanceDir(id), join(this.opts.dir, "runtime", id)]) {
      rm(path, { recursive: true, force: true }).catch((err: unknown) =>
        console.error("localcloud: removing instance disk failed", err),
      );
    }
  }
}
