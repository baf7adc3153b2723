/** Addresses, CIDRs and the client IP behind trusted proxies, pure. */
import { describe, expect, test } from "bun:test";
import { CidrSet, parseCidr, parseForwardedIp, parseIp } from "../../src/security/cidr.ts";
import { TrustedProxies } from "../../src/security/trust.ts";

const has = (cidrs: string[], ip: string) => new CidrSet(cidrs).has(parseIp(ip)!);

describe("addresses and CIDRs", () => {
  test("IPv4 and IPv6 text forms parse; anything else does not", () => {
    for (const ok of ["1.2.3.4", "0.0.0.0", "255.255.255.255", "::", "::1", "2001:db8::1", "fe80::1:2:3:4", "1:2:3:4:5:6:7:8", "::ffff:10.0.0.1", "64:ff9b::192.0.2.33"]) {
      expect(parseIp(ok)).toBeDefined();
    }
    for (const bad of ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.4 ", "::1::", "1:2:3:4:5:6:7:8:9", "fe80::1%eth0", "10.0.0.1:80x", "localhost", "1.2.3.4::"]) {
      expect(parseIp(bad)).toBeUndefined();
    }
  });

  test("X-Forwarded-For elements may carry brackets and ports", () => {
    expect(parseForwardedIp("[2001:db8::1]:443")).toEqual(parseIp("2001:db8::1")!);
    expect(parseForwardedIp("[2001:db8::1]")).toEqual(parseIp("2001:db8::1")!);
    expect(parseForwardedIp("192.0.2.1:51234")).toEqual(parseIp("192.0.2.1")!);
    expect(parseForwardedIp("unknown")).toBeUndefined();
    expect(parseForwardedIp("[::1]x")).toBeUndefined();
  });

  test("membership, for both families; IPv4-mapped peers match IPv4 ranges", () => {
    expect(has(["10.0.0.0/8"], "10.255.0.1")).toBe(true);
    expect(has(["10.0.0.0/8"], "11.0.0.1")).toBe(false);
    expect(has(["10.0.0.0/8"], "::ffff:10.1.2.3")).toBe(true);
    expect(has(["192.168.1.7"], "192.168.1.7")).toBe(true);
    expect(has(["192.168.1.7"], "192.168.1.8")).toBe(false);
    expect(has(["172.16.0.0/12"], "172.31.255.255")).toBe(true);
    expect(has(["172.16.0.0/12"], "172.32.0.0")).toBe(false);
    expect(has(["2001:db8::/32"], "2001:db8:ffff::1")).toBe(true);
    expect(has(["2001:db8::/32"], "2001:db9::1")).toBe(false);
    expect(has(["::1/128"], "::1")).toBe(true);
    expect(has(["fd00::/8"], "10.0.0.1")).toBe(false);
    expect(has(["0.0.0.0/0"], "203.0.113.5")).toBe(true);
    expect(has(["0.0.0.0/0"], "2001:db8::1")).toBe(false);
    expect(has(["::/0"], "2001:db8::1")).toBe(true);
  });

  test("a bad CIDR says what is wrong", () => {
    expect(parseCidr("10.0.0.0/33")).toBe("the prefix length must be 0 to 32");
    expect(parseCidr("10.0.0.1/8")).toBe("host bits are set (give the network address, e.g. 10.0.0.0/8)");
    expect(parseCidr("fd00::/129")).toBe("the prefix length must be 0 to 128");
    expect(parseCidr("example.com/8")).toBe("not an IPv4 or IPv6 address");
  });
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
