import { CloudError } from "./errors.js";

/**
 * The EC2 Query protocol's flattened parameters (`Filter.1.Value.2=x`) read back into lists and
 * structures. The SDK numbers list members from 1; gaps are tolerated and order follows the index.
 */
export class QueryParams {
  constructor(private readonly params: Map<string, string>) {}

  static parse(body: string): QueryParams {
    return new QueryParams(new Map(new URLSearchParams(body)));
  }

  get(name: string): string | undefined {
    return this.params.get(name);
  }

  has(name: string): boolean {
    return this.params.has(name);
  }

  /** Members of `Name.N`. */
  list(name: string): string[] {
    return this.#indexes(name).map((i) => this.params.get(`${name}.${i}`) ?? "");
  }

  /** Structures of `Name.N.Field…`, each as its own QueryParams. */
  structs(name: string): QueryParams[] {
    return this.#indexes(name).map((i) => this.sub(`${name}.${i}`));
  }

  /** The parameters under `Prefix.`, prefix removed. */
  sub(prefix: string): QueryParams {
    const out = new Map<string, string>();
    const p = `${prefix}.`;
    for (const [k, v] of this.params) if (k.startsWith(p)) out.set(k.slice(p.length), v);
    return new QueryParams(out);
  }

  /** Canonical text of every parameter but the excluded ones: equal requests, equal text. */
  fingerprint(exclude: string[]): string {
    return JSON.stringify(
      [...this.params].filter(([k]) => !exclude.includes(k)).sort(([a], [b]) => (a < b ? -1 : 1)),
    );
  }

  #indexes(name: string): number[] {
    const re = new RegExp(`^${name.replaceAll(".", "\\.")}\\.(\\d+)(?:\\.|$)`);
    const seen = new Set<number>();
    for (const k of this.params.keys()) {
      const m = re.exec(k);
      if (m?.[1]) seen.add(Number(m[1]));
    }
    return [...seen].sort((a, b) => a - b);
  }
}

/** A Query API boolean: absent, or exactly "true" / "false" as the SDK sends it. */
export function booleanParam(params: QueryParams, name: string): boolean | undefined {
  const raw = params.get(name);
  if (raw === undefined) return undefined;
  if (raw !== "true" && raw !== "false") {
    throw new CloudError(
      "InvalidParameterValue",
      `Value (${raw}) for parameter ${name} is invalid. Expecting true or false.`,
    );
  }
  return raw === "true";
}
