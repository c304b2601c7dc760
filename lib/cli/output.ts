import yoctoSpinner from "yocto-spinner";
import type { WcpApiError } from "../client/client.js";
import type { CliIo } from "./io.js";

/**
 * How a command answers: `--json` prints one JSON document on stdout (and a failure as the
 * API's error body), otherwise short human lines; a spinner with the elapsed time runs while
 * it waits, only on a terminal and never with `--json`.
 */
export class Output {
  constructor(
    private readonly io: CliIo,
    readonly json: boolean,
  ) {}

  /** The command's result: `value` as JSON, or the human text. */
  result(value: unknown, human: () => string): void {
    if (this.json) this.io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
    else {
      const text = human();
      if (text) this.io.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
    }
  }

  /** A progress line (stderr, human mode only). */
  note(text: string): void {
    if (!this.json) this.io.stderr.write(`${text}\n`);
  }

  /** The one report of a failed call: its code first, so a reader (or grep) finds it. */
  failure(err: WcpApiError): void {
    if (this.json) {
      const body = {
        error: {
          code: err.code,
          message: err.message,
          ...(err.hint !== undefined && { hint: err.hint }),
          ...(err.fields.length > 0 && { fields: err.fields }),
          ...(err.requestId !== undefined && { requestId: err.requestId }),
        },
      };
      this.io.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
      return;
    }
    const lines = [`error ${err.code}: ${err.message}`];
    for (const f of err.fields) lines.push(`  ${f.path}: ${f.message}`);
    if (err.hint) lines.push(`hint: ${err.hint}`);
    this.io.stderr.write(`${lines.join("\n")}\n`);
  }

  /** Runs `work` under a spinner that shows `text` and the seconds it has taken so far. */
  async waiting<T>(text: string, work: () => Promise<T>): Promise<T> {
    const tty = (this.io.stderr as { isTTY?: boolean }).isTTY === true;
    if (this.json || !tty) return work();
    const started = Date.now();
    const label = () => `${text} (${Math.floor((Date.now() - started) / 1000)} s)`;
    const spinner = yoctoSpinner({ text: label(), stream: this.io.stderr, handleSignals: false });
    spinner.start();
    const tick = setInterval(() => {
      spinner.text = label();
    }, 1000);
    try {
      const value = await work();
      spinner.success(label());
      return value;
    } catch (err) {
      spinner.error(label());
      throw err;
    } finally {
      clearInterval(tick);
    }
  }
}

/** Columns padded to their widest cell, for lists. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}
