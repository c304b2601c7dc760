import { mkdirSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { bootLines, capConsole, noUserData, userDataFinished } from "./bootlog.js";
import { newInstanceId, newReservationId } from "./ids.js";
import type { ResolvedOptions } from "./options.js";
import { type ProcessGroups, readHead } from "./processes.js";
import type {
  AgentRecord,
  CloudState,
  InstanceRecord,
  InstanceStateName,
  StateChanges,
  Tag,
} from "./store.js";

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
  /** `HibernationOptions.Configured`, its prerequisites already checked. */
  hibernationConfigured: boolean;
}

export type PingStatus = "Online" | "ConnectionLost";

export interface Registration {
  pingStatus: PingStatus;
  lastPingAt: number;
  registeredAt: number;
}

/** Called when an instance stops running (crash, stop, terminate) so its commands end. */
export type InstanceDownListener = (instanceId: string) => void;
/**
 * Called when an instance reaches running (a launch or a start), so waiting commands can go.
 * It runs inside a state transition: it must not call back into the fleet.
 */
export type InstanceUpListener = (inst: InstanceRecord) => void;

/**
 * Called whenever an instance enters a state, with when (epoch ms): the source of the EC2
 * state-change events (events.ts). It must not call back into the fleet.
 */
export type StateListener = (inst: InstanceRecord, at: number) => void;

/** One instance's state change, as StopInstances, StartInstances and TerminateInstances answer. */
export interface StateChange {
  inst: InstanceRecord;
  previous: InstanceStateName;
}

/**
 * The simulated instances and their state machine: pending → running after the boot delay,
 * running → stopping → stopped after the stop delay, stopped → pending → running again,
 * shutting-down → terminated after the terminate delay, terminated → gone after the visibility
 * window (ec2-instance-lifecycle.html). Transitions carry absolute due times, so a restarted
 * cloud picks up where it was. One timer fires at the next due time; every API call also ticks
 * first, so states never lag (what lags is EC2's view of a new instance: `describeLagMs`,
 * applied by the EC2 API).
 */
export class Fleet {
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #downListeners: InstanceDownListener[] = [];
  #upListeners: InstanceUpListener[] = [];
  #stateListeners: StateListener[] = [];

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

  onInstanceUp(listener: InstanceUpListener): void {
    this.#upListeners.push(listener);
  }

  onStateChange(listener: StateListener): void {
    this.#stateListeners.push(listener);
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
      if (spec.hibernationConfigured) inst.hibernationConfigured = true;
      // Read at each launch, so a lag set at run time applies to the next launch only.
      if (this.opts.describeLagMs > 0) inst.visibleAt = now + this.opts.describeLagMs;
      this.state.instances.push(inst);
      launched.push(inst);
    }
    this.#afterChange(launched);
    for (const inst of launched) this.#entered(inst, now);
    return launched;
  }

  /** Begin terminating; returns the state each instance was in before. Idempotent. */
  terminate(ids: string[]): StateChange[] {
    this.tick();
    const now = Date.now();
    const out: StateChange[] = [];
    for (const id of ids) {
      const inst = this.state.instances.find((i) => i.id === id);
      if (!inst) continue;
      const previous = inst.state;
      if (previous !== "shutting-down" && previous !== "terminated") {
        this.#down(inst, now, { listed: true });
        inst.state = "shutting-down";
        inst.dueAt = now + this.opts.terminateDelayMs;
        inst.stateTransitionReason = userInitiated(now);
        inst.stateReason = {
          code: "Client.UserInitiatedShutdown",
          message: "Client.UserInitiatedShutdown: User initiated shutdown",
        };
        delete inst.stopMode;
        this.#entered(inst, now);
      }
      out.push({ inst, previous });
    }
    this.#afterChange(out.map((o) => o.inst));
    return out;
  }

  /**
   * Begin stopping running instances (the caller has refused every other state but stopping and
   * stopped, which stay as they are): running → stopping, stopped after `stopDelayMs`. Every
   * process dies, as with a crash, but the disk stays. A hibernation is recorded as such
   * (stateReason `Client.UserInitiatedHibernate`, "Hibernation was initiated on the instance",
   * API_StateReason.html) unless `hibernationFallback` makes it the "normal shutdown" EC2 falls
   * back to (API_StopInstances.html). The local cloud does not keep a hibernated instance's
   * processes for its start: RAM is not simulated, so a start always boots afresh.
   */
  stop(ids: string[], hibernate: boolean): StateChange[] {
    this.tick();
    const now = Date.now();
    const out: StateChange[] = [];
    for (const id of ids) {
      const inst = this.state.instances.find((i) => i.id === id);
      if (!inst) continue;
      const previous = inst.state;
      if (previous === "running") {
        const hibernates = hibernate && !this.opts.hibernationFallback;
        // SSM no longer lists a stopped instance: "A stopped instance means its lifecycle has
        // ended in the point of view of InstanceInformation" (AWS, aws/amazon-ssm-agent#407).
        this.#down(inst, now, { listed: false });
        inst.state = "stopping";
        inst.dueAt = now + this.opts.stopDelayMs;
        inst.stopMode = hibernates ? "hibernate" : "stop";
        inst.stateTransitionReason = userInitiated(now);
        // Codes and meanings of API_StateReason.html; the message repeats the code, as EC2 does.
        inst.stateReason = hibernates
          ? {
              code: "Client.UserInitiatedHibernate",
              message: "Client.UserInitiatedHibernate: User initiated hibernate",
            }
          : {
              code: "Client.UserInitiatedShutdown",
              message: "Client.UserInitiatedShutdown: User initiated shutdown",
            };
        inst.console = capConsole(
          `${inst.console}${hibernates ? "[  OK  ] Reached target hibernate.target - System Hibernation.\n" : "[  OK  ] Reached target poweroff.target - System Power Off.\n"}`,
        );
        this.#entered(inst, now);
      }
      out.push({ inst, previous });
    }
    this.#afterChange(out.map((o) => o.inst));
    return out;
  }

  /**
   * Start stopped instances (the caller has refused every other state but pending and running,
   * which stay as they are): stopped → pending, running after `bootDelayMs`, with a new boot on
   * the console and the same disk, private address and user data, which does not run again:
   * cloud-init runs user-data scripts once per instance, on its first boot ("If you stop an
   * instance, modify its user data, and start the instance, the updated user data is not run
   * automatically", docs.aws.amazon.com/AWSEC2/latest/UserGuide/user-data.html; the
   * scripts-user module's frequency is once-per-instance, cloudinit.readthedocs.io). EC2's
   * LaunchTime is "the time that the instance was last launched" (API_Instance.html), so a start
   * sets it.
   */
  start(ids: string[]): StateChange[] {
    this.tick();
    const now = Date.now();
    const out: StateChange[] = [];
    for (const id of ids) {
      const inst = this.state.instances.find((i) => i.id === id);
      if (!inst) continue;
      const previous = inst.state;
      if (previous === "stopped") {
        inst.state = "pending";
        inst.dueAt = now + this.opts.bootDelayMs;
        inst.launchTime = now;
        inst.stateTransitionReason = "";
        delete inst.stateReason;
        delete inst.stopMode;
        this.#entered(inst, now);
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
      this.#down(inst, Date.now(), { listed: true });
      inst.state = "stopped";
      delete inst.dueAt;
      delete inst.stopMode;
      inst.stateTransitionReason = "Server.InternalError";
      inst.stateReason = {
        code: "Server.InternalError",
        message: "Server.InternalError: Internal error on launch",
      };
      inst.console = capConsole(
        `${inst.console}[ 9999.000000] Kernel panic - not syncing: localcloud crash\n`,
      );
      this.#afterChange([inst]);
      this.#entered(inst, Date.now());
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
   * SSM's listing of the instance's agent (DescribeInstanceInformation): Online
   * `ssmOnlineDelayMs` after each boot reaches running; ConnectionLost once the machine crashed
   * or began terminating after its agent registered; absent before the agent registers, while
   * stopped through StopInstances and after a start until the agent registers again ("If you
   * start the stopped instance again and the health check succeeds, it would show up", AWS in
   * aws/amazon-ssm-agent#407). An agent lost through the control API while the machine runs is
   * ConnectionLost with its last ping when it was lost.
   */
  registration(inst: InstanceRecord, now = Date.now()): Registration | undefined {
    if (inst.state === "terminated") return undefined;
    const onlineAt = this.agentOnlineAt(inst);
    const agent = this.#agent(inst);
    if (onlineAt !== undefined) {
      if (now < onlineAt) return undefined;
      // The machine runs, but its agent stopped reaching SSM (the control API's agent loss).
      if (inst.agentLostAt !== undefined) {
        return {
          pingStatus: "ConnectionLost",
          lastPingAt: Math.max(inst.agentLostAt, onlineAt),
          registeredAt: agent?.registeredAt ?? onlineAt,
        };
      }
      return {
        pingStatus: "Online",
        lastPingAt: now,
        registeredAt: agent?.registeredAt ?? onlineAt,
      };
    }
    if (inst.state === "pending" || !agent?.listed) return undefined;
    return {
      pingStatus: "ConnectionLost",
      lastPingAt: agent.lastPingAt,
      registeredAt: agent.registeredAt,
    };
  }

  /** When the agent of a running instance registers (or registered) in this boot. */
  agentOnlineAt(inst: InstanceRecord): number | undefined {
    return inst.state === "running" && inst.runningSince !== undefined
      ? inst.runningSince + this.opts.ssmOnlineDelayMs
      : undefined;
  }

  /**
   * Whether SSM knows the instance as a managed node: its agent registered at some boot. SSM
   * takes commands for such an instance while it is "Running, Pending, Stopped, Stopping"
   * (API_SendCommand.html), listed or not, and delivers them once the agent is back.
   */
  agentKnown(inst: InstanceRecord, now = Date.now()): boolean {
    const onlineAt = this.agentOnlineAt(inst);
    return this.#agent(inst) !== undefined || (onlineAt !== undefined && now >= onlineAt);
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
          for (const listener of this.#upListeners) listener(due);
          this.#entered(due, at);
          break;
        case "stopping":
          due.state = "stopped";
          delete due.dueAt;
          this.changes.instance(due);
          this.#entered(due, at);
          break;
        case "shutting-down":
          due.state = "terminated";
          due.terminatedAt = at;
          due.dueAt = at + this.opts.terminatedVisibleMs;
          this.changes.instance(due);
          this.#entered(due, at);
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

  #entered(inst: InstanceRecord, at: number): void {
    for (const listener of this.#stateListeners) listener(inst, at);
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

  /**
   * The machine goes down: its processes die and SSM keeps what it knew of the agent. `listed`
   * says whether SSM goes on listing the agent (ConnectionLost) while the machine is down; a
   * machine already down (stopping, stopped) keeps what its first going down decided.
   */
  #down(inst: InstanceRecord, now: number, { listed }: { listed: boolean }): void {
    const wasUp = inst.state === "running" || inst.state === "pending";
    if (wasUp) {
      const onlineAt = this.agentOnlineAt(inst);
      const previous = this.#agent(inst);
      let agent: AgentRecord | undefined;
      if (onlineAt !== undefined && now >= onlineAt) {
        agent = { registeredAt: previous?.registeredAt ?? onlineAt, lastPingAt: now, listed };
      } else if (previous) {
        agent = { ...previous, listed };
      }
      if (agent) inst.agent = agent;
      // Only a running machine's going down counts: `#agent` reads it for older state files.
      if (inst.state === "running") inst.downAt = now;
    }
    this.groups.killOwner(inst.id);
    if (inst.userDataStatus === "running") inst.userDataStatus = "interrupted";
    for (const listener of this.#downListeners) listener(inst.id);
  }

  /**
   * The agent SSM remembers. State written before `agent` existed only has the boot and the
   * moment the machine went down: an agent that registered before that is listed, as then.
   */
  #agent(inst: InstanceRecord): AgentRecord | undefined {
    if (inst.agent) return inst.agent;
    if (inst.runningSince === undefined || inst.downAt === undefined) return undefined;
    const registeredAt = inst.runningSince + this.opts.ssmOnlineDelayMs;
    return inst.downAt >= registeredAt
      ? { registeredAt, lastPingAt: inst.downAt, listed: true }
      : undefined;
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

/** EC2's StateTransitionReason for a user's stop or terminate: "User initiated (… GMT)". */
function userInitiated(now: number): string {
  return `User initiated (${new Date(now)
    .toISOString()
    .replace(/\.\d+Z$/, " GMT")
    .replace("T", " ")})`;
}
