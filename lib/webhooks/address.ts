import { BlockList, isIP } from "node:net";

/**
 * Which network addresses a webhook may be sent to. A webhook URL is chosen by whoever holds the
 * admin token, but the request leaves from inside this deployment (a Lambda in a VPC, or an
 * operator's machine), so an address that is not a public one could reach what only the
 * deployment can reach: the instance metadata service, a database, an internal admin page.
 */

/**
 * EC2's instance metadata service, IPv4 and IPv6
 * (docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html). Refused even
 * when private targets are allowed: no receiver lives there and it hands out credentials.
 */
const METADATA = new BlockList();
METADATA.addAddress("169.254.169.254", "ipv4");
METADATA.addAddress("fd00:ec2::254", "ipv6");

/**
 * Link-local addresses: the metadata service, the Amazon DNS resolver and Time Sync endpoints
 * live at 169.254.169.x (docs.aws.amazon.com/AWSEC2/latest/UserGuide/using-instance-addressing.html,
 * "Link-local addresses"). Refused even when private targets are allowed.
 */
const LINK_LOCAL = new BlockList();
LINK_LOCAL.addSubnet("169.254.0.0", 16, "ipv4");
LINK_LOCAL.addSubnet("fe80::", 10, "ipv6");

/**
 * Loopback and private ranges: what `WEBHOOK_ALLOW_PRIVATE` opens (a receiver on the developer's
 * machine or on the local network). RFC 1918, RFC 6598 (carrier-grade NAT), RFC 4193 (unique
 * local IPv6), loopback (RFC 1122, RFC 4291).
 */
const PRIVATE = new BlockList();
PRIVATE.addSubnet("127.0.0.0", 8, "ipv4");
PRIVATE.addSubnet("10.0.0.0", 8, "ipv4");
PRIVATE.addSubnet("172.16.0.0", 12, "ipv4");
PRIVATE.addSubnet("192.168.0.0", 16, "ipv4");
PRIVATE.addSubnet("100.64.0.0", 10, "ipv4");
PRIVATE.addAddress("::1", "ipv6");
PRIVATE.addSubnet("fc00::", 7, "ipv6");

/**
 * Everything else that is not a public unicast address, from IANA's special-purpose registries
 * (iana.org/assignments/iana-ipv4-special-registry, iana-ipv6-special-registry): "this network",
 * protocol assignments, documentation and benchmarking ranges, the 6to4 relay, multicast,
 * reserved and broadcast; for IPv6 the unspecified address, IPv4-compatible addresses, NAT64
 * and 6to4 prefixes (they embed an IPv4 address a gateway would reach), Teredo, documentation,
 * discard, site-local and multicast. Never allowed.
 */
const RESERVED = new BlockList();
for (const [net, bits] of [
  ["0.0.0.0", 8],
  ["192.0.0.0", 24],
  ["192.0.2.0", 24],
  ["192.88.99.0", 24],
  ["198.18.0.0", 15],
  ["198.51.100.0", 24],
  ["203.0.113.0", 24],
  ["224.0.0.0", 4],
  ["240.0.0.0", 4],
] as const) {
  RESERVED.addSubnet(net, bits, "ipv4");
}
for (const [net, bits] of [
  ["::", 96],
  ["64:ff9b::", 96],
  ["64:ff9b:1::", 48],
  ["100::", 64],
  ["2001::", 23],
  ["2001:db8::", 32],
  ["2002::", 16],
  ["fec0::", 10],
  ["ff00::", 8],
] as const) {
  RESERVED.addSubnet(net, bits, "ipv6");
}

/** What an address is, as far as sending a webhook to it goes. */
export type AddressClass = "public" | "private" | "link-local" | "metadata" | "reserved";

/**
 * An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, also written `::ffff:7f00:1`) reaches the IPv4
 * address it embeds: it is judged as that address, so `::ffff:127.0.0.1` is loopback.
 */
function unmapped(address: string): { address: string; family: "ipv4" | "ipv6" } {
  const lower = address.toLowerCase();
  const family = isIP(lower) === 4 ? "ipv4" : "ipv6";
  if (family === "ipv4") return { address: lower, family };
  const dotted = /^(?:0{0,4}:){0,4}:?(?:0{0,4}:)?ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  if (dotted?.[1] && isIP(dotted[1]) === 4) return { address: dotted[1], family: "ipv4" };
  const hex = /^(?:0{0,4}:){0,4}:?(?:0{0,4}:)?ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(lower);
  if (hex?.[1] && hex[2]) {
    const hi = Number.parseInt(hex[1], 16);
    const lo = Number.parseInt(hex[2], 16);
    return { address: `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`, family: "ipv4" };
  }
  return { address: lower, family };
}

/**
 * Classifies an IP address (v4 or v6, any spelling Node accepts). Not an IP address at all →
 * `reserved` (refused): only a literal address is ever judged here.
 */
export function classifyAddress(address: string): AddressClass {
  if (isIP(address) === 0) return "reserved";
  const a = unmapped(address);
  // `::ffff:0:0/96` that did not unmap (a malformed embedding) is refused with the reserved.
  if (a.family === "ipv6" && /^(?:0{0,4}:){0,5}:?ffff:/.test(a.address)) return "reserved";
  if (METADATA.check(a.address, a.family)) return "metadata";
  if (LINK_LOCAL.check(a.address, a.family)) return "link-local";
  if (PRIVATE.check(a.address, a.family)) return "private";
  if (RESERVED.check(a.address, a.family)) return "reserved";
  if (a.address === "255.255.255.255") return "reserved";
  return "public";
}

/** Whether a webhook may be sent to `address`; `allowPrivate` opens loopback and private. */
export function mayDeliverTo(address: string, allowPrivate: boolean): boolean {
  const c = classifyAddress(address);
  return c === "public" || (c === "private" && allowPrivate);
}
