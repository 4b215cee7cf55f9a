-- Frequent callers (Art. 12, 34; issue 22 item 10): a supervisor may send a number's calls to
-- a dedicated queue. Nothing here blocks a number; the counts come from `calls`.
CREATE TABLE frequent_caller_routes (
    caller  TEXT PRIMARY KEY CHECK (caller <> ''),
    queue   TEXT NOT NULL CHECK (queue <> ''),
    note    TEXT NOT NULL DEFAULT '',
    set_by  TEXT NOT NULL,
    set_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
