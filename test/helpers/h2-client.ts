/** HTTP/2 clients for tests: node:http2 sessions (h2c or h2 over TLS), curl --http2 and nghttp. */
import http2, { type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from "node:http2";

export interface H2Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  trailers: IncomingHttpHeaders | undefined;
  /** RST_STREAM code when the stream was reset (0 when it ended cleanly). */
  rstCode: number;
}

/** A session to `origin` (`http://` = h2c prior knowledge, `https://` = TLS with ALPN h2). */
export function h2Session(origin: string, tls: { ca?: string; cert?: string; key?: string; servername?: string } = {}): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(origin, { ...tls, rejectUnauthorized: tls.ca !== undefined });
    session.once("connect", () => resolve(session));
    session.once("error", reject);
    session.on("error", () => {});
  });
}

/** One request on `session`; resolves with the whole answer (or what came before a reset). */
export function h2Request(session: ClientHttp2Session, headers: OutgoingHttpHeaders, body?: string | Uint8Array, timeoutMs = 5000): Promise<H2Answer> {
  return new Promise((resolve) => {
    const stream = session.request({ ":method": body === undefined ? "GET" : "POST", ...headers }, { endStream: body === undefined });
    const chunks: Buffer[] = [];
    let head: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders | undefined;
    const timer = setTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL), timeoutMs);
    stream.on("response", (h) => (head = h));
    stream.on("trailers", (t) => (trailers = t));
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("error", () => {});
    stream.on("close", () => {
      clearTimeout(timer);
      resolve({ status: Number(head[":status"] ?? 0), headers: head, body: Buffer.concat(chunks), trailers, rstCode: stream.rstCode ?? 0 });
    });
    if (body !== undefined) stream.end(body);
  });
}

/** A one-off request on its own session. */
export async function h2Fetch(origin: string, headers: OutgoingHttpHeaders, body?: string | Uint8Array, tls?: { ca?: string; cert?: string; key?: string; servername?: string }): Promise<H2Answer> {
  const session = await h2Session(origin, tls);
  try {
    return await h2Request(session, { ":path": "/", ...headers }, body);
  } finally {
    session.close();
  }
}

export interface CurlAnswer {
  /** "HTTP/2", "HTTP/1.1". */
  version: string;
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** curl with `args` (e.g. --http2-prior-knowledge, -k): the last response's version, status, headers and body. */
export async function curl(url: string, args: string[]): Promise<CurlAnswer> {
  const proc = Bun.spawn(["curl", "-s", "-i", "--max-time", "5", ...args, url], { stdout: "pipe", stderr: "pipe" });
  const out = await new Response(proc.stdout).text();
  await proc.exited;
  const split = out.indexOf("\r\n\r\n");
  const head = split === -1 ? out : out.slice(0, split);
  const [statusLine = "", ...lines] = head.split("\r\n");
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(":");
    if (i > 0) headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  const [version = "", status = "0"] = statusLine.split(" ");
  return { version, status: Number(status), headers, body: split === -1 ? "" : out.slice(split + 4) };
}
