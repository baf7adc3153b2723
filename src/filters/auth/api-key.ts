/**
 * The api_key provider: a key from a header (or a query parameter), looked up by its sha256 among
 * the configured hashes — the keys themselves are never stored. Looking up by hash leaks nothing
 * about how close a guess was (a near-miss key has an unrelated hash), and the final comparison is
 * constant-time all the same.
 */
import { readFileSync } from "node:fs";
import { timingSafeEqual } from "node:crypto";
import { formatPath } from "../../config/load.ts";
import { ABSENT, type AuthProvider, type Outcome } from "./provider.ts";
import { type ApiKeyEntry, ApiKeyListSchema, type ApiKeyProviderConfig } from "./schema.ts";
import { compileSource, REPEATED } from "./token-source.ts";

/** Longer keys are refused unhashed. */
const MAX_KEY_LENGTH = 1024;

export function sha256Hex(text: string): string {
  return new Bun.CryptoHasher("sha256").update(text).digest("hex");
}

export function apiKeyProvider(name: string, config: ApiKeyProviderConfig): AuthProvider {
  const byHash = new Map<string, ApiKeyEntry>();
  const fromFile = config.keys_file === undefined ? [] : readKeysFile(config.keys_file);
  for (const entry of [...config.keys, ...fromFile]) {
    if (byHash.has(entry.sha256)) throw new Error(`auth.${name}: key "${entry.name}" has the same hash as key "${byHash.get(entry.sha256)!.name}"`);
    byHash.set(entry.sha256, entry);
  }
  const header = compileSource({ header: config.header });
  const query = config.query === undefined ? undefined : compileSource({ query: config.query });
  const rejected: Outcome = { result: "rejected", code: "invalid_api_key", description: "the API key is not recognised" };

  return {
    name,
    challenge: "ApiKey",
    expects: query === undefined ? header.describe : `${header.describe} or ${query.describe}`,
    ownedHeaders: [],
    strip: config.strip_key ? { headers: header.strip.headers, query: query?.strip.query } : undefined,
    presented: (request) => (header.read(request) ?? query?.read(request)) !== undefined,
    authenticate(ctx) {
      const key = header.read(ctx) ?? query?.read(ctx);
      if (key === undefined) return ABSENT;
      if (key === REPEATED || key === "" || key.length > MAX_KEY_LENGTH) return rejected;
      const digest = sha256Hex(key);
      const entry = byHash.get(digest);
      if (entry === undefined || !timingSafeEqual(Buffer.from(entry.sha256, "hex"), Buffer.from(digest, "hex"))) return rejected;
      return { result: "accepted", identity: { provider: name, kind: "api_key", subject: entry.name, tier: entry.tier }, upstream: [] };
    },
  };
}

/** The keys of a keys_file (YAML or JSON list of {name, tier, sha256}); a bad file refuses the config. */
function readKeysFile(path: string): ApiKeyEntry[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new Error(`API key file ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let doc: unknown;
  try {
    doc = path.endsWith(".json") ? JSON.parse(text) : Bun.YAML.parse(text);
  } catch (e) {
    throw new Error(`API key file ${path}: ${(e as Error).message}`);
  }
  const parsed = ApiKeyListSchema.safeParse(doc);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`API key file ${path}: ${formatPath(issue.path)}: ${issue.message}`);
  }
  return parsed.data;
}
