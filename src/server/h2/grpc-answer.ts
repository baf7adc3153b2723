/**
 * What a gRPC client is sent when the proxy's answer is not gRPC (a filter's own Response: an
 * ext_authz service's 403, a transform's body): a trailers-only answer whose grpc-status the HTTP
 * status maps to (proxy/grpc/status.ts), with the JSON error's message when there is one.
 * Failures the proxy makes itself are gRPC already (proxy/outcome.ts `fail`).
 */
import { grpcErrorResponse, grpcStatusOfHttp, isGrpcContentType } from "../../util/grpc-status.ts";

/** Bodies read for a message at most (a proxy error is a short JSON object). */
const MESSAGE_BODY_MAX = 4096;

export async function asGrpcAnswer(response: Response): Promise<Response> {
  if (response.headers.has("grpc-status") || isGrpcContentType(response.headers.get("content-type"))) return response;
  let message = `HTTP ${response.status}`;
  const length = Number(response.headers.get("content-length") ?? Number.NaN);
  if (response.body !== null && length <= MESSAGE_BODY_MAX && (response.headers.get("content-type") ?? "").includes("json")) {
    try {
      const parsed = (await response.json()) as { message?: unknown };
      if (typeof parsed.message === "string") message = parsed.message;
    } catch {
      // not the JSON error shape: the status says enough
    }
  } else {
    await response.body?.cancel().catch(() => {});
  }
  const extra: Record<string, string> = {};
  response.headers.forEach((value, name) => {
    if (name.startsWith("access-control-") || name === "www-authenticate" || name === "x-request-id" || name === "retry-after") extra[name] = value;
  });
  return grpcErrorResponse(grpcStatusOfHttp(response.status), message, response.headers.get("x-request-id") ?? "", extra);
}
