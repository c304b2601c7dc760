import { execFile } from "node:child_process";
import { promisify } from "node:util";
import {
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clientConfig, failure, startTestCloud, type TestCloud } from "./harness.js";

// Signature Version 4 as S3 checks it (AmazonS3/latest/API/sigv4-query-string-auth.html and
// …/sig-v4-header-based-auth.html): the real presigner's URLs, fetched by plain fetch and curl.

const run = promisify(execFile);
const bucket = "signed";
const key = "plugins/a b+c.tgz";

let t: TestCloud;
const extraClients: S3Client[] = [];

beforeAll(async () => {
  t = await startTestCloud({ buckets: [bucket] });
  await t.s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: "payload" }));
});

afterAll(async () => {
  for (const c of extraClients) c.destroy();
  await t.close();
});

function client(
  accessKeyId: string,
  secretAccessKey: string,
  extra: ConstructorParameters<typeof S3Client>[0] = {},
): S3Client {
  const c = new S3Client({
    ...clientConfig(t.cloud),
    credentials: { accessKeyId, secretAccessKey },
    forcePathStyle: true,
    maxAttempts: 1,
    ...extra,
  });
  extraClients.push(c);
  return c;
}

type HttpRequest = Parameters<NodeHttpHandler["handle"]>[0];

/** The harness key, with `change` applied to each request after it was signed. */
function tamperingClient(change: (req: HttpRequest) => void): S3Client {
  const inner = new NodeHttpHandler();
  return client("test", "test", {
    // No flexible checksum, so only the signature and the signed payload hash guard the body.
    requestChecksumCalculation: "WHEN_REQUIRED",
    requestHandler: {
      handle: (req: HttpRequest, opts?: { abortSignal?: AbortSignal }) => {
        change(req);
        return inner.handle(req, opts);
      },
      destroy: () => inner.destroy(),
    } as unknown as NodeHttpHandler,
  });
}

const presignGet = (s3: S3Client, opts: { expiresIn?: number; signingDate?: Date } = {}) =>
  getSignedUrl(s3, new GetObjectCommand({ Bucket: bucket, Key: key }), {
    expiresIn: opts.expiresIn ?? 60,
    ...(opts.signingDate && { signingDate: opts.signingDate }),
  });

/** The S3 error code in an XML error body. */
async function codeOf(res: Response): Promise<string | undefined> {
  return /<Code>([^<]+)<\/Code>/.exec(await res.text())?.[1];
}

/** One character of `value` changed, staying in its alphabet. */
function flip(value: string): string {
  const last = value.at(-1) ?? "0";
  const swapped = last === "0" ? "1" : last === "a" ? "b" : last === "1" ? "2" : "0";
  return `${value.slice(0, -1)}${swapped}`;
}

describe("presigned GET", () => {
  it("serves the real presigner's URL to plain fetch and to curl", async () => {
    const url = await presignGet(t.s3);

    const res = await fetch(url);
    const { stdout } = await run("curl", ["-sS", "-w", "\n%{http_code}", url]);

    expect(res.status).toBe(200);
    expect(await res.text()).toBe("payload");
    expect(stdout).toBe("payload\n200");
  });

  it("serves a presigned HEAD", async () => {
    const url = await getSignedUrl(t.s3, new HeadObjectCommand({ Bucket: bucket, Key: key }), {
      expiresIn: 60,
    });

    const res = await fetch(url, { method: "HEAD" });

    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBe("7");
  });

  it("refuses the URL with one character of the key changed (SignatureDoesNotMatch)", async () => {
    const url = new URL(await presignGet(t.s3));
    url.pathname = url.pathname.replace("a%20b", "a%20c");

    const res = await fetch(url);

    expect(res.status).toBe(403);
    expect(await codeOf(res)).toBe("SignatureDoesNotMatch");
  });

  it("refuses the URL with the expiry or the signature changed (SignatureDoesNotMatch)", async () => {
    const url = await presignGet(t.s3, { expiresIn: 60 });
    const longer = new URL(url);
    longer.searchParams.set("X-Amz-Expires", "61");
    const forged = new URL(url);
    forged.searchParams.set(
      "X-Amz-Signature",
      flip(forged.searchParams.get("X-Amz-Signature") ?? ""),
    );
    const extra = new URL(url);
    extra.searchParams.set("response-content-type", "text/html");

    for (const tampered of [longer, forged, extra]) {
      const res = await fetch(tampered);
      expect(res.status).toBe(403);
      expect(await codeOf(res)).toBe("SignatureDoesNotMatch");
    }
    // The untouched URL still works: the refusals are about the change.
    expect((await fetch(url)).status).toBe(200);
  });

  it("refuses a URL signed with another secret for a known key (SignatureDoesNotMatch)", async () => {
    const url = await presignGet(client("test", "not-the-secret"));

    const res = await fetch(url);

    expect(res.status).toBe(403);
    expect(await codeOf(res)).toBe("SignatureDoesNotMatch");
  });

  it("refuses a URL signed with an unknown access key (InvalidAccessKeyId)", async () => {
    const url = await presignGet(client("AKIAUNKNOWN", "test"));

    const res = await fetch(url);

    expect(res.status).toBe(403);
    const body = await res.text();
    expect(body).toContain("<Code>InvalidAccessKeyId</Code>");
    expect(body).toContain("<AWSAccessKeyId>AKIAUNKNOWN</AWSAccessKeyId>");
  });

  it("refuses an expired URL with 403 AccessDenied, Request has expired", async () => {
    const url = await presignGet(t.s3, {
      expiresIn: 60,
      signingDate: new Date(Date.now() - 120_000),
    });

    const res = await fetch(url);

    expect(res.status).toBe(403);
    const body = await res.text();
    expect(body).toContain("<Code>AccessDenied</Code>");
    expect(body).toContain("<Message>Request has expired</Message>");
  });

  it("answers with the Content-Disposition the signed URL asks for", async () => {
    const url = await getSignedUrl(
      t.s3,
      new GetObjectCommand({
        Bucket: bucket,
        Key: key,
        ResponseContentDisposition: 'attachment; filename="a b.tgz"',
      }),
      { expiresIn: 60 },
    );

    const res = await fetch(url);

    expect(res.status).toBe(200);
    expect(res.headers.get("content-disposition")).toBe('attachment; filename="a b.tgz"');
  });
});

describe("header-signed and unsigned requests", () => {
  it("refuses an SDK call signed with the wrong secret or an unknown key", async () => {
    const wrongSecret = await failure(
      client("test", "nope").send(new GetObjectCommand({ Bucket: bucket, Key: key })),
    );
    const unknownKey = await failure(
      client("nobody", "test").send(new GetObjectCommand({ Bucket: bucket, Key: key })),
    );

    expect(wrongSecret.name).toBe("SignatureDoesNotMatch");
    expect(wrongSecret.$metadata?.httpStatusCode).toBe(403);
    expect(unknownKey.name).toBe("InvalidAccessKeyId");
    expect(unknownKey.$metadata?.httpStatusCode).toBe(403);
  });

  it("refuses a body changed after signing (XAmzContentSHA256Mismatch) and stores nothing", async () => {
    const s3 = tamperingClient((req) => {
      req.body = "jello";
    });

    const err = await failure(
      s3.send(new PutObjectCommand({ Bucket: bucket, Key: "swapped", Body: "hello" })),
    );
    const stored = await failure(
      t.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: "swapped" })),
    );

    expect(err.name).toBe("XAmzContentSHA256Mismatch");
    expect(err.$metadata?.httpStatusCode).toBe(400);
    expect(stored.$metadata?.httpStatusCode).toBe(404);
  });

  it("refuses a signed header changed after signing (SignatureDoesNotMatch)", async () => {
    const s3 = tamperingClient((req) => {
      req.headers["content-type"] = "text/html";
    });

    const err = await failure(
      s3.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: "typed",
          Body: "x",
          ContentType: "text/plain",
        }),
      ),
    );

    expect(err.name).toBe("SignatureDoesNotMatch");
  });

  it("refuses an x-amz-* header added after signing (AccessDenied, headers not signed)", async () => {
    const s3 = tamperingClient((req) => {
      req.headers["x-amz-meta-owner"] = "mallory";
    });

    const err = await failure(
      s3.send(new PutObjectCommand({ Bucket: bucket, Key: "meta", Body: "x" })),
    );

    expect(err.name).toBe("AccessDenied");
    expect(err.message).toBe("There were headers present in the request which were not signed");
  });

  it("refuses a request signed 20 minutes off the server's clock (RequestTimeTooSkewed)", async () => {
    // Beyond the 15 minutes S3 allows (AmazonS3/latest/API/sig-v4-authenticating-requests.html).
    const s3 = client("test", "test", { systemClockOffset: -20 * 60 * 1000 });

    const err = await failure(s3.send(new GetObjectCommand({ Bucket: bucket, Key: key })));

    expect(err.name).toBe("RequestTimeTooSkewed");
    expect(err.$metadata?.httpStatusCode).toBe(403);
  });

  it("refuses an anonymous request with 403 AccessDenied, as a private bucket does", async () => {
    const res = await fetch(`${t.cloud.url}/${bucket}/${encodeURIComponent(key)}`);

    expect(res.status).toBe(403);
    expect(await codeOf(res)).toBe("AccessDenied");
  });

  it("refuses a Signature Version 2 URL (InvalidRequest)", async () => {
    const res = await fetch(
      `${t.cloud.url}/${bucket}/x?AWSAccessKeyId=test&Signature=abc%3D&Expires=9999999999`,
    );

    expect(res.status).toBe(400);
    expect(await codeOf(res)).toBe("InvalidRequest");
  });

  it("takes the secret from the credentials option, not a fixed one", async () => {
    // Prepare: a second cloud that knows only another key.
    const other = await startTestCloud({ credentials: { ops: "s3cr3t" }, buckets: ["b-ops"] });
    try {
      const ops = new S3Client({
        ...clientConfig(other.cloud),
        credentials: { accessKeyId: "ops", secretAccessKey: "s3cr3t" },
        forcePathStyle: true,
      });
      extraClients.push(ops);

      // Act
      await ops.send(new PutObjectCommand({ Bucket: "b-ops", Key: "k", Body: "v" }));
      const harnessKey = await failure(
        other.s3.send(new GetObjectCommand({ Bucket: "b-ops", Key: "k" })),
      );
      const url = await getSignedUrl(ops, new GetObjectCommand({ Bucket: "b-ops", Key: "k" }), {
        expiresIn: 60,
      });

      // Assess
      expect(harnessKey.name).toBe("InvalidAccessKeyId");
      expect(await (await fetch(url)).text()).toBe("v");
    } finally {
      await other.close();
    }
  });
});
