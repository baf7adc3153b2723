/** Balancers are pure: distributions and key movement measured over many picks, no sockets. */
import { describe, expect, test } from "bun:test";
import { buildBalancer } from "../../src/upstream/balancers/index.ts";
import { BalancerSchema } from "../../src/upstream/balancers/schema.ts";
import type { BalancedEndpoint } from "../../src/upstream/balancers/types.ts";

interface E extends BalancedEndpoint {
  address: string;
  weight: number;
  active: number;
}

const ep = (address: string, weight = 1, active = 0): E => ({ address, weight, active });

/** A seeded PRNG (mulberry32) so distributions are reproducible. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function balancer(raw: Record<string, unknown>, endpoints: E[], seed = 1) {
  return buildBalancer(endpoints, BalancerSchema.parse(raw), seeded(seed));
}

function shares(picks: E[], endpoints: E[]): number[] {
  return endpoints.map((e) => picks.filter((p) => p === e).length / picks.length);
}

const keyHash = (i: number) => Bun.hash.xxHash32(`user-${i}`);

describe("weights", () => {
  for (const type of ["weighted_round_robin", "random", "least_request"]) {
    test(`${type}: weights 1:3 give 25% ± 3% over 10,000 picks`, () => {
      const endpoints = [ep("a:1", 1), ep("b:1", 3)];
      const b = balancer({ type }, endpoints);
      const picks = Array.from({ length: 10_000 }, () => b.pick(endpoints, undefined));
      const [a] = shares(picks, endpoints);
      expect(a!).toBeGreaterThan(0.22);
      expect(a!).toBeLessThan(0.28);
    });
  }

  test("smooth weighted round robin interleaves instead of bursting", () => {
    const endpoints = [ep("a:1", 1), ep("b:1", 3)];
    const b = balancer({ type: "weighted_round_robin" }, endpoints);
    const seq = Array.from({ length: 8 }, () => b.pick(endpoints, undefined).address[0]).join("");
    expect(seq).toBe("babbbabb");
  });

  test("round_robin visits each candidate in turn and ignores weights", () => {
    const endpoints = [ep("a:1", 5), ep("b:1"), ep("c:1")];
    const b = balancer({ type: "round_robin" }, endpoints);
    expect(Array.from({ length: 6 }, () => b.pick(endpoints, undefined).address[0]).join("")).toBe("abcabc");
  });
});

describe("least_request", () => {
  test("with equal weights it prefers the less loaded of its samples", () => {
    const endpoints = [ep("a:1", 1, 10), ep("b:1", 1, 0), ep("c:1", 1, 10), ep("d:1", 1, 10)];
    const b = balancer({ type: "least_request" }, endpoints);
    const picks = Array.from({ length: 10_000 }, () => b.pick(endpoints, undefined));
    const [, idle] = shares(picks, endpoints);
    // b is chosen whenever sampled: P(b among 2 of 4) = 1/2.
    expect(idle!).toBeGreaterThan(0.45);
    expect(idle!).toBeLessThan(0.55);
  });

  test("load shifts picks away from a busy endpoint even with weights", () => {
    const endpoints = [ep("a:1", 1, 0), ep("b:1", 3, 8)];
    const b = balancer({ type: "least_request" }, endpoints);
    const picks = Array.from({ length: 10_000 }, () => b.pick(endpoints, undefined));
    // effective weights 1/1 vs 3/9: a gets 75%
    expect(shares(picks, endpoints)[0]!).toBeCloseTo(0.75, 1);
  });
});

describe("consistent hashing", () => {
  const ten = Array.from({ length: 10 }, (_, i) => ep(`10.0.0.${i}:80`));
  for (const type of ["ring_hash", "maglev"]) {
    test(`${type}: the same key always goes to the same endpoint`, () => {
      const b = balancer({ type, hash_on: { header: "x-user" } }, ten);
      for (let i = 0; i < 100; i++) expect(b.pick(ten, keyHash(i))).toBe(b.pick(ten, keyHash(i)));
    });

    test(`${type}: keys spread evenly (each of 10 endpoints within 10% ± 4%)`, () => {
      const b = balancer({ type, hash_on: { header: "x-user" } }, ten);
      const picks = Array.from({ length: 20_000 }, (_, i) => b.pick(ten, keyHash(i)));
      for (const share of shares(picks, ten)) {
        expect(share).toBeGreaterThan(0.06);
        expect(share).toBeLessThan(0.14);
      }
    });

    test(`${type}: removing one of 10 endpoints moves ≤ 15% of keys, and only its own`, () => {
      const before = balancer({ type, hash_on: { header: "x-user" } }, ten);
      const nine = ten.slice(1);
      const after = balancer({ type, hash_on: { header: "x-user" } }, nine);
      let moved = 0;
      let movedFromOthers = 0;
      const n = 20_000;
      for (let i = 0; i < n; i++) {
        const a = before.pick(ten, keyHash(i));
        const b = after.pick(nine, keyHash(i));
        if (a !== b) {
          moved++;
          if (a !== ten[0]) movedFromOthers++;
        }
      }
      expect(moved / n).toBeLessThanOrEqual(0.15);
      // Maglev tolerates a little disruption by design; the ring none at all.
      expect(movedFromOthers / n).toBeLessThanOrEqual(type === "ring_hash" ? 0 : 0.03);
    });

    test(`${type}: an endpoint that is not a candidate (unhealthy, tried) is skipped; only its keys move`, () => {
      const b = balancer({ type, hash_on: { header: "x-user" } }, ten);
      const healthy = ten.filter((_, i) => i !== 3);
      for (let i = 0; i < 2000; i++) {
        const full = b.pick(ten, keyHash(i));
        const partial = b.pick(healthy, keyHash(i));
        expect(partial).not.toBe(ten[3]!);
        if (full !== ten[3]) expect(partial).toBe(full);
      }
    });

    test(`${type}: weights 1:3 give about 25% of keys`, () => {
      const two = [ep("a:1", 1), ep("b:1", 3)];
      const b = balancer({ type, hash_on: { header: "x-user" } }, two);
      const picks = Array.from({ length: 20_000 }, (_, i) => b.pick(two, keyHash(i)));
      expect(shares(picks, two)[0]!).toBeGreaterThan(0.2);
      expect(shares(picks, two)[0]!).toBeLessThan(0.3);
    });

    test(`${type}: a request without the key gets a (weighted) random endpoint`, () => {
      const b = balancer({ type, hash_on: { cookie: "sid" } }, ten);
      const picks = new Set(Array.from({ length: 200 }, () => b.pick(ten, undefined)));
      expect(picks.size).toBeGreaterThan(5);
    });
  }
});

describe("config", () => {
  test("hash_on needs exactly one attribute; maglev's table must be prime", () => {
    expect(BalancerSchema.safeParse({ type: "ring_hash", hash_on: {} }).success).toBe(false);
    expect(BalancerSchema.safeParse({ type: "ring_hash", hash_on: { header: "a", path: true } }).success).toBe(false);
    expect(BalancerSchema.safeParse({ type: "maglev", hash_on: { path: true }, table_size: 1000 }).success).toBe(false);
    expect(BalancerSchema.safeParse({ type: "maglev", hash_on: { path: true }, table_size: 1009 }).success).toBe(true);
    expect(BalancerSchema.safeParse({ type: "nope" }).success).toBe(false);
  });
});
