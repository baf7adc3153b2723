/**
 * Raw HTTP/2 frames over a TCP (or TLS) socket, for what real clients refuse to send: malformed
 * header blocks (RFC 9113 §8.2), smuggling attempts, and floods (rapid reset, SETTINGS, PING,
 * CONTINUATION, stream counts). Header blocks are HPACK literals without indexing and without
 * Huffman coding (RFC 7541 §6.2.2), so any byte can be sent; responses are decoded only as far as
 * a test needs: the frames, and the `:status` of a HEADERS frame.
 */
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";

export const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

export const FrameType = { DATA: 0, HEADERS: 1, PRIORITY: 2, RST_STREAM: 3, SETTINGS: 4, PUSH_PROMISE: 5, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const Flag = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8 } as const;

export function frame(type: number, flags: number, stream: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** An HPACK integer with an `prefix`-bit prefix and the high bits `mask` (RFC 7541 §5.1). */
function hpackInt(value: number, prefix: number, mask: number): number[] {
  const max = (1 << prefix) - 1;
  if (value < max) return [mask | value];
  const out = [mask | max];
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return out;
}

function hpackString(text: string | Uint8Array): number[] {
  const bytes = typeof text === "string" ? Buffer.from(text, "latin1") : Buffer.from(text);
  return [...hpackInt(bytes.length, 7, 0), ...bytes];
}

/** A header block of literal fields without indexing, new names (any bytes allowed, in order). */
export function headerBlock(fields: readonly (readonly [string, string])[]): Buffer {
  const out: number[] = [];
  for (const [name, value] of fields) out.push(0x00, ...hpackString(name), ...hpackString(value));
  return Buffer.from(out);
}

export function settingsFrame(settings: Record<number, number> = {}, ack = false): Buffer {
  const entries = Object.entries(settings);
  const payload = Buffer.alloc(entries.length * 6);
  entries.forEach(([id, value], i) => {
    payload.writeUInt16BE(Number(id), i * 6);
    payload.writeUInt32BE(value, i * 6 + 2);
  });
  return frame(FrameType.SETTINGS, ack ? Flag.ACK : 0, 0, payload);
}

export function headersFrame(stream: number, fields: readonly (readonly [string, string])[], opts: { endStream?: boolean; endHeaders?: boolean } = {}): Buffer {
  const flags = (opts.endStream ? Flag.END_STREAM : 0) | (opts.endHeaders === false ? 0 : Flag.END_HEADERS);
  return frame(FrameType.HEADERS, flags, stream, headerBlock(fields));
}

export function dataFrame(stream: number, data: string | Uint8Array, endStream = false): Buffer {
  return frame(FrameType.DATA, endStream ? Flag.END_STREAM : 0, stream, typeof data === "string" ? Buffer.from(data) : data);
}

export function rstFrame(stream: number, code = 8 /* CANCEL */): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(code);
  return frame(FrameType.RST_STREAM, 0, stream, p);
}

export function pingFrame(data = Buffer.alloc(8)): Buffer {
  return frame(FrameType.PING, 0, 0, data);
}

export function windowUpdateFrame(stream: number, increment: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(increment);
  return frame(FrameType.WINDOW_UPDATE, 0, stream, p);
}

/** A GET's header fields, with extra ones appended (or replacing pseudo-headers given in `extra`). */
export function getFields(path: string, authority: string, extra: readonly (readonly [string, string])[] = [], method = "GET"): (readonly [string, string])[] {
  return [[":method", method], [":scheme", "http"], [":authority", authority], [":path", path], ...extra];
}

export interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

/** Huffman codes of the characters a status holds (RFC 7541 Appendix B): digits only. */
const HUFFMAN_DIGITS: [string, string][] = [["00000", "0"], ["00001", "1"], ["00010", "2"], ["011001", "3"], ["011010", "4"], ["011011", "5"], ["011100", "6"], ["011101", "7"], ["011110", "8"], ["011111", "9"]];

function huffmanDigits(bytes: Buffer): string {
  let bits = "";
  for (const b of bytes) bits += b.toString(2).padStart(8, "0");
  let out = "";
  let i = 0;
  while (i < bits.length) {
    const hit = HUFFMAN_DIGITS.find(([code]) => bits.startsWith(code, i));
    if (hit === undefined) break; // padding (EOS prefix)
    out += hit[1];
    i += hit[0].length;
  }
  return out;
}

const STATIC_STATUS: Record<number, number> = { 8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500 };

/** The `:status` of a response HEADERS frame when it is the block's first field (as every server sends it); 0 if unreadable. */
export function statusOf(f: Frame): number {
  let p = f.payload;
  if (f.flags & Flag.PADDED) p = p.subarray(1, p.length - p[0]!);
  if (f.flags & 0x20) p = p.subarray(5); // PRIORITY
  let i = 0;
  // Dynamic table size updates may come first.
  while (i < p.length && (p[i]! & 0xe0) === 0x20) i++;
  const b = p[i];
  if (b === undefined) return 0;
  if (b & 0x80) return STATIC_STATUS[b & 0x7f] ?? 0;
  // A literal whose name is static entry 8..14 (":status"), with or without indexing.
  const nameIndex = (b & 0x40) ? b & 0x3f : b & 0x0f;
  if (nameIndex < 8 || nameIndex > 14) return 0;
  const lenByte = p[i + 1]!;
  const value = p.subarray(i + 2, i + 2 + (lenByte & 0x7f));
  return Number((lenByte & 0x80) ? huffmanDigits(value) : value.toString("latin1"));
}

/** Reads an HPACK integer with a `prefix`-bit prefix at `at` (RFC 7541 §5.1): [value, next offset]. */
function readInt(p: Buffer, at: number, prefix: number): [number, number] {
  const max = (1 << prefix) - 1;
  let value = p[at]! & max;
  let i = at + 1;
  if (value < max) return [value, i];
  let shift = 0;
  for (;;) {
    const b = p[i++]!;
    value += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if ((b & 0x80) === 0) return [value, i];
  }
}

/**
 * How a header block uses the dynamic table: the indexes it refers to above the static table's
 * 61, the fields it inserts (incremental indexing) and its dynamic table size updates.
 */
export function dynamicTableUse(f: Frame): { references: number[]; inserts: number; sizeUpdates: number[] } {
  let p = f.payload;
  if (f.flags & Flag.PADDED) p = p.subarray(1, p.length - p[0]!);
  if (f.flags & 0x20) p = p.subarray(5);
  const out = { references: [] as number[], inserts: 0, sizeUpdates: [] as number[] };
  let i = 0;
  const skipString = () => {
    const [length, next] = readInt(p, i, 7);
    i = next + length;
  };
  while (i < p.length) {
    const b = p[i]!;
    if (b & 0x80) {
      const [index, next] = readInt(p, i, 7);
      if (index > 61) out.references.push(index);
      i = next;
    } else if (b & 0x40 || (b & 0xe0) === 0 || (b & 0xf0) === 0x10) {
      const prefix = b & 0x40 ? 6 : 4;
      if (b & 0x40) out.inserts++;
      const [index, next] = readInt(p, i, prefix);
      if (index > 61) out.references.push(index);
      i = next;
      if (index === 0) skipString();
      skipString();
    } else {
      const [size, next] = readInt(p, i, 5);
      out.sizeUpdates.push(size);
      i = next;
    }
  }
  return out;
}

export interface RawH2 {
  readonly socket: Socket;
  readonly frames: Frame[];
  /** Bytes received so far. */
  received: number;
  closed: boolean;
  send(...frames: Buffer[]): boolean;
  /** Resolves when a frame matching `match` has arrived (or the connection closed / `timeoutMs` passed: undefined). */
  waitFor(match: (f: Frame) => boolean, timeoutMs?: number): Promise<Frame | undefined>;
  /** Resolves when the connection is closed by the peer, or after `timeoutMs` (false). */
  waitClosed(timeoutMs?: number): Promise<boolean>;
  goaway(): { lastStream: number; code: number } | undefined;
  close(): void;
}

/**
 * Opens a connection, sends the preface and an empty SETTINGS (unless `preface: false`), and
 * collects every frame the server sends. `read: false` leaves the socket unread (a client that
 * never reads what it asked for: the server's output queue grows).
 */
export function rawH2(port: number, opts: { tls?: boolean; preface?: boolean; read?: boolean; settings?: Record<number, number> } = {}): Promise<RawH2> {
  return new Promise((resolve, reject) => {
    const socket = opts.tls
      ? tlsConnect({ host: "127.0.0.1", port, ALPNProtocols: ["h2"], rejectUnauthorized: false })
      : netConnect({ host: "127.0.0.1", port });
    let buffer: Buffer = Buffer.alloc(0);
    const waiters = new Set<() => void>();
    const wake = () => {
      for (const w of [...waiters]) w();
    };
    const conn: RawH2 = {
      socket, frames: [], received: 0, closed: false,
      send: (...frames) => socket.write(Buffer.concat(frames)),
      waitFor(match, timeoutMs = 3000) {
        return new Promise((done) => {
          const check = () => {
            const found = conn.frames.find(match);
            if (found !== undefined || conn.closed) {
              waiters.delete(check);
              clearTimeout(timer);
              done(found);
            }
          };
          const timer = setTimeout(() => {
            waiters.delete(check);
            done(undefined);
          }, timeoutMs);
          waiters.add(check);
          check();
        });
      },
      waitClosed(timeoutMs = 3000) {
        return new Promise((done) => {
          const check = () => {
            if (!conn.closed) return;
            waiters.delete(check);
            clearTimeout(timer);
            done(true);
          };
          const timer = setTimeout(() => {
            waiters.delete(check);
            done(false);
          }, timeoutMs);
          waiters.add(check);
          check();
        });
      },
      goaway() {
        const g = conn.frames.find((f) => f.type === FrameType.GOAWAY);
        return g === undefined ? undefined : { lastStream: g.payload.readUInt32BE(0) & 0x7fffffff, code: g.payload.readUInt32BE(4) };
      },
      close: () => socket.destroy(),
    };
    socket.on("data", (chunk: Buffer) => {
      conn.received += chunk.length;
      buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
      while (buffer.length >= 9) {
        const length = buffer.readUIntBE(0, 3);
        if (buffer.length < 9 + length) break;
        conn.frames.push({ type: buffer[3]!, flags: buffer[4]!, stream: buffer.readUInt32BE(5) & 0x7fffffff, payload: buffer.subarray(9, 9 + length) });
        buffer = buffer.subarray(9 + length);
      }
      wake();
    });
    socket.on("close", () => {
      conn.closed = true;
      wake();
    });
    socket.on("error", () => {});
    socket.once(opts.tls ? "secureConnect" : "connect", () => {
      if (opts.read === false) socket.pause();
      if (opts.preface !== false) socket.write(Buffer.concat([PREFACE, settingsFrame(opts.settings ?? {})]));
      resolve(conn);
    });
    socket.once("error", reject);
  });
}
