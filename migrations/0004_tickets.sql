-- The 12345 ticket workflow (REGULATION.md, Art. 7-27; src/tickets): handling units and the
-- people who log in, the dispatch catalogue, tickets with their history, Open311 clients, and
-- a per-unit daily summary kept up to date by trigger so scorecards stay fast at millions of
-- tickets. The audit log and ticket history become append-only here.

-- Neither the audit log nor a ticket's history may ever be changed or removed (Art. 33, 36).
CREATE FUNCTION forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: rows cannot be changed or removed', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION forbid_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION forbid_change();

-- County governments, city departments and public-service companies (Art. 9).
CREATE TABLE units (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code        TEXT NOT NULL UNIQUE CHECK (code ~ '^[A-Za-z0-9._-]{1,64}$'),
    name        TEXT NOT NULL CHECK (name <> ''),
    kind        TEXT NOT NULL CHECK (kind IN ('county', 'department', 'company')),
    phone       TEXT,
    active      BOOLEAN NOT NULL DEFAULT TRUE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Everyone who logs in: the hotline office's roles (Art. 8) and handling units' staff.
CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9._-]{1,64}$'),
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('intake', 'dispatcher', 'unit_staff',
                                                'supervisor', 'analyst', 'admin')),
    unit_id       BIGINT REFERENCES units (id),
    -- argon2id in the PHC string format; never the password.
    password_hash TEXT NOT NULL CHECK (password_hash LIKE '$argon2%'),
    enabled       BOOLEAN NOT NULL DEFAULT TRUE,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT unit_staff_have_a_unit CHECK ((role = 'unit_staff') = (unit_id IS NOT NULL))
);

-- Session tokens: only their SHA-256 is stored, so a copy of the table opens no session.
CREATE TABLE sessions (
    token_hash  BYTEA PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

-- The catalogue of matters, with the handling time limit a law sets (5 working days unless
-- a longer legal limit prevails, Art. 20).
CREATE TABLE categories (
    code             TEXT PRIMARY KEY CHECK (code ~ '^[A-Za-z0-9._-]{1,64}$'),
    name             TEXT NOT NULL CHECK (name <> ''),
    time_limit_days  INT NOT NULL DEFAULT 5 CHECK (time_limit_days BETWEEN 1 AND 60),
    description      TEXT NOT NULL DEFAULT '',
    active           BOOLEAN NOT NULL DEFAULT TRUE
);

-- Who leads on a category in an area (Art. 24): a rule with no district is the city
-- department's; a district or town rule routes to the county by its responsibility list.
-- The most specific matching rule wins.
CREATE TABLE dispatch_rules (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    category  TEXT NOT NULL REFERENCES categories (code),
    district  TEXT,
    town      TEXT,
    unit_id   BIGINT NOT NULL REFERENCES units (id),
    CONSTRAINT one_rule_per_place UNIQUE NULLS NOT DISTINCT (category, district, town),
    CONSTRAINT town_within_district CHECK (town IS NULL OR district IS NOT NULL)
);

-- Ticket numbers: the day (China time) and a sequence that never goes back, so a number is
-- never reused even across days or after a rollback.
CREATE SEQUENCE ticket_number_seq;

CREATE TABLE tickets (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    number             TEXT NOT NULL UNIQUE,
    channel            TEXT NOT NULL CHECK (channel IN ('phone', 'web', 'app', 'wechat',
                                                        'weibo', 'api')),
    request_type       TEXT NOT NULL CHECK (request_type IN ('consultation', 'help',
                                 'suggestion', 'complaint', 'report', 'praise')),
    category           TEXT NOT NULL REFERENCES categories (code),
    address            TEXT NOT NULL DEFAULT '',
    district           TEXT NOT NULL DEFAULT '',
    town               TEXT NOT NULL DEFAULT '',
    lat                DOUBLE PRECISION CHECK (lat BETWEEN -90 AND 90),
    lon                DOUBLE PRECISION CHECK (lon BETWEEN -180 AND 180),
    description        TEXT NOT NULL CHECK (description <> ''),
    caller_name        TEXT,
    caller_phone       TEXT,
    confidential       BOOLEAN NOT NULL DEFAULT FALSE,
    call_id            TEXT,
    recording          TEXT,
    ivr_path           TEXT[] NOT NULL DEFAULT '{}',
    status             TEXT NOT NULL,
    lead_unit          BIGINT REFERENCES units (id),
    co_units           BIGINT[] NOT NULL DEFAULT '{}',
    designated         BOOLEAN NOT NULL DEFAULT FALSE,
    dispatched_at      TIMESTAMPTZ,
    due_at             TIMESTAMPTZ,
    extension_days     INT NOT NULL DEFAULT 0,
    pending_extension  INT,
    escalation         SMALLINT NOT NULL DEFAULT 0,
    reopen_count       INT NOT NULL DEFAULT 0,
    return_count       INT NOT NULL DEFAULT 0,
    satisfaction       TEXT,
    rating             SMALLINT CHECK (rating BETWEEN 1 AND 5),
    supervised         BOOLEAN NOT NULL DEFAULT FALSE,
    urged_count        INT NOT NULL DEFAULT 0,
    master_id          BIGINT REFERENCES tickets (id),
    -- What the citizen is told: the unit's reply, or why it was not accepted or ended.
    reply              TEXT,
    public_note        TEXT,
    replied_at         TIMESTAMPTZ,
    replied_on_time    BOOLEAN,
    closed_at          TIMESTAMPTZ,
    created_by         TEXT NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    version            INT NOT NULL DEFAULT 1
);

CREATE INDEX tickets_created ON tickets (created_at DESC, id DESC);
CREATE INDEX tickets_status ON tickets (status, id DESC);
CREATE INDEX tickets_lead_unit ON tickets (lead_unit, status, id DESC);
CREATE INDEX tickets_co_units ON tickets USING gin (co_units);
CREATE INDEX tickets_category ON tickets (category, id DESC);
CREATE INDEX tickets_district ON tickets (district, id DESC);
CREATE INDEX tickets_caller_phone ON tickets (caller_phone, created_at) WHERE caller_phone IS NOT NULL;
CREATE INDEX tickets_master ON tickets (master_id) WHERE master_id IS NOT NULL;
-- The supervision scan (Art. 26): open tickets by deadline.
CREATE INDEX tickets_open_due ON tickets (due_at)
    WHERE due_at IS NOT NULL AND status IN ('dispatched', 'handling');

-- Every step of every ticket: who, when, what, why (Art. 16-27). Append-only.
CREATE TABLE ticket_events (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id    BIGINT NOT NULL REFERENCES tickets (id),
    at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    from_status  TEXT,
    to_status    TEXT NOT NULL,
    -- The unit the step concerns (the lead unit dispatched to, the unit that returned, ...).
    unit_id      BIGINT REFERENCES units (id),
    reason       TEXT,
    detail       JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX ticket_events_ticket ON ticket_events (ticket_id, id);

CREATE TRIGGER ticket_events_append_only BEFORE UPDATE OR DELETE ON ticket_events
    FOR EACH ROW EXECUTE FUNCTION forbid_change();
CREATE TRIGGER ticket_events_no_truncate BEFORE TRUNCATE ON ticket_events
    FOR EACH STATEMENT EXECUTE FUNCTION forbid_change();

-- Unit scorecards (Art. 27) by day, maintained from the history as it is written.
CREATE TABLE unit_daily (
    unit_id          BIGINT NOT NULL REFERENCES units (id),
    day              DATE NOT NULL,
    dispatched       INT NOT NULL DEFAULT 0,
    returned         INT NOT NULL DEFAULT 0,
    replied          INT NOT NULL DEFAULT 0,
    replied_on_time  INT NOT NULL DEFAULT 0,
    reopened         INT NOT NULL DEFAULT 0,
    satisfied        INT NOT NULL DEFAULT 0,
    basically        INT NOT NULL DEFAULT 0,
    dissatisfied     INT NOT NULL DEFAULT 0,
    PRIMARY KEY (unit_id, day)
);

CREATE FUNCTION unit_daily_count() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    d DATE := (NEW.at AT TIME ZONE 'Asia/Shanghai')::date;
    on_time INT := CASE WHEN (NEW.detail ->> 'on_time')::boolean THEN 1 ELSE 0 END;
    result TEXT := NEW.detail ->> 'result';
BEGIN
    IF NEW.unit_id IS NULL OR NEW.action NOT IN
        ('dispatch', 'designate', 'return', 'reply', 'revisit') THEN
        RETURN NULL;
    END IF;
    INSERT INTO unit_daily AS u (unit_id, day, dispatched, returned, replied, replied_on_time,
                                 reopened, satisfied, basically, dissatisfied)
    VALUES (NEW.unit_id, d,
            (NEW.action IN ('dispatch', 'designate'))::int,
            (NEW.action = 'return')::int,
            (NEW.action = 'reply')::int,
            CASE WHEN NEW.action = 'reply' THEN on_time ELSE 0 END,
            (NEW.action = 'revisit' AND result = 'dissatisfied')::int,
            (NEW.action = 'revisit' AND result = 'satisfied')::int,
            (NEW.action = 'revisit' AND result = 'basically_satisfied')::int,
            (NEW.action = 'revisit' AND result = 'dissatisfied')::int)
    ON CONFLICT (unit_id, day) DO UPDATE SET
        dispatched = u.dispatched + EXCLUDED.dispatched,
        returned = u.returned + EXCLUDED.returned,
        replied = u.replied + EXCLUDED.replied,
        replied_on_time = u.replied_on_time + EXCLUDED.replied_on_time,
        reopened = u.reopened + EXCLUDED.reopened,
        satisfied = u.satisfied + EXCLUDED.satisfied,
        basically = u.basically + EXCLUDED.basically,
        dissatisfied = u.dissatisfied + EXCLUDED.dissatisfied;
    RETURN NULL;
END;
$$;

CREATE TRIGGER ticket_events_unit_daily AFTER INSERT ON ticket_events
    FOR EACH ROW EXECUTE FUNCTION unit_daily_count();

-- Civic apps filing through Open311 GeoReport v2: one API key each (only its hash kept).
CREATE TABLE open311_clients (
    key_hash    BYTEA PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    channel     TEXT NOT NULL DEFAULT 'app' CHECK (channel IN ('web', 'app', 'wechat',
                                                             'weibo', 'api')),
    enabled     BOOLEAN NOT NULL DEFAULT TRUE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Tickets filed, by China day, category, district, channel and request type (Art. 27, 29:
-- counts by category, area and period), kept as tickets are filed so the counts stay fast at
-- millions of tickets.
CREATE TABLE ticket_daily (
    day           DATE NOT NULL,
    category      TEXT NOT NULL,
    district      TEXT NOT NULL,
    channel       TEXT NOT NULL,
    request_type  TEXT NOT NULL,
    filed         INT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, category, district, channel, request_type)
);

CREATE FUNCTION ticket_daily_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ticket_daily AS d (day, category, district, channel, request_type, filed)
    VALUES ((NEW.created_at AT TIME ZONE 'Asia/Shanghai')::date, NEW.category, NEW.district,
            NEW.channel, NEW.request_type, 1)
    ON CONFLICT (day, category, district, channel, request_type)
        DO UPDATE SET filed = d.filed + 1;
    RETURN NULL;
END;
$$;

CREATE TRIGGER tickets_daily AFTER INSERT ON tickets
    FOR EACH ROW EXECUTE FUNCTION ticket_daily_count();
