/**
 * TLS settings: a listener's certificates and client authentication (downstream), and a cluster's
 * verification and client certificate (upstream). Only the shape is checked here; the files are
 * read and checked by security/tls-files.ts (at start, on reload and by `switchyard validate`).
 */
import { z } from "zod";
import { FilePathSchema } from "../config/file-path.ts";

/** A path to a PEM file, relative to the config file's folder. */
const PemPathSchema = FilePathSchema;

/** `example.com` or `*.example.com` (one label), as a TLS client sends it in SNI. */
const ServerNameSchema = z
  .string()
  .regex(/^(?:\*\.)?(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i, "must be a host name, or *.name for any one label");

export const CertificateSchema = z.strictObject({
  /** The certificate chain (leaf first, then intermediates), PEM. */
  cert: PemPathSchema,
  /** Its private key, PEM (unencrypted). */
  key: PemPathSchema,
  /**
   * SNI names this certificate answers (`api.example.com`, `*.example.com`). Default: the DNS
   * names of the certificate itself. The first certificate also answers clients that send no
   * SNI or a name no certificate claims.
   */
  server_names: z.array(ServerNameSchema).min(1).optional(),
});

export const ClientAuthSchema = z.strictObject({
  /**
   * `require`: the handshake fails without a client certificate signed by `ca`. `request`: a
   * certificate is asked for; a client without one is let in (without an identity), a client
   * with one that does not verify is refused.
   */
  mode: z.enum(["require", "request"]),
  /** The CA certificates (PEM bundle) client certificates must chain to. */
  ca: PemPathSchema,
  /**
   * `sanitize` (default): an `x-forwarded-client-cert` sent by the client is removed. `set`: it is
   * replaced by the verified certificate's (Envoy's format: `Hash=…;Subject="…";URI=…;DNS=…`).
   */
  forward_client_cert: z.enum(["sanitize", "set"]).default("sanitize"),
  /**
   * Connections still in their TLS handshake at once (each lasts at most the listener's
   * idle_timeout); more are closed at once, so a flood of silent sockets cannot exhaust file
   * descriptors and keep real clients out for the whole timeout. Default 1024.
   */
  max_pending_handshakes: z.number().int().min(1).max(1_000_000).default(1024),
});

export const ListenerTlsSchema = z.strictObject({
  /** One or more certificates, chosen by SNI. TLS 1.2 and 1.3 only. */
  certificates: z.array(CertificateSchema).min(1, "needs at least one certificate"),
  /** Ask clients for certificates (mTLS); none when absent. */
  client_auth: ClientAuthSchema.optional(),
  /** Reload the certificate, key and CA files when they change (and on SIGHUP). Default true. */
  watch: z.boolean().default(true),
});

export const UpstreamTlsSchema = z
  .strictObject({
    /** CA certificates (PEM bundle) the upstream's certificate must chain to. Default: the system's (Mozilla's) roots. */
    ca: PemPathSchema.optional(),
    /** The name sent in SNI and verified against the upstream's certificate. Default: the endpoint's host. */
    server_name: ServerNameSchema.optional(),
    /** A client certificate presented to the upstream (mTLS to the backend), PEM; needs `key`. */
    cert: PemPathSchema.optional(),
    /** The client certificate's private key, PEM. */
    key: PemPathSchema.optional(),
    /** Verify the upstream's certificate and name. Default true; false accepts any certificate (never in production). */
    verify: z.boolean().default(true),
  })
  .superRefine((t, ctx) => {
    if ((t.cert === undefined) !== (t.key === undefined)) {
      ctx.addIssue({ code: "custom", path: [t.cert === undefined ? "cert" : "key"], message: "cert and key go together (a client certificate needs its key)" });
    }
  });

export type CertificateConfig = z.infer<typeof CertificateSchema>;
export type ClientAuthConfig = z.infer<typeof ClientAuthSchema>;
export type ListenerTls = z.infer<typeof ListenerTlsSchema>;
export type UpstreamTls = z.infer<typeof UpstreamTlsSchema>;
