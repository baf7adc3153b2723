/**
 * Response compression (gzip, br, zstd) negotiated by Accept-Encoding q-values (RFC 9110 §12.5.3),
 * for configured content types and sizes. Never compresses what is already encoded, marked
 * no-transform, or a range; adds Vary: Accept-Encoding; weakens a strong ETag (the bytes differ).
 * Small fixed-length bodies are compressed whole; streams are compressed as they pass, and
 * event streams are flushed after every chunk so each event still arrives at once.
 */
import { constants, createBrotliCompress, createGzip, createZstdCompress, brotliCompressSync, gzipSync, zstdCompressSync } from "node:zlib";
import type { Algorithm, CompressionConfig } from "./compress-schema.ts";

/** Bun's CompressionStream names for them. */
const NATIVE_FORMAT: Record<Algorithm, string> = { br: "brotli", zstd: "zstd", gzip: "gzip" };

/** The best encoding the client accepts, by q-value then server preference; undefined: send as is. */
export function negotiate(acceptEncoding: string | null, offered: readonly Algorithm[]): Algorithm | undefined {
  if (acceptEncoding === null) return undefined;
  const q = new Map<string, number>();
  for (const part of acceptEncoding.split(",")) {
    const [token, ...params] = part.trim().toLowerCase().split(";");
    if (!token) continue;
    let weight = 1;
    for (const p of params) {
      const m = /^\s*q\s*=\s*([0-9.]+)\s*$/.exec(p);
      if (m) weight = Math.min(1, Number(m[1]));
    }
    q.set(token, weight);
  }
  let best: Algorithm | undefined;
  let bestQ = 0;
  for (const algo of offered) {
    const weight = q.get(algo) ?? q.get("*") ?? 0;
    if (weight > bestQ) {
      best = algo;
      bestQ = weight;
    }
  }
  return best;
}

function typeMatches(contentType: string | null, types: readonly string[]): boolean {
  if (contentType === null) return false;
  const type = contentType.split(";")[0]!.trim().toLowerCase();
  return types.some((t) => (t.endsWith("/*") ? type.startsWith(t.slice(0, -1)) : type === t));
}

/** Whether the route compresses this kind of response at all (then Vary: Accept-Encoding applies). */
export function compressible(config: CompressionConfig, status: number, headers: Headers): boolean {
  if (status < 200 || status === 204 || status === 206 || status === 304) return false;
  if (headers.has("content-encoding") || headers.has("content-range")) return false;
  if (/(^|,)\s*no-transform\s*(,|$)/i.test(headers.get("cache-control") ?? "")) return false;
  if (!typeMatches(headers.get("content-type"), config.types)) return false;
  const length = Number(headers.get("content-length") ?? Number.NaN);
  return Number.isNaN(length) || length >= config.min_size;
}

/** Marks the response as encoded with `algo` (the caller sets the body). */
export function markEncoded(headers: Headers, algo: Algorithm | undefined): void {
  const vary = headers.get("vary");
  if (!vary || !/(^|,)\s*(accept-encoding|\*)\s*(,|$)/i.test(vary)) headers.set("vary", vary ? `${vary}, Accept-Encoding` : "Accept-Encoding");
  if (algo === undefined) return;
  headers.set("content-encoding", algo);
  headers.delete("content-length");
  const etag = headers.get("etag");
  if (etag !== null && !etag.startsWith("W/")) headers.set("etag", `W/${etag}`);
}

export function compressWhole(algo: Algorithm, bytes: Uint8Array): Uint8Array {
  if (algo === "gzip") return gzipSync(bytes);
  if (algo === "br") return brotliCompressSync(bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: 5 } });
  return zstdCompressSync(bytes);
}

/** The request body decoded (bounded by `max` bytes: beyond, the stream fails), or undefined when it is not encoded with a known coding. */
export function decompressRequest(encoding: string | null, body: ReadableStream<Uint8Array>, max: number): ReadableStream<Uint8Array> | undefined {
  const coding = encoding?.trim().toLowerCase();
  const format = coding === "gzip" || coding === "x-gzip" ? "gzip" : coding === "br" ? "brotli" : coding === "zstd" ? "zstd" : undefined;
  if (format === undefined) return undefined;
  let size = 0;
  return body.pipeThrough(new DecompressionStream(format as "gzip") as unknown as TransformStream<Uint8Array, Uint8Array>).pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        size += chunk.byteLength;
        if (size > max) controller.error(new Error(`the decoded request body is over ${max} bytes`));
        else controller.enqueue(chunk);
      },
    }),
  );
}

/** A compressing stream; with `flushEachChunk`, every input chunk is flushed out at once (event streams). */
export function compressStream(algo: Algorithm, source: ReadableStream<Uint8Array>, flushEachChunk: boolean): ReadableStream<Uint8Array> {
  // Bun's native CompressionStream does the bulk work; node:zlib only where each chunk must be flushed.
  if (!flushEachChunk) return source.pipeThrough(new CompressionStream(NATIVE_FORMAT[algo] as "gzip") as unknown as TransformStream<Uint8Array, Uint8Array>);
  const z = algo === "gzip" ? createGzip() : algo === "br" ? createBrotliCompress({ params: { [constants.BROTLI_PARAM_QUALITY]: 5 } }) : createZstdCompress();
  const reader = source.getReader();
  // Settles once the compressor has emitted its last byte (or failed): pull waits on it after the
  // input ended, so it is not called again and again in the meantime.
  let finished!: Promise<void>;
  let inputDone = false;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      finished = new Promise<void>((resolve) => {
        z.on("data", (chunk: Buffer) => controller.enqueue(new Uint8Array(chunk)));
        z.on("end", () => {
          controller.close();
          resolve();
        });
        z.on("error", (e) => {
          controller.error(e);
          resolve();
        });
      });
    },
    async pull() {
      if (inputDone) return finished;
      const { done, value } = await reader.read();
      if (done) {
        inputDone = true;
        z.end();
        return finished;
      }
      await new Promise<void>((resolve, reject) => z.write(value, (e) => (e ? reject(e) : resolve())));
      // Each stream type's own flush default (gzip: Z_FULL_FLUSH, br: BROTLI_OPERATION_FLUSH, zstd: ZSTD_e_flush).
      if (flushEachChunk) await new Promise<void>((resolve) => z.flush(() => resolve()));
    },
    cancel(reason) {
      z.destroy();
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}
