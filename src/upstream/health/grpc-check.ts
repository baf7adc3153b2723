/**
 * The gRPC health check (grpc/doc/health-checking.md): one grpc.health.v1.Health/Check call over a
 * pooled HTTP/2 connection (h2c for http:// endpoints); it passes when the answer is SERVING with
 * grpc-status 0. The two messages are encoded by hand (one string field, one enum field), so no
 * protobuf runtime is loaded for it.
 */
import type { IncomingHttpHeaders } from "node:http2";
import { formatGrpcTimeout } from "../../util/grpc-status.ts";
import { type H2Endpoint, openStream } from "../h2-pool.ts";

const SERVING = 1;

/** A length-prefixed message (not compressed) holding HealthCheckRequest { service }. */
function checkRequest(service: string): Buffer {
  const name = Buffer.from(service, "utf8");
  // Field 1, wire type 2; the service names a health check asks about stay well under 128 bytes.
  const message = name.length === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x0a, name.length]), name]);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

/** The `status` of a HealthCheckResponse frame (field 1, varint); UNKNOWN (0) when absent. */
export function servingStatus(body: Buffer): number {
  if (body.length < 5 || body[0] !== 0) return -1; // compressed or truncated
  const message = body.subarray(5, 5 + body.readUInt32BE(1));
  let i = 0;
  while (i < message.length) {
    const tag = message[i++]!;
    if (tag === 0x08) return message[i] ?? -1;
    return -1; // any other field: not the answer we know
  }
  return 0;
}

export async function grpcCheckOnce(endpoint: H2Endpoint, service: string, timeoutMs: number, host: string | undefined): Promise<boolean> {
  const url = new URL(endpoint.origin);
  const signal = AbortSignal.timeout(timeoutMs);
  let stream: Awaited<ReturnType<typeof openStream>>["stream"];
  try {
    ({ stream } = await openStream(endpoint, {
      ":method": "POST", ":scheme": url.protocol === "https:" ? "https" : "http", ":authority": host ?? url.host,
      ":path": "/grpc.health.v1.Health/Check", "content-type": "application/grpc", te: "trailers",
      "user-agent": "switchyard-health-check", "grpc-timeout": formatGrpcTimeout(timeoutMs),
    }, timeoutMs));
  } catch {
    return false;
  }
  stream.on("error", () => {});
  return new Promise<boolean>((resolve) => {
    const chunks: Buffer[] = [];
    let head: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders = {};
    const onAbort = () => stream.close(8);
    signal.addEventListener("abort", onAbort, { once: true });
    stream.on("response", (h: IncomingHttpHeaders) => (head = h));
    stream.on("trailers", (t: IncomingHttpHeaders) => (trailers = t));
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("close", () => {
      signal.removeEventListener("abort", onAbort);
      const status = trailers["grpc-status"] ?? head["grpc-status"];
      resolve(!signal.aborted && Number(head[":status"]) === 200 && status === "0" && servingStatus(Buffer.concat(chunks)) === SERVING);
    });
    stream.end(checkRequest(service));
  });
}
