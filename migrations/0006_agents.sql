-- Agents (issue 8): the logins that take calls, with the softphone they register, their
-- skills with proficiency (1-10) and the queues they work. Administrators keep them; the
-- agents log in and out of queues and pause through the API.
CREATE TABLE agent_profiles (
    user_id       BIGINT PRIMARY KEY REFERENCES users (id),
    sip_username  TEXT REFERENCES sip_accounts (username),
    skills        JSONB NOT NULL DEFAULT '{}'::jsonb
                  CHECK (jsonb_typeof(skills) = 'object'),
    queues        TEXT[] NOT NULL DEFAULT '{}',
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
