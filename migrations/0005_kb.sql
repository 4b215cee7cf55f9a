-- The knowledge base (REGULATION.md Art. 31, 38; src/kb): articles owned by handling units,
-- their full version history, and a notification on every change so every node's search
-- index follows within a second. The search index itself is derived and lives outside.
CREATE TABLE kb_articles (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    external_id        TEXT UNIQUE,
    title              TEXT NOT NULL CHECK (title <> ''),
    body               TEXT NOT NULL CHECK (body <> ''),
    spoken_answer      TEXT NOT NULL DEFAULT '',
    category           TEXT NOT NULL CHECK (category <> ''),
    tags               TEXT[] NOT NULL DEFAULT '{}',
    question_variants  TEXT[] NOT NULL DEFAULT '{}',
    unit_id            BIGINT REFERENCES units (id),
    status             TEXT NOT NULL DEFAULT 'draft'
                       CHECK (status IN ('draft', 'pending', 'published', 'expired')),
    valid_from         DATE,
    valid_until        DATE,
    version            INT NOT NULL DEFAULT 1,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by         TEXT NOT NULL,
    CONSTRAINT valid_range CHECK (valid_until IS NULL OR valid_from IS NULL
                                  OR valid_until >= valid_from)
);
CREATE INDEX kb_articles_unit ON kb_articles (unit_id);
CREATE INDEX kb_articles_expiring ON kb_articles (valid_until) WHERE status = 'published';

-- Every version of every article: who changed what, when (append-only).
CREATE TABLE kb_versions (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    article_id  BIGINT NOT NULL REFERENCES kb_articles (id),
    version     INT NOT NULL,
    at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    snapshot    JSONB NOT NULL,
    UNIQUE (article_id, version)
);
CREATE TRIGGER kb_versions_append_only BEFORE UPDATE OR DELETE ON kb_versions
    FOR EACH ROW EXECUTE FUNCTION forbid_change();

-- Each change is announced with the article's id: every node re-reads it into its index.
CREATE FUNCTION kb_articles_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('kb_articles', NEW.id::text);
    RETURN NULL;
END;
$$;
CREATE TRIGGER kb_articles_changed AFTER INSERT OR UPDATE ON kb_articles
    FOR EACH ROW EXECUTE FUNCTION kb_articles_notify();
