/**
 * A raw HTTP/1.1 download client on node:net whose speed is set by how fast it reads: while it is
 * over its budget it pause()s the socket, so the kernel's receive buffer fills, the sender's TCP
 * window closes and the backpressure reaches whoever writes to it (the proxy under test). Used by
 * bench/memory.ts's slow-reader scenario. `Connection: close`: the body ends with the connection.
 */
import { connect } from "node:net";

export interface DownloadResult {
  status: number;
  /** Bytes received (head and body). */
  bytes: number;
  ms: number;
  /** Bytes received when the slow phase ended (all of them for a fast client). */
  bytesAtSlowEnd: number;
}

/**
 * GET http://host:port/path. `slow`: read at most `bytesPerSec` (a budget growing linearly from 0;
 * the chunk that crosses it is kept, so the real rate is a little higher: the result says) for
 * `forMs`, then as fast as possible. `onSlowEnd` runs when the slow phase ends (e.g. to read the
 * proxy's RSS and the upstream's counters at that moment).
 */
export function download(o: { host: string; port: number; path: string; slow?: { bytesPerSec: number; forMs: number }; onSlowEnd?: () => void; timeoutMs?: number }): Promise<DownloadResult> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const sock = connect({ host: o.host, port: o.port });
    let bytes = 0;
    let status = 0;
    let head = "";
    let slow = o.slow !== undefined;
    let bytesAtSlowEnd = -1;
    const budget = () => o.slow!.bytesPerSec * ((performance.now() - t0) / 1000);
    const endSlow = () => {
      if (!slow) return;
      slow = false;
      bytesAtSlowEnd = bytes;
      o.onSlowEnd?.();
      sock.resume();
    };
    const ticker = o.slow === undefined ? undefined : setInterval(() => {
      if (!slow) return;
      if (performance.now() - t0 >= o.slow!.forMs) endSlow();
      else if (bytes < budget()) sock.resume();
    }, 20);
    const guard = setTimeout(() => sock.destroy(new Error(`download not done after ${o.timeoutMs ?? 300_000} ms`)), o.timeoutMs ?? 300_000);
    const finish = (err?: Error) => {
      clearInterval(ticker);
      clearTimeout(guard);
      if (err) reject(err);
      else resolve({ status, bytes, ms: performance.now() - t0, bytesAtSlowEnd: bytesAtSlowEnd < 0 ? bytes : bytesAtSlowEnd });
    };
    sock.on("connect", () => sock.write(`GET ${o.path} HTTP/1.1\r\nHost: ${o.host}:${o.port}\r\nConnection: close\r\n\r\n`));
    sock.on("data", (chunk: Buffer) => {
      bytes += chunk.byteLength;
      if (status === 0 && head.length < 256) {
        head += chunk.subarray(0, 256).toString("latin1");
        const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
        if (m) status = Number(m[1]);
      }
      if (slow && bytes >= budget()) sock.pause();
    });
    sock.on("error", (e) => finish(e));
    sock.on("close", () => finish());
  });
}
