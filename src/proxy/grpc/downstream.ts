/**
 * The client side of a native gRPC call: what the listener's HTTP/2 engine (server/h2/) offers
 * for a request whose content-type is gRPC, so the gRPC proxy can answer with trailers — which a
 * Fetch Response cannot carry. Registered per Request; a request without one (HTTP/1.1, HTTP/3)
 * is proxied as plain HTTP.
 */
import type { OutgoingHttpHeaders } from "node:http2";

export interface GrpcDownstream {
  /** Sends the answer's head (:status 200 and the upstream's metadata). */
  respond(headers: OutgoingHttpHeaders): void;
  /** Writes response bytes; resolves false when the client went away (then stop). Waits while its window is full. */
  write(chunk: Uint8Array): Promise<boolean>;
  /**
   * Ends the answer with trailers (grpc-status, grpc-message, metadata): after `respond`, a
   * trailing HEADERS frame; without it, a trailers-only answer.
   */
  end(trailers: OutgoingHttpHeaders): void;
  /** Resets the client's stream (RST_STREAM `code`). */
  reset(code: number): void;
  /** The client's stream is gone (reset by the client, or the connection closed). */
  readonly closed: boolean;
  /** The gRPC proxy answered on the stream itself: the engine must not write the handler's Response. */
  readonly claimed: boolean;
  /** Marks the stream as answered here (called before anything is written). */
  claim(): void;
}

const downstreams = new WeakMap<Request, GrpcDownstream>();

export function registerDownstream(request: Request, downstream: GrpcDownstream): void {
  downstreams.set(request, downstream);
}

/** The native gRPC stream behind a request, when it came over HTTP/2 with a gRPC content-type. */
export function grpcDownstreamOf(request: Request): GrpcDownstream | undefined {
  return downstreams.get(request);
}
