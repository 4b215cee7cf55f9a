-- SIP accounts for the registrar: agents' softphones authenticate with digest credentials.
-- Only HA1 hashes are kept (RFC 3261 22.4, RFC 8760), never passwords: H(user:realm:password)
-- with MD5 for old phones and SHA-256 for current ones. Issue 8 links agents to these rows.
CREATE TABLE sip_accounts (
    username    TEXT PRIMARY KEY CHECK (username ~ '^[A-Za-z0-9._~-]{1,64}$'),
    realm       TEXT NOT NULL,
    ha1_md5     TEXT NOT NULL CHECK (ha1_md5 ~ '^[0-9a-f]{32}$'),
    ha1_sha256  TEXT NOT NULL CHECK (ha1_sha256 ~ '^[0-9a-f]{64}$'),
    enabled     BOOLEAN NOT NULL DEFAULT TRUE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Every change is announced, so every node's credential cache reloads at once.
CREATE FUNCTION sip_accounts_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sip_accounts', COALESCE(NEW.username, OLD.username));
    RETURN NULL;
END;
$$;

CREATE TRIGGER sip_accounts_changed
    AFTER INSERT OR UPDATE OR DELETE ON sip_accounts
    FOR EACH ROW EXECUTE FUNCTION sip_accounts_notify();
