-- Cache entries: one row per stored response (a primary key can have several Vary variants).
CREATE TABLE IF NOT EXISTS cache_entries (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  cache_key     TEXT    NOT NULL,
  vary_key      TEXT    NOT NULL DEFAULT '',
  status        INTEGER NOT NULL,
  headers       TEXT    NOT NULL,          -- JSON [[name, value], ...]
  request_headers TEXT  NOT NULL,          -- JSON: the selecting request headers (Vary)
  request_time  REAL    NOT NULL,          -- seconds
  response_time REAL    NOT NULL,
  body_size     INTEGER NOT NULL,
  complete      INTEGER NOT NULL DEFAULT 0, -- 1 once the whole body is stored
  last_used     REAL    NOT NULL,
  UNIQUE (cache_key, vary_key)
);
CREATE INDEX IF NOT EXISTS cache_entries_lru ON cache_entries (last_used);

-- Bodies in chunks, so a body is stored while it streams.
CREATE TABLE IF NOT EXISTS cache_chunks (
  entry_id INTEGER NOT NULL REFERENCES cache_entries(id) ON DELETE CASCADE,
  seq      INTEGER NOT NULL,
  data     BLOB    NOT NULL,
  PRIMARY KEY (entry_id, seq)
);

-- Purge by tag (Surrogate-Key / Cache-Tag at store time).
CREATE TABLE IF NOT EXISTS cache_tags (
  entry_id INTEGER NOT NULL REFERENCES cache_entries(id) ON DELETE CASCADE,
  tag      TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS cache_tags_tag ON cache_tags (tag);

-- Collapsed forwarding across workers: one leader per key, until the lease expires.
CREATE TABLE IF NOT EXISTS leases (
  lease_key  TEXT PRIMARY KEY,
  owner      TEXT NOT NULL,
  expires_at REAL NOT NULL
);

-- Idempotency-Key records.
CREATE TABLE IF NOT EXISTS idempotency (
  record_key  TEXT PRIMARY KEY,            -- route + key
  fingerprint TEXT NOT NULL,
  state       TEXT NOT NULL,               -- in_flight | done
  status      INTEGER,
  headers     TEXT,
  body        BLOB,
  expires_at  REAL NOT NULL
);
