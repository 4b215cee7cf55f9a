-- The call KPIs (issue 10) read the calls queued in a period and the agents' states that
-- overlap it: without these, a day's KPIs scanned a year of rows.
CREATE INDEX calls_queued_at ON calls (queued_at) WHERE queue IS NOT NULL;
CREATE INDEX agent_states_ended ON agent_states (ended_at);
