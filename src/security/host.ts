/**
 * The request's authority in the one spelling routing, filters and the upstream all see.
 * `admin.example.com.` (a fully qualified name with its root dot) names the same host as
 * `admin.example.com` to DNS and to virtual-hosting backends (nginx, Apache match it as such), but
 * would not match a route's `hosts` (config names have no trailing dot) and so could fall through
 * to an open catch-all route while the backend still serves the guarded site (Envoy's
 * strip_trailing_host_dot). Lower-casing is the caller's.
 */

/** Trailing dots of the host name removed, the port kept: `a.example.:80` → `a.example:80`. */
export function canonicalAuthority(authority: string): string {
  // The common case costs two character checks: no dot at the end of the name or before the port.
  if (!authority.endsWith(".") && !authority.includes(".:")) return authority;
  return authority.replace(/\.+(?=(?::\d*)?$)/, "");
}

/** A bare host name (no port) without its trailing dots: `api.example.com.` → `api.example.com`. */
export function canonicalHostName(name: string): string {
  return name.endsWith(".") ? name.replace(/\.+$/, "") : name;
}
