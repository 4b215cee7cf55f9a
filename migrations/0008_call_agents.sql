-- The ACD's part of a call record (issue 8): when the caller was first queued, which agent
-- answered and when, the outcome (answered, callback, transferred, abandoned, self_served,
-- ended), and whether the call is a callback the hotline placed, for the service-level and
-- abandon figures and the agent's screen.
ALTER TABLE calls
    ADD COLUMN queued_at         TIMESTAMPTZ,
    ADD COLUMN agent_id          BIGINT,
    ADD COLUMN agent_answered_at TIMESTAMPTZ,
    ADD COLUMN outcome           TEXT,
    ADD COLUMN callback          BOOLEAN NOT NULL DEFAULT false,
    -- Each ring of an agent's phone: [{agent, started_at, ended_at, result}], in order.
    ADD COLUMN rings             JSONB NOT NULL DEFAULT '[]';
CREATE INDEX calls_agent ON calls (agent_id, started_at) WHERE agent_id IS NOT NULL;
