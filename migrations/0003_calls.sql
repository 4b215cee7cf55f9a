-- One row per call the hotline answered: who called, when, how it ended, and the IVR walk
-- (nodes entered, keys pressed, variables collected, satisfaction score) for the call record
-- the agent, the ticket and the supervisors see. The caller's number is personal data: the
-- API masks it for roles that may not see it. The row is written when the call is answered
-- and completed when it ends; a row left without `ended_at` is a call the node's crash cut off
-- (its recording is repaired at the next start, which then completes the row).
CREATE TABLE calls (
    id               BIGSERIAL PRIMARY KEY,
    call_id          TEXT NOT NULL,
    caller           TEXT NOT NULL,
    called           TEXT NOT NULL,
    started_at       TIMESTAMPTZ NOT NULL,
    answered_at      TIMESTAMPTZ,
    ended_at         TIMESTAMPTZ,
    end_reason       TEXT,
    recording        TEXT,
    codec            TEXT,
    ivr_path         TEXT[] NOT NULL DEFAULT '{}',
    ivr_keys         TEXT NOT NULL DEFAULT '',
    ivr_vars         JSONB NOT NULL DEFAULT '{}',
    queue            TEXT,
    transfer_to      TEXT,
    score            SMALLINT CHECK (score BETWEEN 1 AND 5),
    packets_sent     BIGINT NOT NULL DEFAULT 0,
    packets_received BIGINT NOT NULL DEFAULT 0,
    -- RTCP's view: received, lost, jitter_ms, peer_lost, peer_jitter_ms, rtt_ms, reports.
    quality          JSONB
);

CREATE INDEX calls_started_at ON calls (started_at);
CREATE INDEX calls_caller ON calls (caller, started_at);
CREATE INDEX calls_call_id ON calls (call_id);
