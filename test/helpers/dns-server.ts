/** A tiny DNS server on UDP 127.0.0.1 answering SRV queries from a table, for discovery tests. */
export interface SrvRecord {
  priority: number;
  weight: number;
  port: number;
  target: string;
}

function encodeName(name: string): Buffer {
  const parts = name.replace(/\.$/, "").split(".").filter(Boolean);
  return Buffer.concat([...parts.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p)])), Buffer.from([0])]);
}

export async function startSrvServer(records: () => SrvRecord[]): Promise<{ address: string; stop(): void }> {
  const socket = await Bun.udpSocket({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(sock, data, port, address) {
        const query = Buffer.from(data);
        // Question: from byte 12 to the end of QNAME, plus QTYPE and QCLASS.
        let i = 12;
        while (query[i] !== 0) i += query[i]! + 1;
        const question = query.subarray(12, i + 5);
        const answers = records().map((r) => {
          const rdata = Buffer.concat([Buffer.from([r.priority >> 8, r.priority & 255, r.weight >> 8, r.weight & 255, r.port >> 8, r.port & 255]), encodeName(r.target)]);
          const head = Buffer.from([0xc0, 0x0c, 0, 33, 0, 1, 0, 0, 0, 5, rdata.length >> 8, rdata.length & 255]);
          return Buffer.concat([head, rdata]);
        });
        const header = Buffer.from([query[0]!, query[1]!, 0x81, 0x80, 0, 1, 0, answers.length, 0, 0, 0, 0]);
        sock.send(Buffer.concat([header, question, ...answers]), port, address);
      },
    },
  });
  return { address: `127.0.0.1:${socket.port}`, stop: () => socket.close() };
}
