-- Agents' state history (issue 10): each state an agent was in (offline is the absence of a
-- row), its pause reason and the queues it was logged into, from when to when; the time base
-- of occupancy. Written by the ACD's history writer as states change; the open row of an
-- agent (ended_at NULL) is its state now.
CREATE TABLE agent_states (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent_id    BIGINT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('available', 'ringing', 'on_call', 'wrap_up',
                                               'paused')),
    reason      TEXT,
    queues      TEXT[] NOT NULL DEFAULT '{}',
    started_at  TIMESTAMPTZ NOT NULL,
    ended_at    TIMESTAMPTZ,
    CHECK (ended_at IS NULL OR ended_at >= started_at)
);
CREATE INDEX agent_states_started ON agent_states (started_at);
CREATE INDEX agent_states_open ON agent_states (agent_id) WHERE ended_at IS NULL;
