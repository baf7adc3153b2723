/** The access log line and metrics of one egress exchange or tunnel (written once, when it has closed). */
import type { AccessLog, LoggedRequest } from "../observe/access-log.ts";
import { metrics } from "../observe/metrics.ts";
import type { SwitchyardError } from "../util/errors.ts";

export type EgressKind = "http" | "connect";

export interface EgressRecord extends LoggedRequest {
  readonly kind: EgressKind;
  host: string;
  path: string;
  query: string;
  status?: number;
  bytesIn: number;
  bytesOut: number;
  attempt: number;
  upstreamStartedAt?: number;
  upstreamHeadersAt?: number;
  endpoint?: { readonly address: string };
  error?: SwitchyardError;
  logged: boolean;
}

export function newRecord(kind: EgressKind, fields: { requestId: string; listener: string; clientIp: string; method: string; headers: Headers }): EgressRecord {
  return {
    kind, requestId: fields.requestId, listener: { name: fields.listener }, clientIp: fields.clientIp, method: fields.method, headers: fields.headers,
    host: "", path: "", query: "", bytesIn: 0, bytesOut: 0, attempt: 0, startedAt: performance.now(), logged: false,
  };
}

/** Writes the record's log line and metrics, once. */
export function finishRecord(record: EgressRecord, log: AccessLog): void {
  if (record.logged) return;
  record.logged = true;
  const listener = record.listener.name;
  metrics.egressRequests.inc([listener, record.kind, `${Math.floor((record.status ?? 0) / 100)}xx`]);
  metrics.egressDuration.observe([listener, record.kind], (performance.now() - record.startedAt) / 1000);
  if (record.bytesIn) metrics.egressBytes.inc([listener, "sent"], record.bytesIn);
  if (record.bytesOut) metrics.egressBytes.inc([listener, "received"], record.bytesOut);
  if (record.error !== undefined) metrics.egressErrors.inc([listener, record.error.code]);
  log.write(record);
}
