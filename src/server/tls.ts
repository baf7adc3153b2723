/**
 * Downstream TLS helpers shared by both kinds of TLS listener: Bun.serve's `tls` option from the
 * loaded certificates (SNI), and watching the files for rotation.
 *
 * TLS versions: Bun (BoringSSL) and its node:tls refuse TLS 1.0 and 1.1 handshakes with a
 * protocol_version alert (measured with `openssl s_client -tls1_1` at SECLEVEL=0, test/security/
 * tls-listener.test.ts); only 1.2 and 1.3 are spoken.
 */
import type { TLSOptions } from "bun";
import type { ListenerTlsMaterial } from "../security/tls-files.ts";
import { watchPaths } from "../util/watch-path.ts";

export function logTls(fields: Record<string, unknown>): void {
  console.error(JSON.stringify({ time: new Date().toISOString(), ...fields }));
}

/**
 * Bun.serve's SNI form: one entry per server name; the first entry also answers clients without
 * SNI or with a name nobody claims (measured: Bun falls back to the first entry).
 */
export function bunServeTls(material: ListenerTlsMaterial): TLSOptions[] {
  return material.certificates.flatMap(({ cert, key, serverNames }) =>
    serverNames.length === 0 ? [{ cert, key }] : serverNames.map((serverName) => ({ serverName, cert, key })));
}

/**
 * Calls `onChange` (debounced) when any of `files` may have changed. Their directories are
 * watched, for the files' own entries and the symlinks on the way (util/watch-path.ts), not the
 * files: certificate tools replace files by rename (certbot, Kubernetes secrets swap a symlink),
 * which a watch on the old inode would miss. The caller re-reads and compares.
 */
export function watchFiles(files: readonly string[], onChange: () => void, debounceMs = 200): () => void {
  const watcher = watchPaths(files, onChange, {
    debounceMs,
    onError: (dir, e) => logTls({ level: "warn", msg: "cannot watch a TLS file directory; reload with SIGHUP", dir, error: String(e) }),
  });
  return () => watcher.close();
}
