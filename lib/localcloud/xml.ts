/** Minimal XML writing for the EC2 and S3 wire formats: elements built as escaped strings. */

export function escapeXml(text: string): string {
  return text
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&apos;");
}

/** `<name>children</name>`; children are already XML. */
export function el(name: string, ...children: string[]): string {
  return `<${name}>${children.join("")}</${name}>`;
}

/** `<name>value</name>` with the value escaped; nothing at all when the value is undefined. */
export function leaf(name: string, value: string | number | boolean | undefined): string {
  return value === undefined ? "" : `<${name}>${escapeXml(String(value))}</${name}>`;
}

/** An EC2 list: `<name><item>…</item>…</name>`; omitted when empty, as EC2 does for most sets. */
export function itemSet(name: string, items: string[]): string {
  return items.length === 0 ? "" : el(name, ...items.map((i) => el("item", i)));
}
