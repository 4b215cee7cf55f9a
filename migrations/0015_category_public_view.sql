-- What the public Open311 feed shows of a category's requests (issue 22, item 16):
-- 'full' the description, address and position; 'summary' only the service, status, unit and
-- dates; 'none' nothing (not listed). Whatever the category says, a confidential ticket is
-- never listed and a report (举报) is at most a summary: an informant's story and the place
-- they name are not for publication (Art. 11).
ALTER TABLE categories
    ADD COLUMN public_view TEXT NOT NULL DEFAULT 'full'
        CHECK (public_view IN ('full', 'summary', 'none'));
