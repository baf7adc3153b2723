/**
 * The `tls` option that fetch and WebSocket get for an https endpoint: the cluster's CA, client
 * certificate and server name (shared/bun-notes.md: Bun's fetch takes `{ ca, cert, key,
 * serverName, rejectUnauthorized }`, and keeps separate pooled connections per distinct set).
 */
import type { UpstreamTlsMaterial } from "../security/tls-files.ts";

export interface UpstreamTlsOptions {
  readonly serverName: string;
  readonly rejectUnauthorized: boolean;
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
}

/** Options for an https endpoint on `hostname`; the cluster's `tls` settings when it has them. */
export function upstreamTlsOptions(hostname: string, material?: UpstreamTlsMaterial): UpstreamTlsOptions {
  if (material === undefined) return { serverName: hostname, rejectUnauthorized: true };
  return {
    serverName: material.serverName ?? hostname,
    rejectUnauthorized: material.verify,
    ...(material.ca !== undefined && { ca: material.ca }),
    ...(material.cert !== undefined && { cert: material.cert, key: material.key }),
  };
}
