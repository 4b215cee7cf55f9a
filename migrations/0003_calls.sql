-- One row per call the hotline answered: who called, when, how it ended, and the IVR walk
-- (nodes entered, keys pressed, variables collected, satisfaction score) for the call record
-- the agent, the ticket and the supervisors see. The caller's number is personal data: the
-- API masks it for roles that may not see it.
CREATE TABLE calls (
    id               BIGSERIAL PRIMARY KEY,
    call_id          TEXT NOT NULL,
    caller           TEXT NOT NULL,
    called           TEXT NOT NULL,
    started_at       TIMESTAMPTZ NOT NULL,
    answered_at      TIMESTAMPTZ,
    ended_at         TIMESTAMPTZ NOT NULL,
    end_reason       TEXT NOT NULL,
    codec            TEXT,
    ivr_path         TEXT[] NOT NULL DEFAULT '{}',
    ivr_keys         TEXT NOT NULL DEFAULT '',
    ivr_vars         JSONB NOT NULL DEFAULT '{}',
    queue            TEXT,
    score            SMALLINT CHECK (score BETWEEN 1 AND 5),
    packets_sent     BIGINT NOT NULL DEFAULT 0,
    packets_received BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX calls_started_at ON calls (started_at);
CREATE INDEX calls_caller ON calls (caller, started_at);
CREATE INDEX calls_call_id ON calls (call_id);
