/** Raw HTTP/1.1 over a TCP socket, for requests fetch refuses to send (smuggling, bad targets, huge headers). */
import { connect } from "node:net";

export interface RawResponse {
  status: number;
  head: string;
  headers: Record<string, string>;
  body: string;
  /** Everything received, verbatim. */
  raw: string;
}

export function parseRaw(raw: string): RawResponse {
  const end = raw.indexOf("\r\n\r\n");
  const head = end === -1 ? raw : raw.slice(0, end);
  const [statusLine, ...lines] = head.split("\r\n");
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(":");
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return { status: Number(statusLine?.split(" ")[1] ?? 0), head, headers, body: end === -1 ? "" : raw.slice(end + 4), raw };
}

/** Sends `bytes`, collects until the peer closes or `quietMs` passes without data (bounded by `timeoutMs`). */
export function rawRequest(port: number, bytes: string | Uint8Array, opts: { quietMs?: number; timeoutMs?: number } = {}): Promise<RawResponse> {
  const { quietMs = 300, timeoutMs = 5000 } = opts;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host: "127.0.0.1", port });
    let quiet: Timer | undefined;
    const done = () => {
      clearTimeout(quiet);
      clearTimeout(hard);
      socket.destroy();
      resolve(parseRaw(Buffer.concat(chunks).toString("latin1")));
    };
    const hard = setTimeout(done, timeoutMs);
    socket.on("connect", () => socket.write(bytes));
    socket.on("data", (d) => {
      chunks.push(Buffer.from(d));
      clearTimeout(quiet);
      quiet = setTimeout(done, quietMs);
    });
    socket.on("close", done);
    socket.on("error", done);
  });
}
