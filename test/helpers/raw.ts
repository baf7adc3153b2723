/** Raw HTTP/1.1 over a TCP socket, for requests fetch refuses to send (smuggling, bad targets, huge headers). */
import { connect, type Socket } from "node:net";

export interface RawResponse {
  status: number;
  head: string;
  headers: Record<string, string>;
  body: string;
  /** Everything received, verbatim. */
  raw: string;
  /** How many responses arrived (status lines): a smuggled second request would make it 2. */
  responses: number;
  /** The server closed the connection (rather than the wait ending). */
  closed: boolean;
}

export function parseRaw(raw: string, closed = false): RawResponse {
  const end = raw.indexOf("\r\n\r\n");
  const head = end === -1 ? raw : raw.slice(0, end);
  const [statusLine, ...lines] = head.split("\r\n");
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(":");
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return {
    status: Number(statusLine?.split(" ")[1] ?? 0), head, headers, body: end === -1 ? "" : raw.slice(end + 4), raw,
    responses: raw.match(/(^|\r\n)HTTP\/1\.[01] \d{3}/g)?.length ?? 0, closed,
  };
}

/** Sends `bytes`, collects until the peer closes or `quietMs` passes without data (bounded by `timeoutMs`). */
export function rawRequest(port: number, bytes: string | Uint8Array, opts: { quietMs?: number; timeoutMs?: number } = {}): Promise<RawResponse> {
  const { quietMs = 300, timeoutMs = 5000 } = opts;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host: "127.0.0.1", port });
    let quiet: Timer | undefined;
    let closed = false;
    const done = () => {
      clearTimeout(quiet);
      clearTimeout(hard);
      socket.destroy();
      resolve(parseRaw(Buffer.concat(chunks).toString("latin1"), closed));
    };
    const hard = setTimeout(done, timeoutMs);
    socket.on("connect", () => socket.write(bytes));
    socket.on("data", (d) => {
      chunks.push(Buffer.from(d));
      clearTimeout(quiet);
      quiet = setTimeout(done, quietMs);
    });
    socket.on("end", () => (closed = true));
    socket.on("close", () => {
      closed = true;
      done();
    });
    socket.on("error", done);
  });
}

/**
 * Sends `bytes` in pieces of `size` every `gapMs` (a slowloris client) and resolves when the server
 * closes the connection or `timeoutMs` passes: how long it lasted, how much it sent, what came back.
 * `onTrickle` is called once the first piece is written.
 */
export function dribble(port: number, bytes: string, opts: { size?: number; gapMs: number; timeoutMs: number; first?: string; onTrickle?: () => void }): Promise<{ ms: number; sent: number; closed: boolean; received: string }> {
  const { size = 1, gapMs, timeoutMs, first, onTrickle } = opts;
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    let sent = 0;
    let received = "";
    let started = performance.now();
    let timer: Timer | undefined;
    const finish = (closed: boolean) => {
      clearInterval(timer);
      clearTimeout(hard);
      socket.destroy();
      resolve({ ms: performance.now() - started, sent, closed, received });
    };
    const hard = setTimeout(() => finish(false), timeoutMs);
    const trickle = () => {
      started = performance.now();
      timer = setInterval(() => {
        if (sent >= bytes.length) return;
        const piece = bytes.slice(sent, sent + size);
        sent += piece.length;
        socket.write(piece);
        if (sent === piece.length) onTrickle?.();
      }, gapMs);
    };
    // With `first`, a whole request goes first and the trickle starts once its answer is in (keep-alive).
    socket.on("connect", () => (first === undefined ? trickle() : socket.write(first)));
    socket.on("data", (d) => {
      received += d.toString("latin1");
      if (first !== undefined && timer === undefined) trickle();
    });
    socket.on("close", () => finish(true));
    socket.on("error", () => {});
  });
}

/** Opens `count` TCP connections that send nothing; resolves once all are connected (or failed). */
export async function openIdleSockets(port: number, count: number): Promise<{ open: () => number; closeAll: () => void }> {
  const sockets = await Promise.all(
    Array.from({ length: count }, () => new Promise<Socket | undefined>((resolve) => {
      const s = connect({ host: "127.0.0.1", port });
      s.once("connect", () => resolve(s));
      s.once("error", () => resolve(undefined));
      s.on("error", () => {});
    })),
  );
  const live = sockets.filter((s): s is Socket => s !== undefined);
  return { open: () => live.filter((s) => !s.destroyed && s.readyState === "open").length, closeAll: () => live.forEach((s) => s.destroy()) };
}
