-- Rollout progress, one row per route with a rollout: the state machine's state as JSON
-- (src/rollout/machine.ts RolloutState). Written by one process per machine (the rollout
-- controller: worker 0, or the only process); read by every worker at start.
CREATE TABLE IF NOT EXISTS rollouts (
  route      TEXT PRIMARY KEY,
  definition TEXT NOT NULL,                -- hash of the rollout's definition
  state      TEXT NOT NULL,                -- JSON
  updated_at REAL NOT NULL                 -- wall-clock seconds
);

-- SLO counts per hour, so that the error budget over the SLO window survives restarts.
-- slo_key: route and latency threshold (a changed threshold makes other counts).
CREATE TABLE IF NOT EXISTS slo_hours (
  slo_key  TEXT    NOT NULL,
  hour     INTEGER NOT NULL,               -- wall-clock ms / 3,600,000
  requests REAL    NOT NULL,
  errors   REAL    NOT NULL,
  slow     REAL    NOT NULL,
  PRIMARY KEY (slo_key, hour)
);
