/**
 * The contract of custom route modules (the public surface for module authors). A module file
 * default-exports a Hono app typed `Hono<ModuleEnv>`, or a function that receives a
 * ModuleContext at load and returns one:
 *
 *   import { Hono } from "hono";
 *   import type { ModuleEnv } from "switchyard/src/modules/types.ts";
 *   const app = new Hono<ModuleEnv>();
 *   app.get("/home", async (c) => c.json(await (await c.env.clusters.get("users").fetch("/me")).json()));
 *   export default app;
 */
import type { Hono } from "hono";
import type { AuthIdentity } from "../proxy/context.ts";

/** A request to a cluster: like fetch's init, with an in-memory body (so it can be retried). */
export interface ClusterRequestInit {
  /** Default GET. */
  method?: string;
  headers?: ConstructorParameters<typeof Headers>[0];
  body?: string | Uint8Array | ArrayBuffer | null;
  /** This call's deadline in ms, all tries and the answer's body included; default: the route's request timeout. */
  timeout?: number;
  signal?: AbortSignal;
}

/**
 * One cluster, called with its policies: balancer, health, outlier detection, breaker, limits,
 * the route's retries and timeouts. Resolves with the answer (any status; its body streams and
 * must be read or cancelled); rejects with a SwitchyardError (`code`, `status`) when no answer
 * came — uncaught, that error becomes the client's response (502, 503, 504…).
 */
export interface ClusterClient {
  /** `path` starts with `/` (and may carry a query); dot segments are refused. */
  fetch(path: string, init?: ClusterRequestInit): Promise<Response>;
}

export interface ClusterClients {
  /** Throws for a cluster the config does not have. */
  get(name: string): ClusterClient;
}

/** `c.env` in a module's handlers. */
export interface ModuleBindings {
  /** The client request's id (X-Request-Id). */
  readonly requestId: string;
  readonly clientIp: string;
  /** Who the route's auth filter found the caller to be; undefined without one. */
  readonly auth: AuthIdentity | undefined;
  /** The config's clusters; each call is listed in the request's access log line. */
  readonly clusters: ClusterClients;
}

export type ModuleEnv = { Bindings: ModuleBindings };

/** What a module's factory receives at load (once per config version). */
export interface ModuleContext {
  /** The module's name: its file name without .ts. */
  readonly name: string;
  /** The clusters `c.env.clusters.get()` can call. */
  readonly clusters: readonly string[];
}

export type ModuleApp = Hono<ModuleEnv>;
export type ModuleExport = ModuleApp | ((context: ModuleContext) => ModuleApp);
