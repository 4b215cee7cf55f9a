-- Wrong tries at a citizen's ticket look-up (issue 22, item 3), counted per ticket and per
-- source (the client's address on the API, the calling number in the IVR). One row per key,
-- changed under a transaction-level advisory lock, so parallel tries are counted one by one;
-- rows a day old are deleted, so the table holds at most a day of keys. The audit log keeps the
-- successful reads of personal data, not the failed tries.
CREATE TABLE citizen_failures (
    key TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    last_at TIMESTAMPTZ NOT NULL,
    wait_until TIMESTAMPTZ NOT NULL
);
CREATE INDEX citizen_failures_last_at ON citizen_failures (last_at);
