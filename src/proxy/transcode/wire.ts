/** What the two upstream protocols (Connect unary, gRPC-Web) share: their interface and the reading of a reply body. */
import { SwitchyardError } from "../../util/errors.ts";
import { readBounded } from "../../util/read-bounded.ts";

/** An RPC's outcome as the upstream told it: the reply message's bytes, or a gRPC status. */
export type RpcResult = { readonly ok: true; readonly message: Uint8Array } | { readonly ok: false; readonly code: number; readonly message: string };

export interface WireProtocol {
  /** The request body carrying one encoded message. */
  requestBody(message: Uint8Array): Uint8Array;
  /** Sets the protocol's request headers; `timeoutMs` is the time left for the call, when it has a limit. */
  setHeaders(headers: Headers, timeoutMs: number | undefined): void;
  /** Reads the reply; throws a 502 SwitchyardError when it breaks the protocol. */
  readReply(response: Response, maxBytes: number): Promise<RpcResult>;
}

/** A reply that breaks the protocol: the client gets a 502 with this code. */
export function malformed(code: string, message: string): SwitchyardError {
  return new SwitchyardError({ code, status: 502, source: "upstream", message });
}

/** The reply body whole, up to `max` bytes (larger: 502). */
export async function readReplyBody(response: Response, max: number): Promise<Uint8Array> {
  if (response.body === null) return new Uint8Array(0);
  const declared = Number(response.headers.get("content-length") ?? Number.NaN);
  if (declared > max) {
    await response.body.cancel().catch(() => {});
    throw tooLarge(max);
  }
  const bytes = await readBounded(response.body, max);
  if (bytes === undefined) throw tooLarge(max);
  return bytes;
}

function tooLarge(max: number): SwitchyardError {
  return malformed("upstream_response_too_large", `the upstream's reply is larger than max_response (${max} bytes)`);
}

/** The media type without parameters, lower case ("" when absent). */
export function mediaType(headers: Headers): string {
  return (headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
}

/** Refuses a compressed reply: we ask for identity and decode none (a compression bomb stays out). */
export function refuseEncoding(headers: Headers, name: string): void {
  const encoding = headers.get(name);
  if (encoding !== null && encoding.trim().toLowerCase() !== "identity") {
    throw malformed("upstream_compressed", `the upstream compressed its reply (${name}: ${encoding}) though the proxy asked for identity`);
  }
}
