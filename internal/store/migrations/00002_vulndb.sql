-- The local OSV vulnerability database (rule S2). Records keep only what
-- matching and reports need; the affected rows are the lookup index: one
-- row per (record, ecosystem, package) holding that entry's ranges and
-- versions as JSON.
-- +goose Up
CREATE TABLE vuln_records (
    id          TEXT PRIMARY KEY,
    modified    TIMESTAMP NOT NULL,
    summary     TEXT NOT NULL,
    aliases     TEXT NOT NULL,
    severity    TEXT NOT NULL,
    imported_at TIMESTAMP NOT NULL
);

CREATE TABLE vuln_affected (
    vuln_id   TEXT NOT NULL REFERENCES vuln_records (id) ON DELETE CASCADE,
    ecosystem TEXT NOT NULL,
    package   TEXT NOT NULL,
    data      TEXT NOT NULL
);
CREATE INDEX vuln_affected_lookup ON vuln_affected (ecosystem, package);
CREATE INDEX vuln_affected_vuln ON vuln_affected (vuln_id);

-- What `pib vulndb update` last fetched per source URL, for conditional
-- requests, and when anything was last imported from it.
CREATE TABLE vuln_sources (
    source        TEXT PRIMARY KEY,
    etag          TEXT NOT NULL,
    last_modified TEXT NOT NULL,
    imported_at   TIMESTAMP NOT NULL
);

-- +goose Down
DROP TABLE vuln_sources;
DROP TABLE vuln_affected;
DROP TABLE vuln_records;
