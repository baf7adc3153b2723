/**
 * Request mirroring: a sampled copy of a request goes to a shadow cluster, fire and forget. The
 * shadow's answer is read and dropped; it never delays or changes the client's response, and a
 * shadow at its limits is simply skipped. The shadow sees the Host with a `-shadow` suffix (as
 * Envoy does), so it can tell mirrored traffic apart.
 */
import type { Cluster } from "../upstream/cluster.ts";
import type { RoutedContext } from "./context.ts";
import { upstreamHeaders, upstreamUrl } from "./forward.ts";
import type { MirrorConfig } from "./mirror-schema.ts";

/** `api.example.com:8080` → `api.example.com-shadow:8080`. */
export function shadowHost(host: string): string {
  const colon = host.lastIndexOf(":");
  return colon > host.lastIndexOf("]") && colon !== -1 ? `${host.slice(0, colon)}-shadow${host.slice(colon)}` : `${host}-shadow`;
}

/** Should this request be mirrored (sampled, and its body small enough to keep)? */
export function wantsMirror(config: MirrorConfig, request: Request, random: () => number = Math.random): boolean {
  if (config.percent <= 0 || random() * 100 >= config.percent) return false;
  if (request.body === null) return true;
  const declared = Number(request.headers.get("content-length") ?? Number.NaN);
  return declared <= config.max_body;
}

/** Sends the copy; returns at once. `body` is the kept request body, if the request has one. */
export function mirror(ctx: RoutedContext, shadow: Cluster, config: MirrorConfig, body: ArrayBuffer | undefined): void {
  const endpoint = shadow.pick(ctx);
  if (endpoint === undefined || !shadow.limits.admitRequest()) return;
  const headers = upstreamHeaders(ctx, shadow);
  headers.set("host", shadowHost(headers.get("host") ?? endpoint.address));
  if (body !== undefined) headers.set("content-length", String(body.byteLength));
  endpoint.send(upstreamUrl(ctx, endpoint), {
    method: ctx.method,
    headers,
    body,
    redirect: "manual",
    decompress: false,
    proxy: false,
    signal: AbortSignal.timeout(config.timeout),
    tls: endpoint.tls,
  } as RequestInit)
    .then((res) => res.body?.cancel())
    .catch(() => {})
    .finally(() => shadow.limits.releaseRequest());
}
