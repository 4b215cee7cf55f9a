-- The audit log: every read of personal data and every privileged action (REGULATION.md,
-- Art. 7, 11, 13; supervisor actions in issue 10) leaves one row here. Rows are never updated
-- or deleted by the application.
CREATE TABLE audit_log (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    detail      JSONB NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX audit_log_subject_at ON audit_log (subject, at);
CREATE INDEX audit_log_actor_at ON audit_log (actor, at);
