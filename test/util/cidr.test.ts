import { expect, test } from "bun:test";
import { CidrSet, parseCidr, parseIp } from "../../src/util/cidr.ts";

test("IPv4, IPv6 and IPv4-mapped addresses parse to one 128-bit space", () => {
  expect(parseIp("10.1.2.3")).toBe(parseIp("::ffff:10.1.2.3"));
  expect(parseIp("::ffff:a01:203")).toBe(parseIp("10.1.2.3"));
  expect(parseIp("::1")).toBe(1n);
  expect(parseIp("[2001:db8::1]")).toBe(parseIp("2001:0db8:0:0:0:0:0:1"));
  expect(parseIp("fe80::1%eth0")).toBe(parseIp("fe80::1"));
  for (const bad of ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.-1", "::1::2", "1:2:3:4:5:6:7:8:9", "12345::", "g::1", "1:2:3:4:5:6:7", "localhost"]) {
    expect(parseIp(bad)).toBeUndefined();
  }
});

test("ranges match their members only, both families, /0 and single hosts included", () => {
  const set = new CidrSet(["10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "fd00::/8"]);
  expect(set.has("10.255.0.1")).toBe(true);
  expect(set.has("11.0.0.1")).toBe(false);
  expect(set.has("192.168.1.7")).toBe(true);
  expect(set.has("192.168.1.8")).toBe(false);
  expect(set.has("::ffff:10.0.0.1")).toBe(true); // how a dual-stack socket reports an IPv4 peer
  expect(set.has("2001:db8:ffff::1")).toBe(true);
  expect(set.has("2001:db9::1")).toBe(false);
  expect(set.has("fdab::1")).toBe(true);
  expect(set.has("not-an-ip")).toBe(false);
  expect(new CidrSet(["0.0.0.0/0"]).has("203.0.113.9")).toBe(true);
  expect(new CidrSet(["0.0.0.0/0"]).has("2001:db8::1")).toBe(false); // an IPv4 /0 is not all of IPv6
  expect(new CidrSet(["::/0"]).has("2001:db8::1")).toBe(true);
  expect(new CidrSet([]).has("10.0.0.1")).toBe(false);
});

test("malformed ranges are refused", () => {
  for (const bad of ["10.0.0.0/33", "2001:db8::/129", "10.0.0.0/", "10.0.0.0/-1", "10.0.0/8", "x/8"]) expect(parseCidr(bad)).toBeUndefined();
  expect(() => new CidrSet(["10.0.0.0/8", "nope"])).toThrow("not an IP address or CIDR range: nope");
});

test("IPv4 addresses take the 32-bit path with the same answers as the 128-bit one", () => {
  const set = new CidrSet(["10.0.0.0/8", "::ffff:192.168.0.0/112", "::/0"]);
  const v6only = new CidrSet(["2001:db8::/32", "10.0.0.0/8"]);
  expect(set.has("203.0.113.9")).toBe(true); // ::/0 holds the mapped block too
  expect(v6only.has("203.0.113.9")).toBe(false);
  expect(v6only.has("10.9.9.9")).toBe(true);
  expect(v6only.has("::FFFF:10.9.9.9")).toBe(true);
  expect(new CidrSet(["::ffff:192.168.0.0/112"]).has("192.168.7.1")).toBe(true);
  expect(new CidrSet(["::ffff:192.168.0.0/112"]).has("192.169.0.1")).toBe(false);
  expect(new CidrSet(["0.0.0.0/1"]).has("127.255.255.255")).toBe(true);
  expect(new CidrSet(["128.0.0.0/1"]).has("255.255.255.255")).toBe(true);
  expect(new CidrSet(["128.0.0.0/1"]).has("127.0.0.1")).toBe(false);
  for (const bad of ["1.2.3.04", "1.2.3", "1.2.3.4.", ".1.2.3", "1..2.3", "::ffff:"]) expect(v6only.has(bad)).toBe(false);
});
