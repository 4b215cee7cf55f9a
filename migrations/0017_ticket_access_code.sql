-- The citizen's access code (issue 22 item 2; REGULATION.md Art. 13, 14): six random digits
-- given with the ticket number at intake. With the number it proves the right to follow, rate
-- and object to a ticket; the last four digits of the phone are only a second factor beside it.
-- gen_random_uuid() draws from the server's strong random source (pg_strong_random), so the
-- code cannot be predicted from other tickets' codes; a volatile default gives every existing
-- ticket a code of its own.
ALTER TABLE tickets ADD COLUMN access_code TEXT NOT NULL
    DEFAULT lpad(((('x' || substr(md5(gen_random_uuid()::text), 1, 8))::bit(32)::bigint
                   % 1000000))::text, 6, '0')
    CHECK (access_code ~ '^[0-9]{6}$');
