/**
 * Calls from auth providers to their services (JWKS, OIDC discovery, introspection, ext_authz):
 * bounded in time and size, never through an environment proxy, never following redirects, and
 * counted per provider. Failures come back as a short description, never thrown.
 */
import { metrics } from "../../observe/metrics.ts";
import { readBounded } from "../../util/read-bounded.ts";

export interface BackendAnswer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Uint8Array;
}

export interface BackendRequest {
  method?: "GET" | "POST";
  headers?: Record<string, string>;
  body?: string;
  timeout: number;
  /** Larger bodies are a failure ("too large"). */
  maxBody: number;
}

export async function callBackend(provider: string, url: string, request: BackendRequest): Promise<BackendAnswer | { error: string }> {
  const answer = await send(url, request);
  metrics.authBackendRequests.inc([provider, "error" in answer ? "error" : "ok"]);
  return answer;
}

async function send(url: string, request: BackendRequest): Promise<BackendAnswer | { error: string }> {
  const signal = AbortSignal.timeout(request.timeout);
  try {
    const res = await fetch(url, {
      method: request.method ?? "GET",
      headers: request.headers,
      body: request.body,
      redirect: "manual",
      proxy: false,
      signal,
    } as RequestInit);
    if (res.body === null) return { status: res.status, headers: res.headers, body: new Uint8Array() };
    const body = await readBounded(res.body, request.maxBody);
    if (body === undefined) return { error: `its answer is over ${request.maxBody} bytes` };
    return { status: res.status, headers: res.headers, body };
  } catch (e) {
    if (signal.aborted) return { error: `no answer within ${request.timeout}ms` };
    const code = (e as { code?: string }).code;
    return { error: code === "ECONNREFUSED" || code === "ConnectionRefused" ? "connection refused" : `request failed (${code ?? (e as Error).name})` };
  }
}

/** The body as a JSON object, or undefined. */
export function jsonObject(body: Uint8Array): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(new TextDecoder().decode(body));
    return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
