// The gRPC upstream of bench/h2.ts, run with Node (`node bench/grpc-upstream.mjs`): @grpc/grpc-js's
// server on Node's own HTTP/2 (nghttp2). Not under Bun: Bun 1.4.5's node:http2 server ignores a
// client's SETTINGS_HEADER_TABLE_SIZE 0, which breaks nginx's grpc_pass ("invalid http2 table
// index"; README: HTTP/2 limits). Echo/Unary answers its message; Echo/ServerStream sends `count`
// messages of `size` bytes. Prints {"grpc": PORT}.
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const proto = join(fileURLToPath(new URL(".", import.meta.url)), "../test/fixtures/grpc/echo.proto");
const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(proto, { keepCase: true, longs: Number, defaults: true }));
const Echo = pkg.switchyard.test.grpc.Echo;
const server = new grpc.Server();
server.addService(Echo.service, {
  Unary: (call, callback) => callback(null, { text: call.request.text, n: call.request.text.length }),
  ServerStream: (call) => {
    const { count = 0, size = 0 } = call.request;
    const pad = Buffer.alloc(size, 7);
    let i = 0;
    const pump = () => {
      while (i < count) {
        const ok = call.write({ text: `m${i}`, n: i, pad });
        i++;
        if (!ok) return void call.once("drain", pump);
      }
      call.end();
    };
    pump();
  },
  ClientStream: (call, callback) => call.on("data", () => {}).on("end", () => callback(null, { text: "", n: 0 })),
  Bidi: (call) => call.on("data", (m) => call.write(m)).on("end", () => call.end()),
});
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, port) => {
  if (e) throw e;
  console.log(JSON.stringify({ grpc: port }));
});
