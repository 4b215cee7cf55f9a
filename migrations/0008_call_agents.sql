-- The ACD's part of a call record (issue 8): when the caller was first queued, which agent
-- answered and when, and the outcome (answered, transferred, abandoned, self_served, ended),
-- for the service-level and abandon figures and the agent's screen.
ALTER TABLE calls
    ADD COLUMN queued_at         TIMESTAMPTZ,
    ADD COLUMN agent_id          BIGINT,
    ADD COLUMN agent_answered_at TIMESTAMPTZ,
    ADD COLUMN outcome           TEXT;
CREATE INDEX calls_agent ON calls (agent_id, started_at) WHERE agent_id IS NOT NULL;
