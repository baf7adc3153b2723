/**
 * Request smuggling over raw TCP: every ambiguous framing is refused — by Bun's parser or by the
 * request guard — with the connection closed, and a real upstream that counts requests never sees
 * either the request or the one smuggled behind it.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { rawRequest } from "../helpers/raw.ts";
import { recordingUpstream } from "../helpers/upstream.ts";

let up: ReturnType<typeof recordingUpstream>;
let proxy: TestProxy;

beforeAll(async () => {
  up = recordingUpstream("ok");
  proxy = await startProxy({
    listeners: [{ address: "127.0.0.1", port: 0 }],
    routes: [{ to: "app" }],
    clusters: { app: { endpoints: [up.origin] } },
  });
});
afterAll(async () => {
  await proxy.stop();
  up.stop(true);
});

/** The request an attacker hides in the body, for whoever reads the framing differently. */
const SMUGGLED = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
const head = (fields: string) => `POST /front HTTP/1.1\r\nHost: x\r\n${fields}\r\n`;

/** [what, bytes, who refuses it — measured] */
const AMBIGUOUS: [string, string, "bun" | "guard"][] = [
  ["Content-Length and Transfer-Encoding", head("Content-Length: 6\r\nTransfer-Encoding: chunked\r\n") + `0\r\n\r\n${SMUGGLED}`, "bun"],
  ["Transfer-Encoding then Content-Length", head("Transfer-Encoding: chunked\r\nContent-Length: 40\r\n") + `0\r\n\r\n${SMUGGLED}`, "bun"],
  ["two differing Content-Lengths", head(`Content-Length: 0\r\nContent-Length: ${SMUGGLED.length}\r\n`) + SMUGGLED, "bun"],
  ["two equal Content-Lengths (Bun merges them to `N, N`)", head(`Content-Length: ${SMUGGLED.length}\r\nContent-Length: ${SMUGGLED.length}\r\n`) + SMUGGLED, "guard"],
  ["a Content-Length list", head(`Content-Length: ${SMUGGLED.length}, ${SMUGGLED.length}\r\n`) + SMUGGLED, "bun"],
  ["a signed Content-Length", head(`Content-Length: +${SMUGGLED.length}\r\n`) + SMUGGLED, "bun"],
  ["Transfer-Encoding: ,chunked (Bun reads it as chunked)", head("Transfer-Encoding: ,chunked\r\n") + `0\r\n\r\n${SMUGGLED}`, "guard"],
  ["Transfer-Encoding: chunked, (Bun reads it as chunked)", head("Transfer-Encoding: chunked,\r\n") + `0\r\n\r\n${SMUGGLED}`, "guard"],
  ["Transfer-Encoding: gzip, chunked", head("Transfer-Encoding: gzip, chunked\r\n") + `0\r\n\r\n${SMUGGLED}`, "bun"],
  ["Transfer-Encoding: identity", head("Transfer-Encoding: identity\r\n") + SMUGGLED, "bun"],
  ["two Transfer-Encoding fields", head("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n") + `0\r\n\r\n${SMUGGLED}`, "bun"],
  ["Transfer-Encoding folded onto the next line (obs-fold)", head("Transfer-Encoding:\r\n chunked\r\n") + `0\r\n\r\n${SMUGGLED}`, "bun"],
  ["obs-fold in any field", head("X-Note: one\r\n two\r\nContent-Length: 0\r\n") + SMUGGLED, "bun"],
  ["a space before the colon", head("Transfer-Encoding : chunked\r\n") + `0\r\n\r\n${SMUGGLED}`, "bun"],
  ["bare LF line endings", `POST /front HTTP/1.1\nHost: x\nContent-Length: ${SMUGGLED.length}\n\n${SMUGGLED}`, "bun"],
  ["a bare LF inside the head", `POST /front HTTP/1.1\r\nHost: x\r\nX-A: 1\nContent-Length: 0\r\n\r\n${SMUGGLED}`, "bun"],
  ["a bare CR inside the head", `POST /front HTTP/1.1\r\nHost: x\r\nX-A: 1\rContent-Length: 0\r\n\r\n${SMUGGLED}`, "bun"],
  ["a negative chunk size", head("Transfer-Encoding: chunked\r\n") + `-3\r\nabc\r\n0\r\n\r\n${SMUGGLED}`, "bun"],
  ["a 0x chunk size", head("Transfer-Encoding: chunked\r\n") + `0x3\r\nabc\r\n0\r\n\r\n${SMUGGLED}`, "bun"],
  ["an overflowing chunk size", head("Transfer-Encoding: chunked\r\n") + `FFFFFFFFFFFFFFFFF1\r\nabc\r\n0\r\n\r\n${SMUGGLED}`, "bun"],
  ["a chunk size with trailing space", head("Transfer-Encoding: chunked\r\n") + `3 \r\nabc\r\n0\r\n\r\n${SMUGGLED}`, "bun"],
  ["a non-hex chunk size", head("Transfer-Encoding: chunked\r\n") + `zz\r\nabc\r\n0\r\n\r\n${SMUGGLED}`, "bun"],
  ["chunk data longer than its size", head("Transfer-Encoding: chunked\r\n") + `3\r\nabcdef\r\n0\r\n\r\n${SMUGGLED}`, "bun"],
  ["chunk lines ended by bare LF", head("Transfer-Encoding: chunked\r\n") + `3\nabc\n0\n\n${SMUGGLED}`, "bun"],
];

describe("ambiguous framing", () => {
  for (const [what, bytes, by] of AMBIGUOUS) {
    test(`${what}: refused (${by === "bun" ? "by Bun's parser" : "by the guard"}), connection closed, nothing forwarded`, async () => {
      const before = up.seen.length;
      const res = await rawRequest(proxy.port, bytes);
      expect([400, 505]).toContain(res.status);
      expect(res.responses).toBe(1); // the smuggled request was never answered…
      expect(res.closed).toBe(true); // …nor can it be: the connection is gone
      if (by === "guard") {
        expect(res.headers["content-type"]).toBe("application/json");
        expect(JSON.parse(res.body).error).toBe("invalid_framing");
      }
      await Bun.sleep(20); // a negative check: nothing reaches the upstream meanwhile
      expect(up.seen.length).toBe(before);
      expect(up.seen.some((s) => s.url.pathname === "/smuggled")).toBe(false);
    });
  }
});

describe("unusual but unambiguous framing is re-framed by fetch: the upstream reads exactly the body", () => {
  const cases: [string, string][] = [
    ["Transfer-Encoding: Chunked (coding names are case-insensitive)", head("Transfer-Encoding: Chunked\r\n") + "3\r\nabc\r\n0\r\n\r\n"],
    ["a chunk extension", head("Transfer-Encoding: chunked\r\n") + "3;name=value\r\nabc\r\n0\r\n\r\n"],
    ["a Content-Length with leading zeros", head("Content-Length: 003\r\n") + "abc"],
  ];
  for (const [what, bytes] of cases) {
    test(what, async () => {
      const before = up.seen.length;
      const res = await rawRequest(proxy.port, bytes);
      expect(res.status).toBe(200);
      expect(up.seen.length).toBe(before + 1);
      expect(up.seen.at(-1)!.body).toBe("abc");
    });
  }

  test("a GET's body is dropped, never read as the next request", async () => {
    const before = up.seen.length;
    const res = await rawRequest(proxy.port, `GET /front HTTP/1.1\r\nHost: x\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`);
    expect(res.status).toBe(200);
    expect(res.responses).toBe(1);
    await Bun.sleep(20); // a negative check: no second request reaches the upstream meanwhile
    expect(up.seen.length).toBe(before + 1);
    expect(up.seen.at(-1)!.url.pathname).toBe("/front");
    expect(up.seen.at(-1)!.headers["content-length"]).toBeUndefined();
  });

  test("a request refused by the guard takes the rest of the connection with it (pipelined requests behind it are not served)", async () => {
    const before = up.seen.length;
    const res = await rawRequest(proxy.port, `TRACE /x HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(res.status).toBe(405);
    expect(res.responses).toBe(1);
    expect(res.closed).toBe(true);
    await Bun.sleep(20); // a negative check: nothing reaches the upstream meanwhile
    expect(up.seen.length).toBe(before);
  });
});
