/**
 * Reads and checks the PEM files a config names (listener certificates and client CAs, cluster
 * CAs and client certificates). Every problem carries its config path, so `switchyard validate`,
 * start and reload report them like schema errors; a reload with a bad file keeps the old one.
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { formatPath } from "../config/path.ts";
import { parseSubjectAltName } from "./client-identity.ts";
import type { ListenerTls, UpstreamTls } from "./tls-schema.ts";

/** A problem with a file, at its config path (the shape of config/load.ts's ConfigIssue). */
export interface TlsFileIssue {
  readonly path: string;
  readonly message: string;
}

/** One or more problems with the files; `problems` as `path: message` lines. */
export class TlsFileError extends Error {
  readonly problems: readonly string[];

  constructor(readonly issues: readonly TlsFileIssue[]) {
    const problems = issues.map((i) => `${i.path}: ${i.message}`);
    super(problems.join("; "));
    this.name = "TlsFileError";
    this.problems = problems;
  }
}

export interface CertificateMaterial {
  readonly cert: string;
  readonly key: string;
  /** The SNI names it answers (the first certificate also answers everything else). */
  readonly serverNames: readonly string[];
}

export interface ListenerTlsMaterial {
  readonly certificates: readonly CertificateMaterial[];
  /** The client CA bundle, with client_auth. */
  readonly clientCa?: string;
  /** The files read, for watching. */
  readonly files: readonly string[];
  /** Changes whenever any file's content does: a reload with the same digest has nothing to do. */
  readonly digest: string;
}

export interface UpstreamTlsMaterial {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly serverName?: string;
  readonly verify: boolean;
  readonly files: readonly string[];
}

type Path = (string | number)[];

/** Collects problems while reading; each read returns "" on failure so the checks can go on. */
class Reader {
  readonly problems: TlsFileIssue[] = [];
  readonly files: string[] = [];
  readonly contents: string[] = [];

  problem(path: Path, message: string): void {
    this.problems.push({ path: formatPath(path), message });
  }

  read(file: string, path: Path): string {
    this.files.push(file);
    try {
      const text = readFileSync(file, "utf8");
      this.contents.push(text);
      return text;
    } catch (e) {
      this.problem(path, `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      return "";
    }
  }

  /** The first certificate of a PEM file (a chain's leaf), or undefined with a problem. */
  certificate(file: string, path: Path): { pem: string; x509: X509Certificate } | undefined {
    const pem = this.read(file, path);
    if (pem === "") return undefined;
    try {
      return { pem, x509: new X509Certificate(pem) };
    } catch {
      this.problem(path, `${file} holds no PEM certificate`);
      return undefined;
    }
  }

  /** A private key that belongs to `cert`. */
  key(file: string, path: Path, cert: X509Certificate | undefined, certFile: string): string | undefined {
    const pem = this.read(file, path);
    if (pem === "") return undefined;
    try {
      const key = createPrivateKey(pem);
      if (cert && !cert.checkPrivateKey(key)) {
        this.problem(path, `${file} is not the key of the certificate in ${certFile}`);
        return undefined;
      }
      return pem;
    } catch {
      this.problem(path, `${file} holds no unencrypted PEM private key`);
      return undefined;
    }
  }

  /** A bundle of CA certificates (each one must parse). */
  caBundle(file: string, path: Path): string | undefined {
    const pem = this.read(file, path);
    if (pem === "") return undefined;
    const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    if (blocks.length === 0) {
      this.problem(path, `${file} holds no PEM certificate`);
      return undefined;
    }
    for (const [i, block] of blocks.entries()) {
      try {
        new X509Certificate(block);
      } catch {
        this.problem(path, `certificate ${i + 1} in ${file} does not parse`);
        return undefined;
      }
    }
    return pem;
  }

  digest(): string {
    return new Bun.CryptoHasher("sha256").update(this.contents.join("\0")).digest("hex");
  }
}

/** The DNS names a certificate is for: its DNS SANs, else its CN. */
export function namesOf(cert: X509Certificate): string[] {
  const dns = parseSubjectAltName(cert.subjectAltName).filter(([type]) => type === "DNS").map(([, v]) => v.toLowerCase());
  if (dns.length > 0) return dns;
  const cn = /^CN=(.+)$/m.exec(cert.subject)?.[1];
  return cn ? [cn.toLowerCase()] : [];
}

/** Reads a listener's certificates (and client CA); throws TlsFileError listing every problem. */
export function loadListenerTls(tls: ListenerTls, path: Path): ListenerTlsMaterial {
  const r = new Reader();
  const certificates: CertificateMaterial[] = [];
  tls.certificates.forEach((c, i) => {
    const at = [...path, "certificates", i];
    const cert = r.certificate(c.cert, [...at, "cert"]);
    const key = r.key(c.key, [...at, "key"], cert?.x509, c.cert);
    if (cert === undefined || key === undefined) return;
    const serverNames = c.server_names?.map((n) => n.toLowerCase()) ?? namesOf(cert.x509);
    if (serverNames.length === 0 && i > 0) r.problem([...at, "server_names"], `the certificate in ${c.cert} names no host; list its server_names`);
    certificates.push({ cert: cert.pem, key, serverNames });
  });
  const clientCa = tls.client_auth ? r.caBundle(tls.client_auth.ca, [...path, "client_auth", "ca"]) : undefined;
  if (r.problems.length > 0) throw new TlsFileError(r.problems);
  return { certificates, clientCa, files: r.files, digest: r.digest() };
}

/** Reads a cluster's upstream TLS files; throws TlsFileError listing every problem. */
export function loadUpstreamTls(tls: UpstreamTls, path: Path): UpstreamTlsMaterial {
  const r = new Reader();
  const ca = tls.ca === undefined ? undefined : r.caBundle(tls.ca, [...path, "ca"]);
  const cert = tls.cert === undefined ? undefined : r.certificate(tls.cert, [...path, "cert"]);
  const key = tls.key === undefined ? undefined : r.key(tls.key, [...path, "key"], cert?.x509, tls.cert ?? "");
  if (r.problems.length > 0) throw new TlsFileError(r.problems);
  return { ca, cert: cert?.pem, key, serverName: tls.server_name, verify: tls.verify, files: r.files };
}

/** Every problem with the TLS files of a config (for load and `validate`); none when all read and match. */
export function tlsFileProblems(config: {
  listeners: readonly { tls?: ListenerTls }[];
  clusters: Readonly<Record<string, { tls?: UpstreamTls }>>;
}): TlsFileIssue[] {
  const problems: TlsFileIssue[] = [];
  const collect = (load: () => unknown) => {
    try {
      load();
    } catch (e) {
      if (!(e instanceof TlsFileError)) throw e;
      problems.push(...e.issues);
    }
  };
  config.listeners.forEach((l, i) => l.tls && collect(() => loadListenerTls(l.tls!, ["listeners", i, "tls"])));
  for (const [name, c] of Object.entries(config.clusters)) if (c.tls) collect(() => loadUpstreamTls(c.tls!, ["clusters", name, "tls"]));
  return problems;
}
