/**
 * Real gRPC peers for the native gRPC tests: @grpc/grpc-js servers and clients (the reference
 * Node implementation, running under Bun on its node:http2), the Echo service of
 * test/fixtures/grpc/echo.proto and grpc.health.v1.Health, loaded with @grpc/proto-loader.
 */
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

export const ECHO_PROTO = join(import.meta.dir, "../fixtures/grpc/echo.proto");
export const HEALTH_PROTO = join(import.meta.dir, "../fixtures/grpc/health.proto");

export interface Msg {
  text: string;
  n: number;
  pad: Buffer;
}

export interface StreamReq {
  count?: number;
  size?: number;
  delay_ms?: number;
  fail_after?: number;
  die_after?: number;
}

type Service = grpc.ServiceClientConstructor;

function lookup(root: grpc.GrpcObject, name: string): Service {
  let node: grpc.GrpcObject | grpc.ServiceClientConstructor | grpc.ProtobufTypeDefinition = root;
  for (const part of name.split(".")) {
    if (typeof node !== "object" || !(part in node)) throw new Error(`${name} not found`);
    node = (node as grpc.GrpcObject)[part]!;
  }
  if (typeof node !== "function") throw new Error(`${name} is not a service`);
  return node;
}

const options: protoLoader.Options = { keepCase: true, longs: Number, enums: String, defaults: true };
const echoPkg = grpc.loadPackageDefinition(protoLoader.loadSync(ECHO_PROTO, options));
const healthPkg = grpc.loadPackageDefinition(protoLoader.loadSync(HEALTH_PROTO, options));
export const Echo = lookup(echoPkg, "switchyard.test.grpc.Echo");
export const Health = lookup(healthPkg, "grpc.health.v1.Health");

export interface EchoServer {
  port: number;
  origin: string;
  /** Calls received, by method name. */
  calls: string[];
  /** Request metadata of the last call (lower-case keys; -bin values as base64). */
  lastMetadata: Record<string, string>;
  /** Messages the last server stream has written so far. */
  written: number;
  /** Health statuses by service name ("" is the server's own); SERVING when unset. */
  health: Map<string, "SERVING" | "NOT_SERVING">;
  /** Calls to Unary cancelled by the client (or the proxy). */
  cancelled: number;
  /** The last Unary call's deadline as it arrived (grpc-timeout), in ms from its arrival; undefined without one. */
  lastDeadlineMs: number | undefined;
  stop(): Promise<void>;
}

function metadataRecord(md: grpc.Metadata): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, values] of Object.entries(md.getMap())) out[key] = Buffer.isBuffer(values) ? values.toString("base64") : String(values);
  return out;
}

/** Resolves once the stream can take more (grpc-js's `drain`), or at once if it can. */
function writeWithBackpressure(call: grpc.ServerWritableStream<StreamReq, Msg>, msg: Msg): Promise<void> {
  if (call.write(msg)) return Promise.resolve();
  return new Promise((resolve) => call.once("drain", () => resolve()));
}

export async function startEchoServer(creds: grpc.ServerCredentials = grpc.ServerCredentials.createInsecure()): Promise<EchoServer> {
  const server = new grpc.Server();
  const flaky = new Set<string>();
  const state: EchoServer = {
    port: 0, origin: "", calls: [], lastMetadata: {}, written: 0, health: new Map(), cancelled: 0, lastDeadlineMs: undefined,
    stop: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())).then(() => server.forceShutdown()),
  };
  server.addService(Echo.service, {
    Unary(call: grpc.ServerUnaryCall<Msg, Msg>, callback: grpc.sendUnaryData<Msg>) {
      state.calls.push("Unary");
      state.lastMetadata = metadataRecord(call.metadata);
      const deadline = call.getDeadline();
      const at = deadline instanceof Date ? deadline.getTime() : deadline;
      state.lastDeadlineMs = Number.isFinite(at) ? at - Date.now() : undefined;
      const text = call.request.text;
      const reply = new grpc.Metadata();
      for (const key of ["x-md", "x-md-bin"]) for (const v of call.metadata.get(key)) reply.add(key, v);
      call.on("cancelled", () => state.cancelled++);
      if (text.startsWith("fail:")) return callback({ code: Number(text.slice(5)), details: `failed as asked (${text})` });
      if (text.startsWith("flaky:")) {
        if (!flaky.has(text)) {
          flaky.add(text);
          return callback({ code: grpc.status.UNAVAILABLE, details: "try again" });
        }
      }
      const answer = () => {
        call.sendMetadata(reply);
        const trailer = new grpc.Metadata();
        trailer.set("x-trailer", "yes");
        trailer.set("x-trailer-bin", Buffer.from([0, 1, 2, 255]));
        callback(null, { text, n: text.length, pad: call.request.pad }, trailer);
      };
      if (text.startsWith("sleep:")) setTimeout(answer, Number(text.slice(6)));
      else answer();
    },
    async ServerStream(call: grpc.ServerWritableStream<StreamReq, Msg>) {
      state.calls.push("ServerStream");
      state.written = 0;
      const { count = 0, size = 0, delay_ms = 0, fail_after = 0, die_after = 0 } = call.request;
      let cancelled = false;
      call.on("cancelled", () => (cancelled = true));
      const pad = Buffer.alloc(size, 7);
      for (let i = 0; i < count && !cancelled; i++) {
        if (fail_after > 0 && i === fail_after) return call.emit("error", { code: grpc.status.INTERNAL, details: "failed mid-stream as asked" });
        if (die_after > 0 && i === die_after) process.exit(1);
        await writeWithBackpressure(call, { text: `m${i}`, n: i, pad });
        state.written++;
        if (delay_ms > 0) await Bun.sleep(delay_ms);
      }
      const trailer = new grpc.Metadata();
      trailer.set("x-written", String(state.written));
      call.end(trailer);
    },
    ClientStream(call: grpc.ServerReadableStream<Msg, Msg>, callback: grpc.sendUnaryData<Msg>) {
      state.calls.push("ClientStream");
      let count = 0;
      let bytes = 0;
      call.on("data", (m: Msg) => {
        count++;
        bytes += m.pad.length + m.text.length;
      });
      call.on("end", () => callback(null, { text: String(bytes), n: count, pad: Buffer.alloc(0) }));
    },
    Bidi(call: grpc.ServerDuplexStream<Msg, Msg>) {
      state.calls.push("Bidi");
      call.on("data", (m: Msg) => call.write({ text: `echo ${m.text}`, n: m.n, pad: Buffer.alloc(0) }));
      call.on("end", () => call.end());
    },
  });
  server.addService(Health.service, {
    Check(call: grpc.ServerUnaryCall<{ service: string }, { status: string }>, callback: grpc.sendUnaryData<{ status: string }>) {
      state.calls.push(`Health/${call.request.service}`);
      callback(null, { status: state.health.get(call.request.service) ?? "SERVING" });
    },
  });
  state.port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", creds, (e, port) => (e ? reject(e) : resolve(port))));
  state.origin = `http://127.0.0.1:${state.port}`;
  return state;
}

/** Typed calls of the Echo service through grpc-js's generic client methods. */
export class EchoClient {
  readonly client: grpc.Client;

  constructor(address: string, creds: grpc.ChannelCredentials = grpc.credentials.createInsecure(), channelOptions: grpc.ChannelOptions = {}) {
    this.client = new grpc.Client(address, creds, channelOptions);
  }

  private def(method: string): grpc.MethodDefinition<object, object> {
    return Echo.service[method] as grpc.MethodDefinition<object, object>;
  }

  /** A unary call: its reply, or its error (with code, details and metadata), plus the head and trailers. */
  unary(msg: Partial<Msg>, metadata = new grpc.Metadata(), options: grpc.CallOptions = {}): Promise<{ reply?: Msg; error?: grpc.ServiceError; headers?: grpc.Metadata; trailers?: grpc.Metadata }> {
    const d = this.def("Unary");
    return new Promise((resolve) => {
      let headers: grpc.Metadata | undefined;
      let trailers: grpc.Metadata | undefined;
      const call = this.client.makeUnaryRequest<object, object>(d.path, d.requestSerialize, d.responseDeserialize, { text: "", ...msg }, metadata, options, (error, reply) => {
        // The status event follows the callback; give it a turn.
        setTimeout(() => resolve({ reply: reply as Msg | undefined, error: error ?? undefined, headers, trailers }), 0);
      });
      call.on("metadata", (m: grpc.Metadata) => (headers = m));
      call.on("status", (s: grpc.StatusObject) => (trailers = s.metadata));
    });
  }

  serverStream(req: StreamReq, options: grpc.CallOptions = {}): grpc.ClientReadableStream<Msg> {
    const d = this.def("ServerStream");
    return this.client.makeServerStreamRequest<object, object>(d.path, d.requestSerialize, d.responseDeserialize, req, new grpc.Metadata(), options) as grpc.ClientReadableStream<Msg>;
  }

  clientStream(callback: (error: grpc.ServiceError | null, reply?: Msg) => void, options: grpc.CallOptions = {}): grpc.ClientWritableStream<Msg> {
    const d = this.def("ClientStream");
    return this.client.makeClientStreamRequest<object, object>(d.path, d.requestSerialize, d.responseDeserialize, new grpc.Metadata(), options, (e, r) => callback(e, r as Msg | undefined)) as grpc.ClientWritableStream<Msg>;
  }

  bidi(options: grpc.CallOptions = {}): grpc.ClientDuplexStream<Msg, Msg> {
    const d = this.def("Bidi");
    return this.client.makeBidiStreamRequest<object, object>(d.path, d.requestSerialize, d.responseDeserialize, new grpc.Metadata(), options) as grpc.ClientDuplexStream<Msg, Msg>;
  }

  close(): void {
    this.client.close();
  }
}

/** Reads a server stream to its end: its messages (up to `keep`), their count, and the final status. */
export function drain(stream: grpc.ClientReadableStream<Msg>, perMessage?: (m: Msg, i: number) => void | Promise<void>): Promise<{ count: number; status: grpc.StatusObject; error?: grpc.ServiceError }> {
  return new Promise((resolve) => {
    let count = 0;
    let error: grpc.ServiceError | undefined;
    stream.on("data", (m: Msg) => {
      const i = count++;
      const wait = perMessage?.(m, i);
      if (wait instanceof Promise) {
        stream.pause();
        void wait.then(() => stream.resume());
      }
    });
    stream.on("error", (e: grpc.ServiceError) => (error = e));
    stream.on("status", (status: grpc.StatusObject) => setTimeout(() => resolve({ count, status, error }), 0));
  });
}

export { grpc };
