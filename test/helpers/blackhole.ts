/**
 * A TCP port on 127.0.0.1 that never completes a connect: a socket listening with backlog 0 that
 * never accepts, its one queue slot filled by us. Linux then drops further SYNs, so a client's
 * connect hangs — the loopback stand-in for an unreachable host. Built on libc through bun:ffi
 * because Bun.listen and node:net always accept.
 */
import { dlopen, FFIType, ptr } from "bun:ffi";
import { connect, type Socket } from "node:net";

const libc = dlopen("libc.so.6", {
  socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  bind: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  listen: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  getsockname: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  close: { args: [FFIType.i32], returns: FFIType.i32 },
});

export interface Blackhole {
  port: number;
  close(): void;
}

export async function startBlackhole(): Promise<Blackhole> {
  const fd = libc.symbols.socket(2 /* AF_INET */, 1 /* SOCK_STREAM */, 0);
  if (fd < 0) throw new Error("socket() failed");
  const addr = new Uint8Array(16);
  const view = new DataView(addr.buffer);
  view.setUint16(0, 2, true); // sin_family
  view.setUint16(2, 0, false); // sin_port: any
  addr.set([127, 0, 0, 1], 4);
  if (libc.symbols.bind(fd, ptr(addr), 16) !== 0) throw new Error("bind() failed");
  if (libc.symbols.listen(fd, 0) !== 0) throw new Error("listen() failed");
  const len = new Uint32Array([16]);
  libc.symbols.getsockname(fd, ptr(addr), ptr(len));
  const port = view.getUint16(2, false);
  // Fill the accept queue so that the next SYNs are dropped.
  const fillers: Socket[] = [];
  for (let i = 0; i < 2; i++) {
    fillers.push(await new Promise<Socket>((resolve) => {
      const s = connect({ host: "127.0.0.1", port });
      s.on("connect", () => resolve(s));
      s.on("error", () => resolve(s));
      setTimeout(() => resolve(s), 200);
    }));
  }
  return {
    port,
    close() {
      for (const s of fillers) s.destroy();
      libc.symbols.close(fd);
    },
  };
}
