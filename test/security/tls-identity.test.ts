/** Client certificate identity and its x-forwarded-client-cert form, from real certificates, with hostile names. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { identityOf, parseSubjectAltName, xfccValue } from "../../src/security/client-identity.ts";
import { loadListenerTls, namesOf, TlsFileError } from "../../src/security/tls-files.ts";
import { makePki, type TestPki } from "../helpers/certs.ts";

let pki: TestPki;
beforeAll(() => {
  pki = makePki();
});
afterAll(() => pki.cleanup());

describe("identityOf", () => {
  test("subject in RFC 4514 order, DNS and URI SANs, SHA-256 of the DER", () => {
    const c = pki.issue("web", { subject: "/C=US/O=Acme/CN=web", dns: ["web.acme.test", "web2.acme.test"], ips: ["10.0.0.1"], uris: ["spiffe://acme.test/ns/default/sa/web"], usage: "client" });
    const x509 = new X509Certificate(c.certPem);
    expect(identityOf(x509)).toEqual({
      subject: "CN=web,O=Acme,C=US",
      sans: ["web.acme.test", "web2.acme.test"],
      uris: ["spiffe://acme.test/ns/default/sa/web"],
      fingerprint256: new Bun.CryptoHasher("sha256").update(x509.raw).digest("hex"),
    });
  });

  test("a SAN holding a comma stays one name, and a comma in the subject stays escaped", () => {
    const c = pki.issue("evil", { subject: "/O=Acme, Inc./CN=evil", dns: ["evil.test, DNS:admin.test"], uris: ["spiffe://acme.test/a,b;c=d"], usage: "client" });
    const id = identityOf(new X509Certificate(c.certPem));
    expect(id.sans).toEqual(["evil.test, DNS:admin.test"]);
    expect(id.uris).toEqual(["spiffe://acme.test/a,b;c=d"]);
    expect(id.subject).toBe("CN=evil,O=Acme\\, Inc.");
    expect(xfccValue(id)).toBe(`Hash=${id.fingerprint256};Subject="CN=evil,O=Acme\\\\, Inc.";URI="spiffe://acme.test/a,b;c=d";DNS="evil.test, DNS:admin.test"`);
  });
});

describe("parseSubjectAltName", () => {
  test("node's form: plain entries, JSON-quoted ones, nothing", () => {
    expect(parseSubjectAltName('DNS:a.test, URI:"spiffe://x/a\\u002cb", IP Address:10.0.0.1, DNS:b.test')).toEqual([
      ["DNS", "a.test"], ["URI", "spiffe://x/a,b"], ["IP Address", "10.0.0.1"], ["DNS", "b.test"],
    ]);
    expect(parseSubjectAltName(undefined)).toEqual([]);
    expect(parseSubjectAltName("")).toEqual([]);
    expect(parseSubjectAltName('DNS:"unterminated')).toEqual([["DNS", "unterminated"]]);
  });
});

describe("xfccValue", () => {
  test("control characters and non-ASCII are percent-encoded; the result is a valid header value", () => {
    const value = xfccValue({ subject: 'CN=a"b\\c', sans: ["x.test\r\nx-injected: 1"], uris: ["spiffe://é/\ud800"], fingerprint256: "ab".repeat(32) });
    expect(value).toBe(`Hash=${"ab".repeat(32)};Subject="CN=a\\"b\\\\c";URI=spiffe://%C3%A9/%EF%BF%BD;DNS="x.test%0D%0Ax-injected: 1"`);
    expect(value).not.toMatch(/[\r\n]/);
    expect(() => new Headers({ "x-forwarded-client-cert": value })).not.toThrow();
  });
});

describe("listener TLS files", () => {
  test("server names default to the certificate's DNS SANs, else its CN", () => {
    const withSans = pki.issue("s1", { subject: "/CN=ignored.test", dns: ["A.test", "*.b.test"], usage: "server" });
    const cnOnly = pki.issue("s2", { subject: "/CN=only-cn.test", usage: "server" });
    expect(namesOf(new X509Certificate(withSans.certPem))).toEqual(["a.test", "*.b.test"]);
    expect(namesOf(new X509Certificate(cnOnly.certPem))).toEqual(["only-cn.test"]);
  });

  test("every problem at once, each with its path", () => {
    const a = pki.issue("t1", { subject: "/CN=t1.test", dns: ["t1.test"], usage: "server" });
    const b = pki.issue("t2", { subject: "/CN=t2.test", dns: ["t2.test"], usage: "server" });
    const error = (() => {
      try {
        loadListenerTls({
          certificates: [{ cert: a.cert, key: b.key }, { cert: pki.file("missing.pem"), key: a.key }, { cert: a.key, key: a.key }],
          client_auth: { mode: "require", ca: a.key, forward_client_cert: "sanitize", max_pending_handshakes: 1024 },
          watch: false,
        }, ["listeners", 2, "tls"]);
      } catch (e) {
        return e as TlsFileError;
      }
    })();
    expect(error).toBeInstanceOf(TlsFileError);
    expect(error!.problems).toEqual([
      `listeners[2].tls.certificates[0].key: ${b.key} is not the key of the certificate in ${a.cert}`,
      `listeners[2].tls.certificates[1].cert: cannot read ${pki.file("missing.pem")}: ENOENT`,
      `listeners[2].tls.certificates[2].cert: ${a.key} holds no PEM certificate`,
      `listeners[2].tls.client_auth.ca: ${a.key} holds no PEM certificate`,
    ]);
  });
});
