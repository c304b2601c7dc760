import { createWriteStream, type WriteStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Readable, Transform, type TransformCallback, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { Parser, type ReadEntry } from "tar";

/**
 * Unpacks an untrusted gzipped tarball into a directory, under caps that hold while streaming.
 *
 * The `tar` package parses entries; this module decides what each entry may be and writes files
 * itself, so tar never writes anything (no symlink, no path outside the directory, no mode or
 * owner from the archive). Decompression is done here with zlib rather than by the parser, so
 * the inflated byte count is capped before anything is buffered: a gzip bomb is stopped after
 * the cap, never inflated in full.
 */

export interface ExtractLimits {
  /** Sum of file sizes (`PLUGIN_MAX_BYTES`). */
  maxBytes: number;
  /** Files plus directories (`PLUGIN_MAX_FILES`). */
  maxEntries: number;
}

export type ArchiveRejection = {
  kind: "rejected";
  code: "PLUGIN_TOO_LARGE" | "INVALID_ARCHIVE";
  message: string;
};

export type ExtractResult =
  | { kind: "extracted"; files: number; directories: number; bytes: number }
  | ArchiveRejection
  /** Reading the source itself failed (network, deadline); the caller classifies it. */
  | { kind: "source-error"; error: unknown };

// Per entry a tar stream carries a 512-byte header, padding up to 511 bytes and possibly a pax
// header (another 512 plus its padded body); 2 KiB covers that. The end-of-archive marker and
// the blocking factor add at most 10 KiB.
const ENTRY_OVERHEAD = 2048;
const TRAILER = 10 * 1024;
// Pax headers hold a path or two; the parser's default (1 MiB each) is room for abuse.
const MAX_META_ENTRY = 64 * 1024;

/** Upper bounds on the compressed and the inflated tar stream implied by the caps. */
export function streamCaps(limits: ExtractLimits): { compressed: number; inflated: number } {
  const inflated = limits.maxBytes + (limits.maxEntries + 2) * ENTRY_OVERHEAD + TRAILER;
  // Stored (incompressible) data grows by well under 1% in gzip; the per-entry margin covers it.
  return { compressed: inflated, inflated };
}

class CapExceeded extends Error {
  override name = "CapExceeded";
}
class SourceReadError extends Error {
  override name = "SourceReadError";
}
/** Ends the pipeline early without an error: the archive is complete or already rejected. */
class StopReading extends Error {
  override name = "StopReading";
}

/** Counts bytes through a stream and fails the pipeline once they exceed `cap`. */
function byteCap(cap: number, what: string): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      seen += chunk.length;
      if (seen > cap) cb(new CapExceeded(`${what} exceed ${cap} bytes`));
      else cb(null, chunk);
    },
  });
}

async function* tagSourceErrors(body: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  try {
    for await (const chunk of body) yield chunk;
  } catch (err) {
    throw new SourceReadError("reading the source failed", { cause: err });
  }
}

// Matching control characters is the point here: a newline or escape in a path is refused.
// biome-ignore lint/suspicious/noControlCharactersInRegex: see above
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * The safe relative path of an entry, or a reason it is refused: absolute paths, drive letters,
 * backslashes, control characters and `..` segments are refused; `.` and empty segments
 * (`./a//b/`) are dropped. Returns "" for the archive root itself.
 */
export function safeEntryPath(
  raw: string,
): { ok: true; path: string } | { ok: false; why: string } {
  if (raw.startsWith("/") || /^[A-Za-z]:/.test(raw)) return { ok: false, why: "absolute path" };
  if (raw.includes("\\")) return { ok: false, why: "backslash in path" };
  if (CONTROL.test(raw)) return { ok: false, why: "control character in path" };
  const segments = raw.split("/").filter((s) => s !== "" && s !== ".");
  if (segments.includes("..")) return { ok: false, why: "'..' in path" };
  if (segments.some((s) => Buffer.byteLength(s) > 255))
    return { ok: false, why: "path segment too long" };
  const path = segments.join("/");
  if (Buffer.byteLength(path) > 1024) return { ok: false, why: "path too long" };
  return { ok: true, path };
}

/** What an archive may hold: regular files and directories, nothing else. */
const FILE_TYPES = new Set(["File", "OldFile", "ContiguousFile"]);
const describeType: Record<string, string> = {
  SymbolicLink: "symlink",
  Link: "hard link",
  CharacterDevice: "character device",
  BlockDevice: "block device",
  FIFO: "FIFO",
};

/** The state of one extraction; the first rejection wins and stops everything. */
class Extraction {
  rejection: ArchiveRejection | null = null;
  sawEof = false;
  files = 0;
  directories = 0;
  bytes = 0;
  #topDir: string | null = null;
  #writing: { stream: WriteStream; done: Promise<void> } | null = null;
  #pending: Promise<void>[] = [];
  #onReject: (() => void)[] = [];

  constructor(
    private readonly dest: string,
    private readonly limits: ExtractLimits,
    private readonly strip: number,
  ) {}

  reject(code: ArchiveRejection["code"], message: string): void {
    if (this.rejection) return;
    this.rejection = { kind: "rejected", code, message };
    for (const f of this.#onReject.splice(0)) f();
  }

  onReject(f: () => void): void {
    if (this.rejection) f();
    else this.#onReject.push(f);
  }

  /** The entry's path inside the plugin after stripping, "" to skip it, null when rejected. */
  #target(entry: ReadEntry): string | null {
    const safe = safeEntryPath(entry.path);
    if (!safe.ok) {
      this.reject("INVALID_ARCHIVE", `Entry "${entry.path.slice(0, 200)}": ${safe.why}.`);
      return null;
    }
    if (this.strip === 0) return safe.path;
    const segments = safe.path.split("/");
    const top = segments[0] ?? "";
    // GitHub tarballs hold exactly one top-level directory (OWNER-REPO-SHA/).
    if (this.#topDir === null) this.#topDir = top;
    if (top !== this.#topDir || (segments.length === 1 && entry.type !== "Directory")) {
      this.reject("INVALID_ARCHIVE", "The archive does not hold exactly one top-level directory.");
      return null;
    }
    return segments.slice(this.strip).join("/");
  }

  /** Handles one entry; the parser emits the next only after this one has ended. */
  onEntry(entry: ReadEntry): void {
    if (this.rejection) {
      entry.resume();
      return;
    }
    const kind = describeType[entry.type];
    if (kind !== undefined) {
      this.reject("INVALID_ARCHIVE", `Entry "${entry.path.slice(0, 200)}" is a ${kind}.`);
      entry.resume();
      return;
    }
    if (!FILE_TYPES.has(entry.type) && entry.type !== "Directory") {
      this.reject(
        "INVALID_ARCHIVE",
        `Entry "${entry.path.slice(0, 200)}" has unsupported type ${entry.type}.`,
      );
      entry.resume();
      return;
    }
    const rel = this.#target(entry);
    if (rel === null || rel === "") {
      entry.resume();
      return;
    }
    if (this.files + this.directories + 1 > this.limits.maxEntries) {
      this.reject(
        "PLUGIN_TOO_LARGE",
        `The plugin has more than ${this.limits.maxEntries} entries.`,
      );
      entry.resume();
      return;
    }
    if (entry.type === "Directory") {
      this.directories++;
      entry.resume();
      this.#track(mkdir(join(this.dest, rel), { recursive: true, mode: 0o755 }).then(() => {}));
      return;
    }
    this.files++;
    // The header's size is what the parser delivers, so the cap holds before a byte is read.
    if (this.bytes + entry.size > this.limits.maxBytes) {
      this.reject("PLUGIN_TOO_LARGE", `The plugin's files exceed ${this.limits.maxBytes} bytes.`);
      entry.resume();
      return;
    }
    this.bytes += entry.size;
    this.#writeFile(entry, join(this.dest, rel), rel);
  }

  #track(p: Promise<void>): void {
    this.#pending.push(
      p.catch((err: unknown) => {
        this.reject("INVALID_ARCHIVE", `Could not place an entry: ${errnoText(err)}.`);
      }),
    );
  }

  #writeFile(entry: ReadEntry, abs: string, rel: string): void {
    const done = (async () => {
      await mkdir(dirname(abs), { recursive: true, mode: 0o755 });
      if (this.rejection) {
        entry.resume();
        return;
      }
      // `wx`: never follow or replace what is there (a duplicate entry, a directory).
      const stream = createWriteStream(abs, { flags: "wx", mode: 0o644 });
      const finished = new Promise<void>((resolve, reject) => {
        let failed: unknown = null;
        // Kept for the stream's life: a destroyed stream may report more than one error.
        stream.on("error", (err) => {
          failed ??= err;
        });
        stream.once("close", () => (failed === null ? resolve() : reject(failed)));
      });
      this.#writing = { stream, done: finished.catch(() => {}) };
      entry.pipe(stream);
      try {
        await finished;
      } finally {
        this.#writing = null;
      }
    })().catch((err: unknown) => {
      entry.resume();
      throw new Error(`"${rel}": ${errnoText(err)}`);
    });
    this.#track(done);
  }

  /** Waits for every write to settle; an unfinished one (after a rejection) is destroyed. */
  async settle(): Promise<void> {
    const writing = this.#writing;
    if (this.rejection && writing) {
      writing.stream.destroy();
      await writing.done;
    }
    await Promise.all(this.#pending);
  }
}

function errnoText(err: unknown): string {
  const code = (err as { code?: string }).code;
  if (code === "EEXIST") return "duplicate or conflicting entry";
  if (code === "ENOTDIR") return "a file is used as a directory";
  if (code === "EISDIR") return "a directory is used as a file";
  return err instanceof Error ? err.message : String(err);
}

/**
 * Unpacks `body` (a gzipped tar stream) into `dest`, an existing empty directory.
 *
 * Contract: caps on compressed bytes, inflated bytes, file bytes (`maxBytes`) and entries
 * (`maxEntries`) are enforced while streaming (→ PLUGIN_TOO_LARGE); symlinks, hard links,
 * devices, FIFOs, unknown entry types, absolute paths, `..`, duplicate or conflicting entries,
 * nested compression and anything that is not a gzipped tar → INVALID_ARCHIVE. With
 * `stripComponents: 1` every entry must sit under one top-level directory, which is removed.
 * Files are written 0644 and directories 0755, whatever the archive says. Reading stops at the
 * end-of-archive marker, so trailing data is never inflated. On rejection `dest` may hold partial
 * content: the caller removes it.
 */
export async function extractTarGz(
  body: AsyncIterable<Uint8Array>,
  dest: string,
  limits: ExtractLimits,
  opts: { stripComponents?: number } = {},
): Promise<ExtractResult> {
  const ex = new Extraction(dest, limits, opts.stripComponents ?? 0);
  const caps = streamCaps(limits);
  // zstd: false — the parser would otherwise sniff and inflate nested compression itself,
  // outside our caps; nested gzip is refused below for the same reason.
  const parser = new Parser({ strict: true, maxMetaEntrySize: MAX_META_ENTRY, zstd: false });
  parser.on("entry", (entry: ReadEntry) => ex.onEntry(entry));
  parser.on("ignoredEntry", (entry: ReadEntry) => {
    ex.reject(
      "INVALID_ARCHIVE",
      `Entry "${entry.path.slice(0, 200)}" has unsupported type ${entry.type}.`,
    );
  });
  parser.on("error", (err: Error) =>
    ex.reject("INVALID_ARCHIVE", `Not a valid tar archive: ${err.message}.`),
  );
  parser.on("warn", (_code: string, message: string) =>
    ex.reject("INVALID_ARCHIVE", `Not a valid tar archive: ${message}.`),
  );
  parser.on("eof", () => {
    ex.sawEof = true;
  });
  const ended = new Promise<void>((resolve) => {
    parser.once("end", () => resolve());
    ex.onReject(resolve);
  });

  let parserEnded = false;
  const endParser = () => {
    if (parserEnded || ex.rejection) return;
    parserEnded = true;
    parser.end();
  };
  // The first bytes of the inflated stream, held until there are enough to tell nested gzip.
  let head: Buffer | null = Buffer.alloc(0);
  const sink = new Writable({
    write(data: Buffer, _enc, cb) {
      if (ex.rejection || ex.sawEof) {
        cb(new StopReading());
        return;
      }
      let chunk = data;
      if (head !== null) {
        chunk = Buffer.concat([head, data]);
        if (chunk.length < 2) {
          head = chunk;
          cb();
          return;
        }
        head = null;
        if (chunk[0] === 0x1f && chunk[1] === 0x8b) {
          ex.reject("INVALID_ARCHIVE", "Nested compression is not accepted.");
          cb(new StopReading());
          return;
        }
      }
      if (parser.write(chunk)) {
        cb();
        return;
      }
      // Backpressure: an entry's file is still being written. Wait for the parser, or for a
      // rejection (after which the parser may never drain).
      let called = false;
      const go = () => {
        if (called) return;
        called = true;
        parser.off("drain", go);
        cb(ex.rejection ? new StopReading() : undefined);
      };
      parser.on("drain", go);
      ex.onReject(go);
    },
    final(cb) {
      // A stream of fewer than two bytes: let the parser refuse it as the non-archive it is.
      if (head !== null && head.length > 0 && !ex.rejection) parser.write(head);
      endParser();
      cb();
    },
  });

  // A rejection tears the pipeline down at once, even while the source is between chunks.
  const stop = new AbortController();
  ex.onReject(() => stop.abort());
  try {
    await pipeline(
      Readable.from(tagSourceErrors(body)),
      byteCap(caps.compressed, "compressed bytes"),
      createGunzip(),
      byteCap(caps.inflated, "inflated bytes"),
      sink,
      { signal: stop.signal },
    );
  } catch (err) {
    if (err instanceof SourceReadError && !ex.rejection) {
      // Stops the parser and any half-written file; the outcome is the source's failure.
      ex.reject("INVALID_ARCHIVE", "The source failed while it was read.");
      await ex.settle();
      return { kind: "source-error", error: err.cause };
    }
    if (err instanceof CapExceeded) {
      ex.reject("PLUGIN_TOO_LARGE", `The archive's ${err.message}.`);
    } else if (!(err instanceof StopReading) && !ex.rejection) {
      const code = (err as { code?: string }).code ?? "";
      ex.reject(
        "INVALID_ARCHIVE",
        code.startsWith("Z_")
          ? "Not a valid gzip stream."
          : `Could not read the archive: ${errnoText(err)}.`,
      );
    }
  }
  // After the end-of-archive marker the rest of the stream is never read (nor inflated).
  if (ex.sawEof) endParser();
  await ended;
  await ex.settle();
  if (ex.rejection) return ex.rejection;
  if (ex.files === 0)
    return { kind: "rejected", code: "INVALID_ARCHIVE", message: "The archive holds no files." };
  return { kind: "extracted", files: ex.files, directories: ex.directories, bytes: ex.bytes };
}
