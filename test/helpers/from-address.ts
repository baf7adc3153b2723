/**
 * A GET sent from a chosen loopback source address (127.0.0.2, 127.0.0.3 … all reach 127.0.0.1 on
 * Linux), so tests see distinct client IPs; fetch cannot pick its source address, node:http can.
 */
import http from "node:http";

export interface SimpleResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export function getFrom(localAddress: string, url: string, headers: Record<string, string> = {}): Promise<SimpleResponse> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.get({ host: target.hostname, port: target.port, path: `${target.pathname}${target.search}`, localAddress, headers, agent: false, timeout: 5000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers as Record<string, string>, body }));
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${url} from ${localAddress} timed out`)));
    req.on("error", reject);
  });
}
