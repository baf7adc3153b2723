/**
 * Where an egress request may go: the policy applied to the name asked for and to every address
 * it resolves to; the connection then goes to the first permitted address itself.
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { SwitchyardError } from "../util/errors.ts";
import type { EgressPolicy, Target } from "./policy.ts";

export type Resolver = (host: string) => Promise<string[]>;

const systemResolver: Resolver = async (host) => (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);

export const denied = (message: string) => new SwitchyardError({ code: "egress_denied", status: 403, source: "client", message });

/** The address to connect to, or why not (403 refused, 502 the name does not resolve, 504 it took too long). */
export async function chooseAddress(policy: EgressPolicy, target: Target, timeoutMs: number, resolve: Resolver = systemResolver): Promise<string | SwitchyardError> {
  const shown = `${target.host.includes(":") ? `[${target.host}]` : target.host}:${target.port}`;
  const nameAllowed = policy.nameAllowed(target);
  // A name no rule could allow is refused before any DNS lookup is made for it.
  if (!nameAllowed && !policy.hasRanges) return denied(`${shown} is not an allowed destination`);
  let addresses: string[];
  if (isIP(target.host) !== 0) addresses = [target.host];
  else {
    let timer: Timer | undefined;
    try {
      addresses = await Promise.race([
        resolve(target.host),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("timeout")), timeoutMs))),
      ]);
    } catch (e) {
      // Resolved only to be checked against address rules: a name no rule allows stays refused.
      if (!nameAllowed) return denied(`${shown} is not an allowed destination`);
      const late = (e as Error).message === "timeout";
      return new SwitchyardError({
        code: late ? "egress_dns_timeout" : "egress_dns_failed", status: late ? 504 : 502, source: "upstream",
        message: `${target.host} ${late ? "did not resolve in time" : "does not resolve"}`,
      });
    } finally {
      clearTimeout(timer);
    }
  }
  const permitted = addresses.find((ip) => policy.permits(target, ip, nameAllowed));
  if (permitted !== undefined) return permitted;
  if (nameAllowed) return denied(`${shown} resolves to a loopback, link-local or other special address (allow it with a cidr rule)`);
  return denied(`${shown} is not an allowed destination`);
}
