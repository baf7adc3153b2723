/**
 * A TCP forwarder on 127.0.0.1, port 0, in front of one backend port at a time: what a managed
 * Redis's stable address does across a failover. `switchTo` points new connections at another
 * backend and drops the open ones (clients reconnect, as after a real failover).
 */
import type { Socket } from "bun";

interface Pair {
  upstream: Socket<Pair> | undefined;
  pending: Uint8Array[];
}

export interface TcpSwitch {
  port: number;
  url: string;
  switchTo(port: number): void;
  stop(): void;
}

export function tcpSwitch(target: number): TcpSwitch {
  let backend = target;
  const open = new Set<Socket<Pair>>();
  const server = Bun.listen<Pair>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(client) {
        client.data = { upstream: undefined, pending: [] };
        open.add(client);
        void Bun.connect<Pair>({
          hostname: "127.0.0.1",
          port: backend,
          data: client.data,
          socket: {
            data: (_, chunk) => void client.write(chunk),
            close: () => void client.end(),
            error: () => void client.end(),
          },
        }).then((upstream) => {
          client.data.upstream = upstream;
          for (const chunk of client.data.pending) upstream.write(chunk);
          client.data.pending = [];
        }, () => client.end());
      },
      data(client, chunk) {
        if (client.data.upstream !== undefined) client.data.upstream.write(chunk);
        else client.data.pending.push(new Uint8Array(chunk));
      },
      close(client) {
        open.delete(client);
        client.data.upstream?.end();
      },
      error(client) {
        client.data.upstream?.end();
      },
    },
  });
  return {
    port: server.port,
    url: `redis://127.0.0.1:${server.port}`,
    switchTo(port) {
      backend = port;
      for (const client of open) {
        client.data.upstream?.end();
        client.end();
      }
      open.clear();
    },
    stop() {
      for (const client of open) client.end();
      server.stop(true);
    },
  };
}
