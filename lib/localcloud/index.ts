/**
 * The local EC2/SSM/S3 stand-in (SPEC §9), as hard as AWS where the product can trip:
 *
 * - Lost answers: `POST /_localcloud/faults` with `loseAnswer: "drop" | "hang"` (and the usual
 *   `service`, `action`, `times`, `probability`, `latencyMs`) performs the call, then destroys
 *   the socket or never answers. A retried SendCommand runs again; RunInstances is saved by its
 *   ClientToken.
 * - Eventual consistency: `describeLagMs` (option; `GET`/`PUT /_localcloud/settings`) hides a
 *   new instance from DescribeInstances, TerminateInstances, GetConsoleOutput and CreateTags.
 * - Filters: no values match every instance with the attribute; at most 200 values per call.
 * - SendCommand to a stopped, registered instance is accepted and ends TimedOut / "Delivery
 *   Timed Out" after `deliveryTimeoutMs`; unregistered, pending or gone: InvalidInstanceId.
 * - RunInstances knows only the catalogue (`catalogue` option, `GET`/`POST
 *   /_localcloud/catalogue`, the defaults exported below), and takes `HibernationOptions` only
 *   when EC2's hibernation prerequisites hold (supported type, encrypted root volume for RAM).
 * - StopInstances (`Hibernate`, `Force`) and StartInstances: running → stopping → stopped after
 *   `stopDelayMs`, stopped → pending → running after `bootDelayMs`; processes die, the disk
 *   stays, user data does not run again. SSM no longer lists a stopped instance, takes commands
 *   for it and delivers them once its agent is Online after the start. The `hibernationFallback`
 *   setting turns a hibernation into the plain stop EC2 falls back to.
 * - EC2 state-change events: every state an instance enters (launch, start, stop, crash,
 *   terminate, hibernate) is delivered as EventBridge's `EC2 Instance State-change Notification`
 *   to the `eventTargets` option's callbacks and the URLs of `POST /_localcloud/eventTargets`,
 *   asynchronously after `eventDelayMs` plus jitter, retried until delivered; `events` faults
 *   (`POST /_localcloud/faults` with `service: "events"`, `action: <state>`) duplicate, delay
 *   (reorder) or lose them. `GET /_localcloud/events/stats` counts deliveries.
 * - State: every answer leaves after its change is in `state.json` + `state.journal`.
 */
import { chmodSync, mkdirSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { Catalogue } from "./catalogue.js";
import { CallStats } from "./control.js";
import { StateChangeEvents } from "./events.js";
import { FaultTable } from "./faults.js";
import { Fleet } from "./fleet.js";
import { type LocalCloudOptions, resolveOptions } from "./options.js";
import { ProcessGroups } from "./processes.js";
import { CommandRunner } from "./runcommand.js";
import { ObjectStore } from "./s3.js";
import { CloudServer } from "./server.js";
import { StateFile } from "./store.js";

export {
  al2023ImageParameter,
  type CatalogueEntries,
  defaultImageId,
  defaultInstanceProfile,
  defaultSecurityGroupId,
  defaultSubnetId,
  defaultVpcId,
} from "./catalogue.js";
export type { LocalCloudOptions } from "./options.js";

export interface LocalCloud {
  /** Endpoint for the SDK clients, e.g. `http://127.0.0.1:4566`. */
  url: string;
  port: number;
  dir: string;
  /** Kill running commands, stop timers, save state and close the server and its sockets. */
  close(): Promise<void>;
}

/**
 * Start the local cloud: EC2, SSM and S3 on one loopback port, for the unmodified AWS SDK v3
 * clients (`endpoint: cloud.url`, S3 with `forcePathStyle: true`). S3 checks every signature
 * against `opts.credentials` (default `local`/`local`) and knows only the buckets created by
 * CreateBucket or listed in `opts.buckets`; EC2 and SSM take any credentials.
 *
 * State is loaded from and saved to `opts.dir`, so starting again with the same dir brings the
 * instances back (running ones still running); commands that were running when the previous
 * process stopped are reported Failed with StatusDetails "Terminated". Every answer is sent
 * after the change it reports is on disk, so even a killed process forgets nothing it said.
 *
 * As hard as AWS, not kinder: RunInstances refuses AMIs, subnets, security groups and instance
 * profiles outside `opts.catalogue` plus the defaults exported here; `describeLagMs` hides new
 * instances from DescribeInstances for a while; faults can lose an answer after the action ran.
 */
export async function startLocalCloud(options: LocalCloudOptions): Promise<LocalCloud> {
  const opts = resolveOptions(options);
  // Instances' scripts and output, the state file and objects live here: its owner's only.
  mkdirSync(join(opts.dir, "instances"), { recursive: true, mode: 0o700 });
  chmodSync(opts.dir, 0o700);
  const catalogue = new Catalogue(opts.catalogue);
  // First, so that a bad bucket name refuses the start before any timer runs.
  const objects = new ObjectStore({
    root: join(opts.dir, "s3"),
    credentials: opts.credentials,
    buckets: opts.buckets,
  });
  await objects.open();
  const file = new StateFile(opts.dir);
  const loaded = file.state;
  const groups = new ProcessGroups();
  const fleet = new Fleet(loaded, opts, groups, file);
  const runner = new CommandRunner(loaded, fleet, opts, groups, file, objects);
  const faults = new FaultTable();
  const events = new StateChangeEvents(opts, faults, opts.eventTargets);
  fleet.onStateChange((inst, at) => events.emit(inst.id, inst.state, at));
  // What loading changed (interrupted scripts, expired history) becomes the new snapshot.
  file.compact();
  const cloud = new CloudServer({
    state: loaded,
    fleet,
    runner,
    objects,
    faults,
    stats: new CallStats(),
    changes: file,
    catalogue,
    opts,
    events,
  });
  try {
    await new Promise<void>((resolve, reject) => {
      cloud.server.once("error", reject);
      cloud.server.listen(opts.port, opts.host, () => {
        cloud.server.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    // A port in use must not leave timers and the journal open behind the error.
    fleet.close();
    runner.close();
    events.close();
    await file.close();
    throw err;
  }
  const { port } = cloud.server.address() as AddressInfo;
  const host = opts.host === "0.0.0.0" || opts.host === "::" ? "127.0.0.1" : opts.host;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    dir: opts.dir,
    close: () => {
      closing ??= (async () => {
        events.close();
        fleet.close();
        runner.close();
        groups.killAll();
        await cloud.close();
        await file.close();
      })();
      return closing;
    },
  };
}
