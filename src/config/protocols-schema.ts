/**
 * Which HTTP versions a listener speaks, and the per-connection limits of its HTTP/2 side.
 * Spread into the listener schema (config/schema.ts); the listener serves them in server/listener.ts; checked together by `checkProtocols`.
 */
import { z } from "zod";
import { DurationSchema } from "./primitives.ts";

export const PROTOCOLS = ["http1", "http2", "http3"] as const;
export type Protocol = (typeof PROTOCOLS)[number];

/**
 * HTTP/2 limits per client connection. Defaults follow nginx's (http2_max_concurrent_streams 128,
 * keepalive_requests 1000). Bun's own HTTP/2 parser bounds SETTINGS, PING, CONTINUATION and
 * empty-frame floods by itself (README: HTTP/2 limits); these are the ones it leaves to us.
 */
export const Http2LimitsSchema = z.strictObject({
  /** Streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS); more are refused (RST_STREAM REFUSED_STREAM). Default 128. */
  max_concurrent_streams: z.number().int().min(1).max(10_000).default(128),
  /** Requests one connection may carry; then it gets GOAWAY and its open streams finish (nginx's keepalive_requests). Default 1000. */
  max_requests: z.number().int().min(1).max(1_000_000).default(1000),
  /**
   * Streams a client may cancel (RST_STREAM) before their answer is complete, per `reset_window`;
   * more gets GOAWAY ENHANCE_YOUR_CALM and the connection closed (rapid reset, CVE-2023-44487).
   * Default 100.
   */
  max_resets: z.number().int().min(1).max(1_000_000).default(100),
  /** The window `max_resets` counts over. Default 10s. */
  reset_window: DurationSchema.prefault("10s").refine((ms) => ms > 0, "must be more than 0"),
  /**
   * Bytes a client may send on one stream before the proxy has read them (the stream's flow-control
   * window, SETTINGS_INITIAL_WINDOW_SIZE): bounds what a stalled upload holds in memory. Default 65535.
   */
  stream_window: z.number().int().min(65_535).max(2 ** 31 - 1).default(65_535),
});

export type Http2Limits = z.infer<typeof Http2LimitsSchema>;

/** Fields added to each listener (flat, beside `tls`). */
export const ProtocolsShape = {
  /**
   * HTTP versions served: `http1`, `http2` (by ALPN on TLS listeners, by prior knowledge — h2c —
   * on plain ones), `http3` (QUIC on the same port number, TLS listeners only; advertised by
   * Alt-Svc on HTTP/1.1 and HTTP/2 answers). Default [http1].
   */
  protocols: z.array(z.enum(PROTOCOLS)).min(1).default(["http1"]),
  /** Per-connection HTTP/2 limits (listeners with http2). */
  http2: Http2LimitsSchema.prefault({}),
};

/** Cross-field rules of a listener's protocols; `issue` reports one problem at a path inside the listener. */
export function checkProtocols(
  listener: { protocols: readonly Protocol[]; tls?: { client_auth?: unknown }; mode?: string },
  issue: (path: (string | number)[], message: string) => void,
): void {
  const seen = new Set<Protocol>();
  listener.protocols.forEach((p, i) => {
    if (seen.has(p)) issue(["protocols", i], `${p} is listed twice`);
    seen.add(p);
  });
  if (listener.mode === "egress" && (listener.protocols.length !== 1 || listener.protocols[0] !== "http1")) {
    issue(["protocols"], "an egress listener speaks http1 only");
  }
  if (seen.has("http3") && listener.tls === undefined) issue(["protocols"], "http3 needs tls (QUIC is always encrypted)");
  // Bun's QUIC server neither shows a handler the client's certificate nor can be fronted.
  if (seen.has("http3") && listener.tls?.client_auth !== undefined) issue(["protocols"], "http3 is not available with tls.client_auth (the client certificate cannot be read over QUIC); use http1 and http2");
}
