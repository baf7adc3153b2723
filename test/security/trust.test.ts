/** The client IP behind trusted proxies, pure (CIDR sets themselves: test/util/cidr.test.ts). */
import { describe, expect, test } from "bun:test";
import { forwardedAddress, TrustedProxies } from "../../src/security/trust.ts";

test("X-Forwarded-For elements may carry brackets and ports; anything else is no address", () => {
  expect(forwardedAddress("[2001:db8::1]:443")).toBe("2001:db8::1");
  expect(forwardedAddress("[2001:db8::1]")).toBe("2001:db8::1");
  expect(forwardedAddress("192.0.2.1:51234")).toBe("192.0.2.1");
  expect(forwardedAddress("2001:db8::1")).toBe("2001:db8::1");
  for (const bad of ["unknown", "[::1]x", "01.2.3.4", "1.2.3.4:http", "fe80::1%eth0", "", "_hidden"]) expect(forwardedAddress(bad)).toBeUndefined();
});

describe("the client behind trusted proxies", () => {
  const proxies = new TrustedProxies(["127.0.0.1", "10.0.0.0/8", "fd00::/8"]);
  const peer = (address: string, xff: string | null) => proxies.peer(address, new Headers(xff === null ? {} : { "x-forwarded-for": xff }));

  test("an untrusted peer is the client, whatever its X-Forwarded-For says", () => {
    expect(peer("203.0.113.5", "1.1.1.1")).toEqual({ peerIp: "203.0.113.5", trusted: false, clientIp: "203.0.113.5" });
    expect(peer("::ffff:203.0.113.5", null)).toEqual({ peerIp: "203.0.113.5", trusted: false, clientIp: "203.0.113.5" });
  });

  test("a trusted peer: the chain is walked from the right, past trusted hops, to the first untrusted one", () => {
    expect(peer("127.0.0.1", "198.51.100.7, 10.0.0.5").clientIp).toBe("198.51.100.7");
    expect(peer("127.0.0.1", "6.6.6.6, 198.51.100.7, 10.0.0.5").clientIp).toBe("198.51.100.7"); // a forged left part is ignored
    expect(peer("::ffff:10.1.1.1", "2001:db8::9, fd00::1").clientIp).toBe("2001:db8::9");
    expect(peer("127.0.0.1", "[2001:db8::9]:4711").clientIp).toBe("2001:db8::9");
    expect(peer("127.0.0.1", "198.51.100.7:5555").clientIp).toBe("198.51.100.7");
  });

  test("all hops trusted: the leftmost; no chain: the peer; garbage stops the walk at the last trusted hop", () => {
    expect(peer("127.0.0.1", "10.0.0.9, 10.0.0.5").clientIp).toBe("10.0.0.9");
    expect(peer("127.0.0.1", null)).toEqual({ peerIp: "127.0.0.1", trusted: true, clientIp: "127.0.0.1" });
    expect(peer("127.0.0.1", "198.51.100.7, evil, 10.0.0.5").clientIp).toBe("10.0.0.5");
    expect(peer("127.0.0.1", "").clientIp).toBe("127.0.0.1");
  });
});
