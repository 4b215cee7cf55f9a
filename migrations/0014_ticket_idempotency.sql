-- Idempotency keys of ticket-filing POSTs (issue 22, item 15): a client's retry with the same
-- key gets the ticket its first try filed. Written in the ticket's own transaction; scoped by
-- who sent the key (a login, or `open311:<client>`); rows older than a day are deleted.
CREATE TABLE ticket_idempotency (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash BYTEA NOT NULL,
    ticket_id BIGINT NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX ticket_idempotency_created_at ON ticket_idempotency (created_at);
