import { describe, expect, it } from "vitest";
import { classifyAddress, mayDeliverTo } from "../../../lib/webhooks/address.js";
import { retryDelayMs } from "../../../lib/webhooks/backoff.js";
import { mintSecret, openSecret, sealSecret } from "../../../lib/webhooks/secret.js";
import { checkWebhookUrl } from "../../../lib/webhooks/target.js";

describe("webhook address classes", () => {
  it.each([
    ["127.0.0.1", "private"],
    ["::1", "private"],
    ["::ffff:127.0.0.1", "private"],
    ["::ffff:7f00:1", "private"],
    ["0:0:0:0:0:ffff:7f00:1", "private"],
    ["10.20.30.40", "private"],
    ["172.31.255.255", "private"],
    ["192.168.0.1", "private"],
    ["100.64.0.1", "private"],
    ["100.127.255.255", "private"],
    ["fd12:3456::1", "private"],
    ["169.254.169.254", "metadata"],
    ["::ffff:169.254.169.254", "metadata"],
    ["::ffff:a9fe:a9fe", "metadata"],
    ["fd00:ec2::254", "metadata"],
    ["169.254.169.253", "link-local"],
    ["fe80::1", "link-local"],
    ["0.0.0.0", "reserved"],
    ["::", "reserved"],
    ["224.0.0.251", "reserved"],
    ["255.255.255.255", "reserved"],
    ["64:ff9b::7f00:1", "reserved"],
    ["2002:7f00:1::", "reserved"],
    ["192.0.2.1", "reserved"],
    ["not-an-address", "reserved"],
    ["8.8.8.8", "public"],
    ["172.32.0.1", "public"],
    ["100.128.0.1", "public"],
    ["2606:4700:4700::1111", "public"],
  ])("%s is %s", (address, expected) => {
    expect(classifyAddress(address)).toBe(expected);
  });

  it("allows private only when asked, and never the metadata service or link-local", () => {
    expect(mayDeliverTo("10.0.0.1", false)).toBe(false);
    expect(mayDeliverTo("10.0.0.1", true)).toBe(true);
    expect(mayDeliverTo("169.254.169.254", true)).toBe(false);
    expect(mayDeliverTo("fe80::1", true)).toBe(false);
    expect(mayDeliverTo("8.8.8.8", false)).toBe(true);
  });

  it("checks a URL's form", () => {
    expect(checkWebhookUrl("https://hooks.example.com/x?y=1", false).ok).toBe(true);
    expect(checkWebhookUrl("http://hooks.example.com/", false).ok).toBe(false);
    expect(checkWebhookUrl("http://hooks.example.com/", true).ok).toBe(true);
    expect(checkWebhookUrl("https://a:b@hooks.example.com/", true).ok).toBe(false);
    expect(checkWebhookUrl(`https://example.com/${"a".repeat(2100)}`, false).ok).toBe(false);
    expect(checkWebhookUrl("https://[::ffff:10.0.0.1]/", false).ok).toBe(false);
  });
});

describe("webhook retry delays", () => {
  const s = { firstRetryDelayMs: 1_000, maxRetryDelayMs: 60_000 };
  it("doubles from the first delay, capped, with half of it jittered", () => {
    expect(retryDelayMs(1, s, () => 0)).toBe(500);
    expect(retryDelayMs(1, s, () => 1)).toBe(1_000);
    expect(retryDelayMs(3, s, () => 1)).toBe(4_000);
    expect(retryDelayMs(30, s, () => 1)).toBe(60_000);
    expect(retryDelayMs(30, s, () => 0)).toBe(30_000);
  });
});

describe("webhook secrets", () => {
  it("are sealed so only the same admin token opens them", () => {
    const secret = mintSecret();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const sealed = sealSecret(secret, "admin-token-0123456789");
    expect(sealed).not.toContain(secret.slice(6));
    expect(openSecret(sealed, "admin-token-0123456789")).toBe(secret);
    expect(() => openSecret(sealed, "another-token-0123456789")).toThrow(/rotate/);
  });
});
