/**
 * Certificates made at test time with the openssl CLI: a CA, and server and client certificates
 * it signs (EC P-256, valid for a day). Files live in a temp directory removed by `cleanup()`.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { tempDir } from "./tmp.ts";

export interface TestCert {
  /** Paths of the PEM files. */
  cert: string;
  key: string;
  /** Their contents. */
  certPem: string;
  keyPem: string;
}

export interface IssueOptions {
  /** The subject, openssl's form: `/CN=web/O=Acme`. */
  subject: string;
  dns?: string[];
  ips?: string[];
  uris?: string[];
  /** serverAuth or clientAuth extended key usage. */
  usage: "server" | "client";
  /** The signing CA; default the PKI's own. */
  ca?: TestCert;
}

export interface TestPki {
  dir: string;
  ca: TestCert;
  newCa(name: string, subject: string): TestCert;
  issue(name: string, options: IssueOptions): TestCert;
  /** A path in the PKI's directory (for files a test writes itself). */
  file(name: string): string;
  cleanup(): void;
}

function openssl(args: string[], cwd: string): void {
  const result = Bun.spawnSync(["openssl", ...args], { cwd, stdout: "pipe", stderr: "pipe" });
  if (result.exitCode !== 0) throw new Error(`openssl ${args.join(" ")} failed: ${result.stderr.toString()}`);
}

function load(cert: string, key: string): TestCert {
  return { cert, key, certPem: readFileSync(cert, "utf8"), keyPem: readFileSync(key, "utf8") };
}

export function makePki(): TestPki {
  const dir = tempDir("switchyard-pki-");
  const newCa = (name: string, subject: string): TestCert => {
    openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.pem`, "-days", "1", "-subj", subject], dir.path);
    return load(dir.file(`${name}.pem`), dir.file(`${name}.key`));
  };
  const ca = newCa("ca", "/CN=Switchyard Test CA");
  const issue = (name: string, o: IssueOptions): TestCert => {
    const signer = o.ca ?? ca;
    openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", o.subject], dir.path);
    // SANs go in their own section, one per line, so a value may hold commas (hostile-input tests).
    const sans = [
      ...(o.dns ?? []).map((d, i) => `DNS.${i + 1} = ${d}`),
      ...(o.ips ?? []).map((ip, i) => `IP.${i + 1} = ${ip}`),
      ...(o.uris ?? []).map((u, i) => `URI.${i + 1} = ${u}`),
    ];
    const ext = [
      "[ext]", `extendedKeyUsage = ${o.usage === "server" ? "serverAuth" : "clientAuth"}`,
      ...(sans.length ? ["subjectAltName = @alt", "[alt]", ...sans] : []),
    ];
    writeFileSync(dir.file(`${name}.ext`), `${ext.join("\n")}\n`);
    openssl(["x509", "-req", "-in", `${name}.csr`, "-CA", signer.cert, "-CAkey", signer.key, "-CAcreateserial", "-out", `${name}.pem`, "-days", "1", "-extfile", `${name}.ext`, "-extensions", "ext"], dir.path);
    return load(dir.file(`${name}.pem`), dir.file(`${name}.key`));
  };
  return { dir: dir.path, ca, newCa, issue, file: dir.file, cleanup: dir.cleanup };
}

