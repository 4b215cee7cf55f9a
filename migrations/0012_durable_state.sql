-- What of the call center must outlive one process (issue 24): the registrar's bindings, the
-- agents' chosen states, the callers waiting in queues and the callbacks owed. Memory stays the
-- fast path for routing; each table is written on each change (never per RTP packet or per
-- routing tick) and read back at start. `version` is the row's format: a node skips (and
-- logs) a row of a newer format instead of failing to start.

-- Where each agent's phone can be reached (RFC 3261 10.3), with the source the REGISTER came
-- from (behind NAT requests go there). UDP bindings are live again at start; TCP and WebSocket
-- ones die with their connection (the phone reconnects and registers again).
CREATE TABLE sip_bindings (
    aor         TEXT NOT NULL,
    contact     TEXT NOT NULL,
    source      TEXT NOT NULL,
    transport   TEXT NOT NULL,
    call_id     TEXT NOT NULL,
    cseq        BIGINT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    version     SMALLINT NOT NULL DEFAULT 1,
    PRIMARY KEY (aor, contact)
);

-- The state each logged-in agent chose (available, or paused with a reason; ringing, on a call
-- and wrap-up are the moment's, not a choice), its queues, skills and the SIP account its phone
-- registers as. No row: logged out.
CREATE TABLE acd_agents (
    agent_id    BIGINT PRIMARY KEY,
    device      TEXT,
    queues      TEXT[] NOT NULL,
    skills      JSONB NOT NULL DEFAULT '[]',
    chosen      TEXT NOT NULL,
    reason      TEXT,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    version     SMALLINT NOT NULL DEFAULT 1
);

-- A caller's place in a queue, by the Call-ID of the call that queued it: its queue, priority,
-- when it first queued (the order of service), and for a kept callback the number to call, the
-- number it dialled (the callback's caller ID), the tries so far and when the next may be made.
CREATE TABLE acd_entries (
    call_id     TEXT PRIMARY KEY,
    caller      TEXT NOT NULL,
    queue       TEXT NOT NULL,
    priority    INTEGER NOT NULL DEFAULT 0,
    skills      TEXT[] NOT NULL DEFAULT '{}',
    queued_at   TIMESTAMPTZ NOT NULL,
    callback    TEXT,
    called      TEXT,
    tries       INTEGER NOT NULL DEFAULT 0,
    next_try_at TIMESTAMPTZ,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    version     SMALLINT NOT NULL DEFAULT 1
);

-- Why a caller is on the missed-call list: it hung up while waiting (`abandoned`), its call was
-- cut by the node stopping (`cut_off`), or the callbacks owed to it failed (`callback_failed`).
ALTER TABLE missed_calls ADD COLUMN reason TEXT NOT NULL DEFAULT 'abandoned';
