import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { classifyAddress, mayDeliverTo } from "./address.js";

/** Longest webhook URL accepted; a receiver's URL, not a place for data. */
export const MAX_WEBHOOK_URL_LENGTH = 2048;

/** Resolves a host name to its addresses (dns.lookup in production; tests pass their own). */
export type Resolve = (hostname: string) => Promise<string[]>;

export const systemResolve: Resolve = async (hostname) =>
  (await lookup(hostname, { all: true, verbatim: true })).map((a) => a.address);

/** Why a URL or the address it leads to is refused; safe to show (it names no secret). */
export type TargetProblem = { ok: false; reason: string };

/** The host of a URL as an address when it is a literal one (`[::1]` → `::1`), else null. */
function literalAddress(hostname: string): string | null {
  const bare = hostname.startsWith("[") ? hostname.slice(1, -1) : hostname;
  return isIP(bare) === 0 ? null : bare;
}

/**
 * Checks a webhook URL's form, at registration and again before each send: `https://` (or
 * `http://` only when private targets are allowed, for development), no credentials in it (they
 * would sit in the database and in every listing), a literal address only if it may be sent to.
 * A host name is judged by what it resolves to, at send time ({@link resolveTarget}).
 */
export function checkWebhookUrl(
  raw: string,
  allowPrivate: boolean,
): { ok: true; url: URL } | TargetProblem {
  if (raw.length > MAX_WEBHOOK_URL_LENGTH) {
    return { ok: false, reason: `longer than ${MAX_WEBHOOK_URL_LENGTH} characters` };
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { ok: false, reason: "not a URL" };
  }
  if (url.protocol !== "https:" && !(url.protocol === "http:" && allowPrivate)) {
    return {
      ok: false,
      reason: allowPrivate ? "must be http:// or https://" : "must be https://",
    };
  }
  if (url.username !== "" || url.password !== "") {
    return { ok: false, reason: "must not carry credentials" };
  }
  const literal = literalAddress(url.hostname);
  if (literal !== null && !mayDeliverTo(literal, allowPrivate)) {
    return { ok: false, reason: `${classifyAddress(literal)} address not allowed` };
  }
  return { ok: true, url };
}

/**
 * The one address a send connects to, decided at send time: the host's addresses are resolved
 * once and every one of them must be allowed (a name that also resolves to a private address is
 * refused, whichever one a client would pick); the connection then goes to the first, with no
 * second lookup, so a DNS answer that changes between check and connect (rebinding) is never
 * followed.
 */
export async function resolveTarget(
  url: URL,
  allowPrivate: boolean,
  resolve: Resolve,
): Promise<{ ok: true; address: string; family: 4 | 6 } | TargetProblem> {
  const literal = literalAddress(url.hostname);
  let addresses: string[];
  if (literal !== null) addresses = [literal];
  else {
    try {
      addresses = await resolve(url.hostname);
    } catch {
      return { ok: false, reason: `cannot resolve ${url.hostname}` };
    }
  }
  if (addresses.length === 0) return { ok: false, reason: `cannot resolve ${url.hostname}` };
  for (const address of addresses) {
    if (!mayDeliverTo(address, allowPrivate)) {
      return {
        ok: false,
        reason: `${url.hostname} resolves to a ${classifyAddress(address)} address, not allowed`,
      };
    }
  }
  const [first] = addresses as [string, ...string[]];
  return { ok: true, address: first, family: isIP(first) === 6 ? 6 : 4 };
}
