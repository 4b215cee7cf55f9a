-- Callers who hung up while waiting for an agent (abandoned calls), kept for calling back
-- (State Council General Office letter of 2025 on 12345 callbacks; issue 8). One row per
-- call, written with its call record; the office marks it done with what happened.
CREATE TABLE missed_calls (
    call_row_id  BIGINT PRIMARY KEY REFERENCES calls (id),
    caller       TEXT NOT NULL,
    queue        TEXT NOT NULL,
    waited_secs  DOUBLE PRECISION NOT NULL,
    missed_at    TIMESTAMPTZ NOT NULL,
    done_at      TIMESTAMPTZ,
    done_by      TEXT,
    outcome      TEXT
);
CREATE INDEX missed_calls_open ON missed_calls (missed_at) WHERE done_at IS NULL;
