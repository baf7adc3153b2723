-- Invalidations and purges, by every process that shares the file: a fill (an answer being
-- stored) whose request started at or before a matching invalidation is not stored (RFC 9111
-- §4.4: what an unsafe method or a purge removed must not come back from an older answer).
-- kind: 'key' (a URL, every variant and header suffix), 'prefix' or 'tag'. Rows older than any
-- fill can be are pruned.
CREATE TABLE IF NOT EXISTS cache_invalidations (
  kind  TEXT NOT NULL,
  value TEXT NOT NULL,
  at    REAL NOT NULL,                     -- wall-clock seconds of the latest one
  PRIMARY KEY (kind, value)
);
CREATE INDEX IF NOT EXISTS cache_invalidations_at ON cache_invalidations (at);
