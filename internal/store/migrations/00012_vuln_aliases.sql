-- Scan findings a user can act on (issue 17): every ID a record is known
-- by, the record's own rating (GitHub's database_specific.severity), the
-- related CVEs an advisory is rated by, and an index from each alias to
-- the records listing it, so that a record without a rating is rated by
-- the records it aliases and those that alias it. format says which pib
-- stored a record: one stored before these columns existed (format 0) is
-- replaced at the next import, whatever its modified time; digest lets a
-- record without a modified time (golang/vulndb's) be replaced when its
-- content changes.
-- +goose Up
ALTER TABLE vuln_records ADD COLUMN related TEXT NOT NULL DEFAULT '[]';
ALTER TABLE vuln_records ADD COLUMN rating TEXT NOT NULL DEFAULT '';
ALTER TABLE vuln_records ADD COLUMN format INTEGER NOT NULL DEFAULT 0;
ALTER TABLE vuln_records ADD COLUMN digest TEXT NOT NULL DEFAULT '';

CREATE TABLE vuln_aliases (
    alias   TEXT NOT NULL,
    vuln_id TEXT NOT NULL REFERENCES vuln_records (id) ON DELETE CASCADE
);
CREATE INDEX vuln_aliases_alias ON vuln_aliases (alias);
CREATE INDEX vuln_aliases_vuln ON vuln_aliases (vuln_id);

-- +goose Down
DROP TABLE vuln_aliases;
ALTER TABLE vuln_records DROP COLUMN digest;
ALTER TABLE vuln_records DROP COLUMN format;
ALTER TABLE vuln_records DROP COLUMN rating;
ALTER TABLE vuln_records DROP COLUMN related;
