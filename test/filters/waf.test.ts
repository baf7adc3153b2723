/** The WAF filter: signatures against attack and benign corpora, and block/detect through the proxy. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { normalizeForInspection, RULES } from "../../src/filters/waf/rules.ts";
import { parseText, validateConfig } from "../../src/config/load.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

const groupsOf = (raw: string): string[] => [...new Set(RULES.filter((r) => r.pattern.test(normalizeForInspection(raw, 8192))).map((r) => r.group))];

describe("signatures", () => {
  const attacks: [string, string][] = [
    ["1' OR '1'='1", "sqli"],
    ["1 UNION ALL SELECT username, password FROM users", "sqli"],
    ["admin'--", "sqli"],
    ["1; DROP TABLE users", "sqli"],
    ["1 AND SLEEP(5)", "sqli"],
    ["1%27%20or%20%27a%27%3D%27a", "sqli"], // percent-encoded
    ["1'/**/or/**/'x'='x", "sqli"],
    ["' UNION/**/SELECT table_name FROM information_schema.tables", "sqli"],
    ["<script>alert(1)</script>", "xss"],
    ["%253Cscript%253Ealert(1)%253C%252Fscript%253E", "xss"], // double-encoded
    ['<img src=x onerror="alert(1)">', "xss"],
    ["<svg/onload=alert(1)>", "xss"],
    ["javascript:alert(document.cookie)", "xss"],
    ["<iframe src=//evil.example>", "xss"],
    ["../../etc/passwd", "traversal"],
    ["..%2F..%2F..%2Fetc%2Fshadow", "traversal"],
    ["..\\..\\windows\\win.ini", "traversal"],
    ["/proc/self/environ", "traversal"],
  ];
  for (const [raw, group] of attacks) test(`matches ${group}: ${raw}`, () => expect(groupsOf(raw)).toContain(group));

  const benign = [
    "O'Brien", "rock and roll", "select a plan", "union station", "3 > 2 and 1 < 4", "a-b-c", "email@example.com",
    "/docs/v1.2/index.html", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "https://www.example.com/search?q=shoes", "it's #1", "50% off", "C++ & C#", "sleep well", "file.tar.gz", "2024-01-01T10:00:00Z",
    "{\"name\":\"x\",\"tags\":[\"a\",\"b\"]}", "data science", "a=b&c=d", "sid=abc123; theme=dark",
  ];
  for (const raw of benign) test(`leaves alone: ${raw}`, () => expect(groupsOf(raw)).toEqual([]));
});

let up: Upstream;
let seen: string[] = [];
let proxy: TestProxy;
beforeAll(async () => {
  up = startUpstream((req) => {
    seen.push(new URL(req.url).pathname + new URL(req.url).search);
    return new Response("ok");
  });
  proxy = await startProxy({
    routes: [
      { name: "watched", match: { path: { prefix: "/watched" } }, to: "app", filters: [{ type: "waf", mode: "detect" }] },
      { name: "short", match: { path: { prefix: "/short" } }, to: "app", filters: [{ type: "waf", max_inspect: "1KiB" }] },
      { name: "guarded", match: { path: { prefix: "/" } }, to: "app", filters: [{ type: "waf", disable: ["xss-url-scheme"] }] },
    ],
    clusters: { app: { endpoints: [up.origin] } },
  });
});
afterAll(async () => {
  await proxy.stop();
  up.stop(true);
});

test("block mode: 403 waf_blocked naming rule and place, the upstream never sees it, the log has the matches", async () => {
  seen = [];
  const res = await fetch(`${proxy.origin}/search?q=${encodeURIComponent("1' OR '1'='1")}&page=2`, { headers: { "x-request-id": "waf-1" } });
  expect(res.status).toBe(403);
  const body = (await res.json()) as { error: string; message: string; request_id: string };
  expect(body).toMatchObject({ error: "waf_blocked", request_id: "waf-1" });
  expect(body.message).toContain("sqli-tautology (query:q)");
  expect(seen).toEqual([]);
  const line = await proxy.logOf("waf-1");
  expect(line.waf).toEqual({ mode: "block", matches: [{ rule: "sqli-tautology", where: "query:q" }] });
  expect(line.status).toBe(403);
});

test("headers, double encoding and parameter names are inspected too", async () => {
  seen = [];
  const cases: [string, Record<string, string>][] = [
    ["/x", { "user-agent": "<script>alert(1)</script>" }],
    ["/x", { cookie: "sid=1; pref=%3Cscript%3E" }],
    ["/x?file=%252e%252e%252fetc%252fpasswd", {}],
    [`/x?${encodeURIComponent("<svg onload=alert(1)>")}=1`, {}],
  ];
  for (const [path, headers] of cases) expect((await fetch(proxy.origin + path, { headers })).status).toBe(403);
  expect(seen).toEqual([]);
  // A disabled rule does not fire; clean requests pass.
  expect((await fetch(`${proxy.origin}/x?next=javascript:void(0)`)).status).toBe(200);
  expect((await fetch(`${proxy.origin}/products/v1.2/list?q=rock+and+roll&sort=-price`, { headers: { referer: "https://shop.example/?a=b" } })).status).toBe(200);
  expect(seen.length).toBe(2);
});

test("padding cannot push an attack past the inspected part: a value over max_inspect is itself a match", async () => {
  seen = [];
  const padded = `sid=${"a".repeat(2000)}; pref=<script>alert(1)</script>`;
  const res = await fetch(`${proxy.origin}/short/x`, { headers: { cookie: padded } });
  expect(res.status).toBe(403);
  expect(((await res.json()) as { message: string }).message).toContain("oversized-value (header:cookie)");
  // With the default (16KiB, above Bun's head limit) the whole padded value is searched.
  const whole = await fetch(`${proxy.origin}/x`, { headers: { cookie: padded } });
  expect(whole.status).toBe(403);
  expect(((await whole.json()) as { message: string }).message).toContain("xss-script (header:cookie)");
  expect(seen).toEqual([]);
});

test("detect mode forwards the request and logs and counts what matched", async () => {
  seen = [];
  const res = await fetch(`${proxy.origin}/watched?id=${encodeURIComponent("1 UNION SELECT password FROM users")}`, { headers: { "x-request-id": "waf-2" } });
  expect(res.status).toBe(200);
  expect(seen.length).toBe(1);
  const line = await proxy.logOf("waf-2");
  expect(line.waf).toEqual({ mode: "detect", matches: [{ rule: "sqli-union", where: "query:id" }] });
  const admin = await (await import("../../src/observe/worker-metrics.ts")).metricsText();
  expect(admin).toMatch(/switchyard_waf_matches_total\{route="watched",rule="sqli-union",mode="detect"\} [1-9]/);
});

test("bad waf configs are refused with their path", () => {
  const bad = (filter: string) => validateConfig("t.yaml", parseText("t.yaml", `listeners: [{port: 8080}]\nclusters: {a: {endpoints: ["127.0.0.1:1"]}}\nroutes: [{to: a, filters: [${filter}]}]\n`));
  expect(() => bad("{type: waf, mode: shout}")).toThrow(/routes\[0\]\.filters\[0\]\.mode/);
  expect(() => bad("{type: waf, rules: [sqli, rce]}")).toThrow(/routes\[0\]\.filters\[0\]\.rules\[1\]/);
  expect(() => bad("{type: waf, disable: ['Not An Id']}")).toThrow(/must be a rule id/);
});
