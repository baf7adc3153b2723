/** The engine's side of a native gRPC call (proxy/grpc/downstream.ts) over a node:http2 server stream. */
import type { OutgoingHttpHeaders, ServerHttp2Stream } from "node:http2";
import type { GrpcDownstream } from "../../proxy/grpc/downstream.ts";
import { forClient } from "./hpack.ts";
import { drained } from "../../util/drained.ts";

/** RFC 9113 §8.2.2 fields, never sent on HTTP/2 (node:http2 throws on them). */
const CONNECTION_SPECIFIC = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"];

function clean(headers: OutgoingHttpHeaders): OutgoingHttpHeaders {
  for (const name of CONNECTION_SPECIFIC) delete headers[name];
  return headers;
}

export function streamDownstream(stream: ServerHttp2Stream): GrpcDownstream {
  let claimed = false;
  let responded = false;
  /** The head, held until the first message (one write for both) or the next turn of the event loop. */
  let head: OutgoingHttpHeaders | undefined;
  const flushHead = () => {
    if (head !== undefined && !gone()) stream.respond(head, { waitForTrailers: true });
    head = undefined;
  };
  let pendingTrailers: OutgoingHttpHeaders | undefined;
  stream.on("wantTrailers", () => {
    if (!stream.destroyed) stream.sendTrailers(forClient(stream, pendingTrailers ?? { "grpc-status": "2" }, true));
  });
  const gone = () => stream.destroyed || stream.closed;
  return {
    get closed() {
      return gone();
    },
    get claimed() {
      return claimed;
    },
    claim() {
      claimed = true;
    },
    respond(headers) {
      if (gone() || responded) return;
      responded = true;
      head = forClient(stream, clean({ ...headers, ":status": 200 }));
      setImmediate(flushHead);
    },
    write(chunk) {
      if (gone()) return Promise.resolve(false);
      flushHead();
      if (stream.write(chunk)) return Promise.resolve(true);
      return drained(stream);
    },
    end(trailers) {
      if (gone()) return;
      if (!responded) {
        // Trailers-only: one HEADERS frame with END_STREAM.
        responded = true;
        stream.respond(forClient(stream, clean({ ":status": 200, "content-type": "application/grpc", ...trailers })), { endStream: true });
        return;
      }
      flushHead();
      pendingTrailers = clean(trailers);
      stream.end();
    },
    reset(code) {
      if (!stream.destroyed) stream.close(code);
    },
  };
}
