/**
 * The Connect protocol, unary (connectrpc.com/docs/protocol): POST /pkg.Service/Method with the
 * bare message as `application/proto`, `Connect-Protocol-Version: 1`, the deadline in
 * `Connect-Timeout-Ms`; success is 200 with the reply message, an error is a non-200 status with a
 * JSON body `{"code": "not_found", "message": "…"}`.
 */
import { codeFromHttpStatus, codeFromName } from "./status.ts";
import { malformed, mediaType, readReplyBody, refuseEncoding, type RpcResult, type WireProtocol } from "./wire.ts";

/** Connect-Timeout-Ms takes at most 10 digits. */
const MAX_TIMEOUT_MS = 9_999_999_999;

export const connectProtocol: WireProtocol = {
  requestBody: (message) => message,

  setHeaders(headers, timeoutMs) {
    headers.set("content-type", "application/proto");
    headers.set("connect-protocol-version", "1");
    headers.set("accept-encoding", "identity");
    if (timeoutMs !== undefined) headers.set("connect-timeout-ms", String(Math.min(MAX_TIMEOUT_MS, Math.max(1, Math.floor(timeoutMs)))));
  },

  async readReply(response, maxBytes): Promise<RpcResult> {
    refuseEncoding(response.headers, "content-encoding");
    const type = mediaType(response.headers);
    const body = await readReplyBody(response, maxBytes);
    if (response.status === 200) {
      if (type !== "application/proto") throw malformed("upstream_bad_response", `the upstream answered 200 with content-type "${type}", not application/proto`);
      return { ok: true, message: body };
    }
    // An error: the Connect JSON error when there is one, else the code the HTTP status stands for.
    if (type === "application/json") {
      try {
        const error = JSON.parse(new TextDecoder().decode(body)) as { code?: unknown; message?: unknown };
        if (typeof error?.code === "string") return { ok: false, code: codeFromName(error.code), message: typeof error.message === "string" ? error.message : "" };
      } catch {
        // not a Connect error body: fall through to the HTTP status
      }
    }
    return { ok: false, code: codeFromHttpStatus(response.status), message: `the upstream answered HTTP ${response.status} without a Connect error` };
  },
};
