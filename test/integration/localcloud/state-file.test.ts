import { appendFileSync, chmodSync, readFileSync, statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type InstanceRecord, StateFile } from "../../../lib/localcloud/store.js";

// The snapshot + journal behind "state on disk before the answer", on a real directory.

let dir: string;
const open: StateFile[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "localcloud-state-"));
});

afterEach(async () => {
  for (const f of open.splice(0)) await f.close();
  await rm(dir, { recursive: true, force: true });
});

function file(): StateFile {
  const f = new StateFile(dir);
  open.push(f);
  return f;
}

/** What a second process would load from the dir right now (the first one never closed). */
function reloaded(): StateFile {
  return file();
}

function record(seq: number, consoleText = ""): InstanceRecord {
  return {
    seq,
    id: `i-${seq.toString(16).padStart(17, "0")}`,
    reservationId: "r-0a1b2c3d4e5f60718",
    imageId: "ami-0a1b2c3d4e5f60718",
    instanceType: "t3.small",
    securityGroupIds: [],
    metadataOptions: {
      httpTokens: "required",
      httpPutResponseHopLimit: 2,
      httpEndpoint: "enabled",
      instanceMetadataTags: "disabled",
    },
    tags: [],
    userDataStatus: "none",
    privateIp: "10.0.0.4",
    launchTime: 0,
    state: "pending",
    stateTransitionReason: "",
    console: consoleText,
  };
}

function launchInto(f: StateFile, inst: InstanceRecord): void {
  f.state.instances.push(inst);
  f.state.nextSeq = inst.seq + 1;
  f.instance(inst);
}

describe("flush", () => {
  it("makes marked changes loadable at once, without a close", () => {
    const f = file();
    const inst = record(1);
    launchInto(f, inst);
    f.state.clientTokens.tok = { reservationId: "r-1", instanceIds: [inst.id], fingerprint: "x" };
    f.clientToken("tok");

    f.flush();
    inst.state = "running";
    f.instance(inst);
    f.flush();

    const again = reloaded().state;
    expect(again.instances.map((i) => [i.id, i.state])).toEqual([[inst.id, "running"]]);
    expect(again.nextSeq).toBe(2);
    expect(again.clientTokens.tok?.instanceIds).toEqual([inst.id]);
  });

  it("writes nothing for nothing marked, and a removal makes the instance go", () => {
    const f = file();
    f.flush();
    expect(statSync(f.journalPath).size).toBe(0);
    const inst = record(1);
    launchInto(f, inst);
    f.flush();

    f.state.instances = [];
    f.instanceRemoved(inst.id);
    f.flush();

    expect(reloaded().state.instances).toEqual([]);
  });

  it("ignores a torn last line: it was never acknowledged", () => {
    const f = file();
    launchInto(f, record(1));
    f.flush();
    appendFileSync(f.journalPath, '{"epoch":0,"nextSeq":9,"instances":[{"seq"');

    const again = reloaded().state;

    expect(again.instances.map((i) => i.seq)).toEqual([1]);
    expect(again.nextSeq).toBe(2);
  });
});

describe("file modes", () => {
  it("keeps the state (user data, instance tokens) to its owner, whatever the umask", () => {
    // Prepare: a directory others could read, and a lenient umask.
    chmodSync(dir, 0o755);
    const previous = process.umask(0o022);
    try {
      // Act
      const f = file();
      launchInto(f, record(1));
      f.flush();
      f.compact();

      // Assess
      expect(statSync(dir).mode & 0o777).toBe(0o700);
      expect(statSync(f.path).mode & 0o777).toBe(0o600);
      expect(statSync(f.journalPath).mode & 0o777).toBe(0o600);
    } finally {
      process.umask(previous);
    }
  });
});

describe("compaction", () => {
  it("folds the journal into state.json once it outgrows it, and ignores older lines after", () => {
    // Prepare: one record of ~64 KiB rewritten until the journal passes the 1 MiB floor.
    const f = file();
    const inst = record(1, "x".repeat(64 * 1024));
    launchInto(f, inst);
    f.flush();
    const staleLine = readFileSync(f.journalPath, "utf8");

    // Act
    let compacted = false;
    for (let n = 0; n < 40 && !compacted; n++) {
      inst.stateTransitionReason = `write ${n}`;
      f.instance(inst);
      f.flush();
      compacted = statSync(f.journalPath).size === 0;
    }

    // Assess
    expect(compacted).toBe(true);
    const snapshot = JSON.parse(readFileSync(f.path, "utf8")) as {
      epoch: number;
      instances: InstanceRecord[];
    };
    expect(snapshot.epoch).toBeGreaterThan(0);
    expect(snapshot.instances[0]?.stateTransitionReason).toMatch(/^write \d+$/);
    // A line of the previous snapshot's journal (a crash between rename and truncate) is skipped.
    appendFileSync(f.journalPath, staleLine);
    expect(reloaded().state.instances[0]?.stateTransitionReason).toBe(
      snapshot.instances[0]?.stateTransitionReason,
    );
  });
});
