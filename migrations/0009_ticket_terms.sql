-- Hot topics (issue 10): the words of new tickets' descriptions (jieba, stopwords dropped),
-- counted once per ticket by China day of filing. The server's term indexer fills it in
-- batches after tickets are filed, keeping its place in ticket_terms_progress in the same
-- transaction, so a crash neither loses nor double-counts a ticket.
CREATE TABLE ticket_terms_daily (
    day      DATE NOT NULL,
    term     TEXT NOT NULL,
    tickets  INT NOT NULL,
    PRIMARY KEY (day, term)
);

-- The same by month (the first day of the month), so a query over a year reads twelve months
-- of terms, not 365 days.
CREATE TABLE ticket_terms_monthly (
    month    DATE NOT NULL CHECK (extract(day FROM month) = 1),
    term     TEXT NOT NULL,
    tickets  INT NOT NULL,
    PRIMARY KEY (month, term)
);

CREATE TABLE ticket_terms_progress (
    only_row     BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    last_ticket  BIGINT NOT NULL DEFAULT 0
);
INSERT INTO ticket_terms_progress DEFAULT VALUES;
