import { readFileSync } from "node:fs";
import { join } from "node:path";
import { UsageError } from "./io.js";

/** The port `npm start` serves on when PORT is unset (lib/config.ts). */
export const LOCAL_PORT = 8787;
const LOCAL_URL = `http://127.0.0.1:${LOCAL_PORT}`;

export interface Target {
  url: string;
  token: string;
  /** Where the token came from, for the one line a missing or wrong token prints. */
  tokenFrom: "--token" | "WCP_TOKEN" | ".data/admin-token";
}

const isLoopback = (url: URL) =>
  ["127.0.0.1", "localhost", "[::1]", "::1"].includes(url.hostname.toLowerCase());

/**
 * Which API to talk to and with which token: `--url`/`WCP_URL` (default: `npm start`'s local
 * URL), `--token`/`WCP_TOKEN`, else — only for a loopback URL, where `npm start` runs — the
 * admin token `npm start` keeps in `.data/admin-token` under `cwd`. A remote URL never gets the
 * local token: it would hand a secret to another host.
 */
export function resolveTarget(
  flags: { url?: string; token?: string },
  env: Record<string, string | undefined>,
  cwd: string,
): Target {
  const raw = flags.url ?? (env.WCP_URL || undefined) ?? LOCAL_URL;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`WCP_URL (or --url) is not a URL: "${raw.slice(0, 200)}".`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new UsageError("WCP_URL (or --url) must be an http:// or https:// URL.");
  }
  const base = url.toString().replace(/\/+$/, "");
  if (flags.token) return { url: base, token: flags.token, tokenFrom: "--token" };
  if (env.WCP_TOKEN) return { url: base, token: env.WCP_TOKEN, tokenFrom: "WCP_TOKEN" };
  if (isLoopback(url)) {
    const file = join(cwd, ".data", "admin-token");
    try {
      const token = readFileSync(file, "utf8").trim();
      if (token) return { url: base, token, tokenFrom: ".data/admin-token" };
    } catch {
      // No local token: the hint below says what to set.
    }
  }
  throw new UsageError(
    isLoopback(url)
      ? "No token: set WCP_TOKEN (or --token), or run wcp where `npm start` keeps .data/admin-token."
      : "No token: set WCP_TOKEN (or --token) for a remote WCP_URL.",
  );
}
