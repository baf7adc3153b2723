/**
 * A real Connect / gRPC / gRPC-Web server for the transcoding tests: @connectrpc/connect-node's
 * adapter on node:http (runs under Bun), serving test/fixtures/proto's Greeter from its descriptor
 * set — no generated code needed, the registry describes the service.
 */
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { createFileRegistry, type DescService, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";

/** Normalized, as the config makes every path (config/file-path.ts). */
export const GREETER_DESCRIPTORS = join(import.meta.dir, "../fixtures/greeter.binpb");
export const GREETER = "switchyard.test.v1.Greeter";

/** Request headers the Greet reply reports back (as `seenHeaders`) when the server saw them. */
const REPORTED = ["x-request-id", "x-custom", "authorization", "content-type", "connect-timeout-ms", "grpc-timeout", "x-forwarded-for", "connect-protocol-version", "x-grpc-web", "content-length"];

export interface GreeterServer {
  origin: string;
  /** Calls received, by method name. */
  calls: string[];
  stop(): Promise<void>;
}

interface GreetRequest { name: string; times: number; shout: boolean; mood: number; tags: string[]; options?: { language: string }; bigNumber: bigint }

function serviceOf(): DescService {
  const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(GREETER_DESCRIPTORS)));
  return registry.getService(GREETER)!;
}

export async function startGreeter(): Promise<GreeterServer> {
  const calls: string[] = [];
  const service = serviceOf();
  const impl = {
    greet(req: GreetRequest, ctx: HandlerContext) {
      calls.push("Greet");
      const seen: Record<string, string> = {};
      for (const name of REPORTED) {
        const value = ctx.requestHeader.get(name);
        if (value !== null) seen[name] = value;
      }
      ctx.responseHeader.set("x-greeter", "yes");
      const text = `Hello, ${req.name}!`;
      return {
        message: req.shout ? text.toUpperCase() : text,
        times: req.times,
        mood: req.mood,
        tags: req.tags,
        displayLanguage: req.options?.language ?? "",
        bigNumber: req.bigNumber,
        shouted: req.shout,
        seenHeaders: seen,
      };
    },
    lookup(req: { user?: { id: string; region: string }; verbose: boolean; fields: number[]; filter: string }) {
      calls.push("Lookup");
      return { id: req.user?.id ?? "", region: req.user?.region ?? "", verbose: req.verbose, fields: req.fields, filter: req.filter };
    },
    fail(req: { code: number; message: string }) {
      calls.push("Fail");
      throw new ConnectError(req.message, req.code as Code, { "x-failed": "yes" });
    },
    async sleep(req: { ms: number }, ctx: HandlerContext) {
      calls.push("Sleep");
      const timeoutMs = ctx.timeoutMs();
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, req.ms);
        ctx.signal.addEventListener("abort", () => {
          clearTimeout(timer);
          reject(new ConnectError("deadline passed", Code.DeadlineExceeded));
        }, { once: true });
      });
      return { timeoutMs: BigInt(timeoutMs ?? 0), protocol: ctx.protocolName };
    },
    async *watch() {
      yield {};
    },
  };
  const handler = connectNodeAdapter({
    routes(router: ConnectRouter) {
      router.service(service, impl as never);
    },
  });
  const server: Server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    origin: `http://127.0.0.1:${port}`,
    calls,
    stop: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
