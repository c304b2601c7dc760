import { rootDeviceName, rootVolume } from "./blockdevices.js";
import { accountId, type Catalogue, defaultVpcId } from "./catalogue.js";
import { CloudError, type WireResponse } from "./errors.js";
import type { Fleet, LaunchSpec, StateChange } from "./fleet.js";
import { checkHibernationPrerequisites } from "./hibernation.js";
import { isInstanceId } from "./ids.js";
import { booleanParam, type QueryParams } from "./query.js";
import {
  type CloudState,
  type InstanceRecord,
  type StateChanges,
  stateCodes,
  type Tag,
} from "./store.js";
import { el, itemSet, leaf } from "./xml.js";

/** The EC2 Query API of the local cloud (version 2016-11-15). */

export const ec2Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/";
const ownerId = accountId;
const region = "us-east-1";

/** User data "is limited to 16 KB, in raw form, before it is base64-encoded" (API_RunInstances.html). */
export const maxUserDataBytes = 16 * 1024;
/** ClientToken: "up to 64 ASCII characters" (ec2/latest/devguide/ec2-api-idempotency.html). */
export const maxClientTokenLength = 64;
/**
 * FilterLimitExceeded, "The request uses too many filters or too many filter values"
 * (docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html), worded "The maximum
 * number of filter values specified on a single call is 200": the values of all filters of the
 * call together, not of each filter.
 */
export const maxFilterValues = 200;
/** MaxResults: "You can specify a value between 5 and 1000" (API_DescribeInstances.html). */
const minPageSize = 5;
const maxPageSize = 1000;
/** "You can assign a maximum of 50 tags to a resource" (tag restrictions, Using_Tags.html). */
const maxTagsPerResource = 50;
/**
 * A local cap, not an AWS number: MaxCount above it launches this many (AWS launches as many as
 * capacity allows, at least MinCount), MinCount above it is InstanceLimitExceeded.
 */
const maxInstancesPerCall = 20;

export interface Ec2Deps {
  fleet: Fleet;
  state: CloudState;
  changes: StateChanges;
  catalogue: Catalogue;
}

type Ec2Action = (deps: Ec2Deps, params: QueryParams) => string;

const actions: Record<string, Ec2Action> = {
  RunInstances: runInstances,
  DescribeInstances: describeInstances,
  TerminateInstances: terminateInstances,
  StopInstances: stopInstances,
  StartInstances: startInstances,
  GetConsoleOutput: getConsoleOutput,
  CreateTags: createTags,
};

export function isEc2Action(action: string): boolean {
  return Object.hasOwn(actions, action);
}

/** Run one EC2 action; a CloudError thrown inside becomes EC2's error document. */
export function handleEc2(
  deps: Ec2Deps,
  action: string,
  params: QueryParams,
  requestId: string,
): WireResponse {
  const run = Object.hasOwn(actions, action) ? actions[action] : undefined;
  if (!run) {
    throw new CloudError(
      "InvalidAction",
      `The action ${action} is not valid for this web service.`,
    );
  }
  const inner = run(deps, params);
  return xmlResponse(
    200,
    `<${action}Response xmlns="${ec2Namespace}">${leaf("requestId", requestId)}${inner}</${action}Response>`,
  );
}

/** EC2's error document: `<Response><Errors><Error>…</Error></Errors><RequestID>…`. */
export function ec2Error(err: CloudError, requestId: string): WireResponse {
  return xmlResponse(
    err.status,
    el(
      "Response",
      el("Errors", el("Error", leaf("Code", err.code), leaf("Message", err.message))),
      leaf("RequestID", requestId),
    ),
  );
}

/** 200 with a document cut off mid-element: the SDK's XML parser rejects it. */
export function ec2Malformed(action: string): WireResponse {
  return xmlResponse(200, `<${action}Response xmlns="${ec2Namespace}"><requestId>`);
}

function xmlResponse(status: number, body: string): WireResponse {
  return {
    status,
    headers: { "content-type": "text/xml;charset=UTF-8" },
    body: `<?xml version="1.0" encoding="UTF-8"?>\n${body}`,
  };
}

// ---------------------------------------------------------------------------------------------
// Validation helpers

function required(params: QueryParams, name: string): string {
  const v = params.get(name);
  if (v === undefined || v === "") {
    throw new CloudError("MissingParameter", `The request must contain the parameter ${name}`);
  }
  return v;
}

function instanceIds(params: QueryParams, name = "InstanceId"): string[] {
  const ids = params.list(name);
  for (const id of ids) {
    if (!isInstanceId(id)) {
      throw new CloudError(
        "InvalidInstanceID.Malformed",
        `Invalid id: "${id}" (expecting "i-...")`,
      );
    }
  }
  return [...new Set(ids)];
}

/** One error naming every missing id, as EC2 words it for one id and for several. */
function notFound(missing: string[]): CloudError {
  return missing.length === 1
    ? new CloudError("InvalidInstanceID.NotFound", `The instance ID '${missing[0]}' does not exist`)
    : new CloudError(
        "InvalidInstanceID.NotFound",
        `The instance IDs '${missing.join(", ")}' do not exist`,
      );
}

/**
 * Whether EC2's API sees the instance yet. Right after RunInstances a call naming the new id
 * "might" answer InvalidInstanceID.NotFound — "this doesn't mean the instance does not exist"
 * (docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html, which names
 * DescribeInstances and TerminateInstances; the local cloud applies it to every call that looks
 * the instance up). A TerminateInstances refused this way terminates nothing.
 */
function visible(inst: InstanceRecord, now: number): boolean {
  return inst.visibleAt === undefined || now >= inst.visibleAt;
}

/** The named instances, or NotFound naming every one EC2 does not know (or does not see yet). */
function requireExisting(fleet: Fleet, ids: string[]): InstanceRecord[] {
  const now = Date.now();
  const found = ids.map((id) => {
    const inst = fleet.get(id);
    return inst && visible(inst, now) ? inst : undefined;
  });
  const missing = ids.filter((_, i) => found[i] === undefined);
  if (missing.length > 0) throw notFound(missing);
  return found.filter((i): i is InstanceRecord => i !== undefined);
}

function parseTags(params: QueryParams, name: string): Tag[] {
  const tags = params
    .structs(name)
    .map((t) => ({ key: t.get("Key") ?? "", value: t.get("Value") ?? "" }));
  const seen = new Set<string>();
  for (const t of tags) {
    // Tag restrictions (Using_Tags.html): key 1–128, value ≤ 256, "aws:" reserved.
    if (t.key.length === 0 || t.key.length > 128) {
      throw new CloudError("InvalidParameterValue", `Tag key must be between 1 and 128 characters`);
    }
    if (t.value.length > 256) {
      throw new CloudError(
        "InvalidParameterValue",
        `Tag value exceeds the maximum length of 256 characters`,
      );
    }
    if (t.key.toLowerCase().startsWith("aws:")) {
      throw new CloudError(
        "InvalidParameterValue",
        `Tag keys starting with 'aws:' are reserved for internal use`,
      );
    }
    if (seen.has(t.key)) {
      throw new CloudError("InvalidParameterValue", `Duplicate tag key '${t.key}' specified`);
    }
    seen.add(t.key);
  }
  if (tags.length > maxTagsPerResource) {
    throw new CloudError(
      "TagLimitExceeded",
      "The maximum number of Tags for a resource has been reached.",
    );
  }
  return tags;
}

function positiveInt(params: QueryParams, name: string): number {
  const raw = required(params, name);
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    throw new CloudError(
      "InvalidParameterValue",
      `Value (${raw}) for parameter ${name} is invalid.`,
    );
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Serialisation

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function stateXml(name: string, state: keyof typeof stateCodes): string {
  return el(name, leaf("code", stateCodes[state]), leaf("name", state));
}

function profileXml(inst: InstanceRecord): string {
  const p = inst.iamInstanceProfile;
  if (!p) return "";
  const arn = p.arn ?? `arn:aws:iam::${ownerId}:instance-profile/${p.name ?? ""}`;
  return el(
    "iamInstanceProfile",
    leaf("arn", arn),
    leaf("id", `AIPA${inst.id.slice(2, 19).toUpperCase()}`),
  );
}

function instanceXml(inst: InstanceRecord): string {
  const host = `ip-${inst.privateIp.replaceAll(".", "-")}.ec2.internal`;
  const m = inst.metadataOptions;
  return [
    leaf("instanceId", inst.id),
    leaf("imageId", inst.imageId),
    stateXml("instanceState", inst.state),
    leaf("privateDnsName", inst.state === "terminated" ? "" : host),
    leaf("dnsName", ""),
    leaf("reason", inst.stateTransitionReason),
    leaf("amiLaunchIndex", 0),
    leaf("instanceType", inst.instanceType),
    leaf("launchTime", iso(inst.launchTime)),
    el(
      "placement",
      leaf("availabilityZone", `${region}a`),
      leaf("groupName", ""),
      leaf("tenancy", "default"),
    ),
    el("monitoring", leaf("state", "disabled")),
    leaf("subnetId", inst.subnetId),
    inst.subnetId ? leaf("vpcId", defaultVpcId) : "",
    inst.state === "terminated" ? "" : leaf("privateIpAddress", inst.privateIp),
    itemSet(
      "groupSet",
      inst.securityGroupIds.map((g) => leaf("groupId", g) + leaf("groupName", g)),
    ),
    inst.stateReason
      ? el(
          "stateReason",
          leaf("code", inst.stateReason.code),
          leaf("message", inst.stateReason.message),
        )
      : "",
    leaf("architecture", "x86_64"),
    leaf("rootDeviceType", "ebs"),
    leaf("rootDeviceName", rootDeviceName),
    leaf("virtualizationType", "hvm"),
    leaf("clientToken", inst.clientToken ?? ""),
    itemSet(
      "tagSet",
      inst.tags.map((t) => leaf("key", t.key) + leaf("value", t.value)),
    ),
    leaf("hypervisor", "xen"),
    profileXml(inst),
    leaf("ebsOptimized", false),
    leaf("enaSupport", true),
    el(
      "metadataOptions",
      leaf("state", inst.state === "pending" ? "pending" : "applied"),
      leaf("httpTokens", m.httpTokens),
      leaf("httpPutResponseHopLimit", m.httpPutResponseHopLimit),
      leaf("httpEndpoint", m.httpEndpoint),
      leaf("httpProtocolIpv6", "disabled"),
      leaf("instanceMetadataTags", m.instanceMetadataTags),
    ),
    el("hibernationOptions", leaf("configured", inst.hibernationConfigured === true)),
    leaf("platformDetails", "Linux/UNIX"),
  ].join("");
}

function reservationXml(reservationId: string, instances: InstanceRecord[]): string {
  return (
    leaf("reservationId", reservationId) +
    leaf("ownerId", ownerId) +
    itemSet("instancesSet", instances.map(instanceXml))
  );
}

// ---------------------------------------------------------------------------------------------
// Actions

function runInstances({ fleet, state, changes, catalogue }: Ec2Deps, params: QueryParams): string {
  const spec = launchSpec(params, catalogue);
  const token = spec.clientToken;
  const fingerprint = params.fingerprint(["ClientToken"]);
  if (token !== undefined) {
    const previous = Object.hasOwn(state.clientTokens, token)
      ? state.clientTokens[token]
      : undefined;
    if (previous) {
      const instances = previous.instanceIds.map((id) => fleet.get(id));
      // A token whose instances are going or gone cannot be replayed (seen from AWS since 2025).
      if (instances.some((i) => !i || i.state === "terminated" || i.state === "shutting-down")) {
        throw new CloudError(
          "IdempotentInstanceTerminated",
          "The client token you have provided is associated with a resource that is already deleted. Please use a different client token.",
        );
      }
      if (previous.fingerprint !== fingerprint) {
        throw new CloudError(
          "IdempotentParameterMismatch",
          "Arguments on this idempotent request are inconsistent with arguments used in previous request(s).",
        );
      }
      return reservationXml(
        previous.reservationId,
        instances.filter((i): i is InstanceRecord => i !== undefined),
      );
    }
  }
  const launched = fleet.launch(spec);
  const reservationId = launched[0]?.reservationId ?? "";
  if (token !== undefined) {
    state.clientTokens[token] = {
      reservationId,
      instanceIds: launched.map((i) => i.id),
      fingerprint,
    };
    changes.clientToken(token);
  }
  return reservationXml(reservationId, launched);
}

function launchSpec(params: QueryParams, catalogue: Catalogue): LaunchSpec {
  const subnetId = params.get("SubnetId");
  const securityGroupIds = params.list("SecurityGroupId");
  const profileArn = params.get("IamInstanceProfile.Arn");
  const profileName = params.get("IamInstanceProfile.Name");
  const profile =
    profileArn === undefined && profileName === undefined
      ? undefined
      : {
          ...(profileArn !== undefined && { arn: profileArn }),
          ...(profileName !== undefined && { name: profileName }),
        };
  // Unknown resources are refused before anything is launched, as EC2 does.
  const imageId = catalogue.resolveLaunch({
    imageId: required(params, "ImageId"),
    ...(subnetId !== undefined && { subnetId }),
    securityGroupIds,
    securityGroupNames: params.list("SecurityGroup"),
    ...(profile && { profile }),
  });
  const minCount = positiveInt(params, "MinCount");
  const maxCount = positiveInt(params, "MaxCount");
  if (minCount > maxCount) {
    throw new CloudError(
      "InvalidParameterValue",
      `Value (${minCount}) for parameter minCount is invalid. Expecting a value less than or equal to maxCount.`,
    );
  }
  if (minCount > maxInstancesPerCall) {
    throw new CloudError(
      "InstanceLimitExceeded",
      `You have requested more instances (${minCount}) than your current instance limit of ${maxInstancesPerCall} allows for the specified instance type.`,
    );
  }
  const clientToken = params.get("ClientToken");
  if (clientToken !== undefined) {
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the ASCII range is the point.
    if (clientToken.length > maxClientTokenLength || !/^[\x00-\x7f]*$/.test(clientToken)) {
      throw new CloudError(
        "InvalidParameterValue",
        `Value (${clientToken}) for parameter clientToken is invalid. Length exceeds maximum of ${maxClientTokenLength} ASCII characters`,
      );
    }
  }
  const tags: Tag[] = [];
  for (const ts of params.structs("TagSpecification")) {
    const type = ts.get("ResourceType") ?? "";
    if (!["instance", "volume", "network-interface", "spot-instances-request"].includes(type)) {
      throw new CloudError(
        "InvalidParameterValue",
        `'${type}' is not a valid taggable resource type for this operation.`,
      );
    }
    // Tags for the volume or network interface have nothing to land on here.
    const parsed = parseTags(ts, "Tag");
    if (type === "instance") tags.push(...parsed);
  }
  const httpTokens = params.get("MetadataOptions.HttpTokens") ?? "optional";
  const httpEndpoint = params.get("MetadataOptions.HttpEndpoint") ?? "enabled";
  const metadataTags = params.get("MetadataOptions.InstanceMetadataTags") ?? "disabled";
  const hopLimit = Number(params.get("MetadataOptions.HttpPutResponseHopLimit") ?? "1");
  if (!["optional", "required"].includes(httpTokens)) {
    throw new CloudError(
      "InvalidParameterValue",
      `The value '${httpTokens}' is not valid for HttpTokens.`,
    );
  }
  if (
    !["enabled", "disabled"].includes(httpEndpoint) ||
    !["enabled", "disabled"].includes(metadataTags)
  ) {
    throw new CloudError("InvalidParameterValue", "The metadata options are not valid.");
  }
  if (!Number.isInteger(hopLimit) || hopLimit < 1 || hopLimit > 64) {
    throw new CloudError(
      "InvalidParameterValue",
      "The HttpPutResponseHopLimit must be between 1 and 64.",
    );
  }
  const instanceType = params.get("InstanceType") ?? "m1.small";
  const root = rootVolume(params, imageId);
  const hibernationConfigured = booleanParam(params, "HibernationOptions.Configured") ?? false;
  if (hibernationConfigured) checkHibernationPrerequisites(instanceType, root);
  const spec: LaunchSpec = {
    count: Math.min(maxCount, maxInstancesPerCall),
    imageId,
    instanceType,
    securityGroupIds,
    metadataOptions: {
      httpTokens,
      httpEndpoint,
      httpPutResponseHopLimit: hopLimit,
      instanceMetadataTags: metadataTags,
    },
    tags,
    hibernationConfigured,
  };
  if (subnetId !== undefined) spec.subnetId = subnetId;
  if (clientToken !== undefined && clientToken !== "") spec.clientToken = clientToken;
  if (profile) spec.iamInstanceProfile = profile;
  const userData = params.get("UserData");
  if (userData !== undefined && userData !== "") spec.userData = decodeUserData(userData);
  return spec;
}

function decodeUserData(encoded: string): string {
  const compact = encoded.replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact) || compact.length % 4 === 1) {
    throw new CloudError("InvalidUserData.Malformed", "Invalid BASE64 encoding of user data.");
  }
  const raw = Buffer.from(compact, "base64");
  if (raw.byteLength > maxUserDataBytes) {
    throw new CloudError(
      "InvalidParameterValue",
      `User data is limited to ${maxUserDataBytes} bytes`,
    );
  }
  return raw.toString("utf8");
}

interface Filter {
  name: string;
  values: string[];
}

const filterNames = new Set([
  "instance-id",
  "instance-state-name",
  "instance-state-code",
  "client-token",
  "tag-key",
  "tag-value",
  "instance-type",
  "image-id",
  "subnet-id",
  "reservation-id",
  "private-ip-address",
  "hibernation-options.configured",
]);

function parseFilters(params: QueryParams): Filter[] {
  const filters = params.structs("Filter").map((f) => {
    const name = f.get("Name") ?? "";
    const values = f.list("Value");
    if (!filterNames.has(name) && !name.startsWith("tag:")) {
      throw new CloudError("InvalidParameterValue", `The filter '${name}' is invalid`);
    }
    return { name, values };
  });
  const total = filters.reduce((n, f) => n + f.values.length, 0);
  if (total > maxFilterValues) {
    throw new CloudError(
      "FilterLimitExceeded",
      `The maximum number of filter values specified on a single call is ${maxFilterValues}`,
    );
  }
  return filters;
}

function fieldValues(inst: InstanceRecord, name: string): string[] {
  switch (name) {
    case "instance-id":
      return [inst.id];
    case "instance-state-name":
      return [inst.state];
    case "instance-state-code":
      return [String(stateCodes[inst.state])];
    case "client-token":
      return inst.clientToken ? [inst.clientToken] : [];
    case "tag-key":
      return inst.tags.map((t) => t.key);
    case "tag-value":
      return inst.tags.map((t) => t.value);
    case "instance-type":
      return [inst.instanceType];
    case "image-id":
      return [inst.imageId];
    case "subnet-id":
      return inst.subnetId ? [inst.subnetId] : [];
    case "reservation-id":
      return [inst.reservationId];
    case "private-ip-address":
      return inst.state === "terminated" ? [] : [inst.privateIp];
    case "hibernation-options.configured":
      return [String(inst.hibernationConfigured === true)];
    default: {
      const key = name.slice("tag:".length);
      return inst.tags.filter((t) => t.key === key).map((t) => t.value);
    }
  }
}

/**
 * A filter ready to test: exact values in a set, wildcard values (EC2 filter values accept `*`
 * and `?`) as regular expressions.
 */
interface CompiledFilter {
  name: string;
  /**
   * No values at all (the SDK sends `Values: []` as no `Value.N` parameter): the filter matches
   * every instance that has the attribute — EC2 maintainers in aws/aws-cli#1735. So an
   * `instance-id` filter with an empty list lists the whole account.
   */
  any: boolean;
  exact: Set<string>;
  globs: RegExp[];
}

/**
 * Compiled once per call: a call with 200 instance ids over a large fleet would otherwise compare
 * every instance with every value (the stand-in, not the product, would dominate benchmarks).
 */
function compileFilters(filters: Filter[]): CompiledFilter[] {
  return filters.map((f) => {
    const exact = new Set<string>();
    const globs: RegExp[] = [];
    for (const v of f.values) {
      if (!v.includes("*") && !v.includes("?")) exact.add(v);
      else {
        const re = v
          .replace(/[.+^${}()|[\]\\]/g, "\\$&")
          .replaceAll("*", ".*")
          .replaceAll("?", ".");
        globs.push(new RegExp(`^${re}$`, "s"));
      }
    }
    return { name: f.name, any: f.values.length === 0, exact, globs };
  });
}

/** Values ORed within a filter, filters ANDed. */
function matches(inst: InstanceRecord, filters: CompiledFilter[]): boolean {
  return filters.every((f) =>
    fieldValues(inst, f.name).some(
      (v) => f.any || f.exact.has(v) || f.globs.some((re) => re.test(v)),
    ),
  );
}

function encodeToken(seq: number): string {
  return Buffer.from(JSON.stringify({ after: seq })).toString("base64url");
}

function decodeToken(token: string): number {
  try {
    const parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as {
      after?: unknown;
    };
    if (typeof parsed.after === "number") return parsed.after;
  } catch {
    // Fall through to the error below.
  }
  throw new CloudError(
    "InvalidPaginationToken",
    "The specified pagination token is not valid or is expired.",
  );
}

function describeInstances({ fleet }: Ec2Deps, params: QueryParams): string {
  const ids = instanceIds(params);
  const maxResultsRaw = params.get("MaxResults");
  if (maxResultsRaw !== undefined && ids.length > 0) {
    throw new CloudError(
      "InvalidParameterCombination",
      "The parameter instancesSet cannot be used with the parameter maxResults",
    );
  }
  let pageSize = Number.POSITIVE_INFINITY;
  if (maxResultsRaw !== undefined) {
    const n = Number(maxResultsRaw);
    if (!Number.isInteger(n) || n < minPageSize || n > maxPageSize) {
      throw new CloudError(
        "InvalidParameterValue",
        `Value ( ${maxResultsRaw} ) for parameter maxResults is invalid. Expecting a value between ${minPageSize} and ${maxPageSize}.`,
      );
    }
    pageSize = n;
  }
  const filters = compileFilters(parseFilters(params));
  const nextToken = params.get("NextToken");
  const after = nextToken ? decodeToken(nextToken) : 0;
  // The whole call fails when any named id is unknown (API_DescribeInstances.html; boto3#977).
  const now = Date.now();
  let candidates = ids.length > 0 ? requireExisting(fleet, ids) : fleet.all();
  candidates = candidates
    .filter((i) => i.seq > after && visible(i, now) && matches(i, filters))
    .sort((a, b) => a.seq - b.seq);
  const page = candidates.slice(0, pageSize);
  const more = candidates.length > page.length;
  const reservations = new Map<string, InstanceRecord[]>();
  for (const inst of page) {
    const list = reservations.get(inst.reservationId) ?? [];
    list.push(inst);
    reservations.set(inst.reservationId, list);
  }
  const last = page.at(-1);
  return (
    el(
      "reservationSet",
      ...[...reservations].map(([rid, insts]) => el("item", reservationXml(rid, insts))),
    ) + (more && last ? leaf("nextToken", encodeToken(last.seq)) : "")
  );
}

function terminateInstances({ fleet }: Ec2Deps, params: QueryParams): string {
  const ids = requiredInstanceIds(params);
  // One unknown id fails the call and terminates none.
  requireExisting(fleet, ids);
  return stateChangesXml(fleet.terminate(ids));
}

/**
 * StopInstances (API_StopInstances.html): running → stopping → stopped, or a hibernation with
 * `Hibernate` for an instance launched able to hibernate. Stopping and stopped instances answer
 * their state unchanged, as a repeated stop must not fail; every other state is
 * IncorrectInstanceState, and one such instance (or one unknown id) fails the whole call and
 * stops none, as EC2 answers a batch naming a terminated instance (ansible-collections/
 * amazon.aws#146, aws-solutions/instance-scheduler-on-aws#281). `Force` skips the graceful OS
 * shutdown; the local cloud kills every process at once either way, so it changes nothing here.
 */
function stopInstances({ fleet }: Ec2Deps, params: QueryParams): string {
  const ids = requiredInstanceIds(params);
  const hibernate = booleanParam(params, "Hibernate") ?? false;
  booleanParam(params, "Force");
  const instances = requireExisting(fleet, ids);
  for (const inst of instances) {
    if (inst.state === "pending" && inst.runningSince === undefined) {
      // EC2's answer for a launch that has not booted yet (cloud-custodian/cloud-custodian#6014,
      // flatcar/mantle#315).
      throw new CloudError(
        "IncorrectInstanceState",
        `Instance '${inst.id}' cannot be stopped as it has never reached the 'running' state.`,
      );
    }
    if (inst.state === "pending" || inst.state === "shutting-down" || inst.state === "terminated") {
      throw new CloudError(
        "IncorrectInstanceState",
        `This instance '${inst.id}' is not in a state from which it can be stopped.`,
      );
    }
    if (hibernate && inst.hibernationConfigured !== true) {
      // "You can't enable or disable hibernation for an instance after you launch it"
      // (enabling-hibernation.html); EC2's wording from aws-solutions/instance-scheduler-on-aws#510.
      throw new CloudError(
        "UnsupportedHibernationConfiguration",
        `The instance can't be hibernated because it was not configured at launch for hibernation: ${inst.id}`,
      );
    }
  }
  return stateChangesXml(fleet.stop(ids, hibernate));
}

/**
 * StartInstances (API_StartInstances.html): stopped → pending → running. Pending and running
 * instances answer their state unchanged; stopping, shutting-down and terminated ones are
 * IncorrectInstanceState with EC2's wording (aws-solutions/instance-scheduler-on-aws#281), and
 * fail the whole call.
 */
function startInstances({ fleet }: Ec2Deps, params: QueryParams): string {
  const ids = requiredInstanceIds(params);
  const instances = requireExisting(fleet, ids);
  for (const inst of instances) {
    if (
      inst.state === "stopping" ||
      inst.state === "shutting-down" ||
      inst.state === "terminated"
    ) {
      throw new CloudError(
        "IncorrectInstanceState",
        `The instance '${inst.id}' is not in a state from which it can be started.`,
      );
    }
  }
  return stateChangesXml(fleet.start(ids));
}

function requiredInstanceIds(params: QueryParams): string[] {
  const ids = instanceIds(params);
  if (ids.length === 0) {
    throw new CloudError("MissingParameter", "The request must contain the parameter InstanceId");
  }
  return ids;
}

/** `instancesSet` of InstanceStateChange items, each with its current and previous state. */
function stateChangesXml(changes: StateChange[]): string {
  return itemSet(
    "instancesSet",
    changes.map(
      ({ inst, previous }) =>
        leaf("instanceId", inst.id) +
        stateXml("currentState", inst.state) +
        stateXml("previousState", previous),
    ),
  );
}

function getConsoleOutput({ fleet }: Ec2Deps, params: QueryParams): string {
  const id = required(params, "InstanceId");
  if (!isInstanceId(id)) {
    throw new CloudError("InvalidInstanceID.Malformed", `Invalid id: "${id}" (expecting "i-...")`);
  }
  const [inst] = requireExisting(fleet, [id]);
  if (!inst) throw notFound([id]);
  const text = fleet.consoleOutput(inst);
  return (
    leaf("instanceId", id) +
    leaf("timestamp", new Date().toISOString()) +
    (text ? leaf("output", Buffer.from(text, "utf8").toString("base64")) : "")
  );
}

function createTags({ fleet }: Ec2Deps, params: QueryParams): string {
  const resources = params.list("ResourceId");
  if (resources.length === 0) {
    throw new CloudError("MissingParameter", "The request must contain the parameter ResourceId");
  }
  for (const id of resources) {
    if (!id.startsWith("i-")) throw new CloudError("InvalidID", `The ID '${id}' is not valid`);
  }
  const ids = instanceIds(params, "ResourceId");
  const tags = parseTags(params, "Tag");
  const instances = requireExisting(fleet, ids);
  for (const inst of instances) {
    const keys = new Set([...inst.tags.map((t) => t.key), ...tags.map((t) => t.key)]);
    if (keys.size > maxTagsPerResource) {
      throw new CloudError(
        "TagLimitExceeded",
        "The maximum number of Tags for a resource has been reached.",
      );
    }
  }
  fleet.createTags(ids, tags);
  return leaf("return", true);
}
