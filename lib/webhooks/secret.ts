import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";

/**
 * A webhook's signing secret: minted here, shown once, kept sealed.
 *
 * It cannot be kept as a hash like a token: signing needs the secret itself. It is kept
 * encrypted (AES-256-GCM) under a key derived from `ADMIN_TOKEN`, so whoever reads the database
 * alone (a dump, a backup, a read replica, a leaked query) cannot sign as this deployment; the
 * admin token's holder can already rotate every secret. Changing `ADMIN_TOKEN` makes the sealed
 * secrets unreadable: deliveries then fail with a message saying to rotate the secret.
 */

/** `whsec_` + base64 of 32 random bytes: the Standard Webhooks secret format. */
export function mintSecret(): string {
  return `whsec_${randomBytes(32).toString("base64")}`;
}

/** The sealing key was changed or is missing: the secret cannot be read back. */
export class SecretUnreadableError extends Error {
  override name = "SecretUnreadableError";
  constructor() {
    super("the webhook's secret cannot be unsealed (ADMIN_TOKEN changed?); rotate its secret");
  }
}

const VERSION = "v1";

function keyFrom(adminToken: string | undefined): Buffer {
  if (adminToken === undefined || adminToken === "") throw new SecretUnreadableError();
  return Buffer.from(hkdfSync("sha256", adminToken, "", "wcp webhook secret v1", 32));
}

/** Seals `secret` for storage: `v1:` + base64url(iv ‖ tag ‖ ciphertext). */
export function sealSecret(secret: string, adminToken: string | undefined): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", keyFrom(adminToken), iv);
  const body = Buffer.concat([cipher.update(secret, "utf8"), cipher.final()]);
  return `${VERSION}:${Buffer.concat([iv, cipher.getAuthTag(), body]).toString("base64url")}`;
}

/**
 * The secret a sealed value holds.
 * @throws SecretUnreadableError when it was sealed under another key (or is not a sealed value).
 */
export function openSecret(sealed: string, adminToken: string | undefined): string {
  const [version, packed] = sealed.split(":");
  if (version !== VERSION || packed === undefined) throw new SecretUnreadableError();
  const raw = Buffer.from(packed, "base64url");
  try {
    const decipher = createDecipheriv("aes-256-gcm", keyFrom(adminToken), raw.subarray(0, 12));
    decipher.setAuthTag(raw.subarray(12, 28));
    return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString("utf8");
  } catch {
    throw new SecretUnreadableError();
  }
}
