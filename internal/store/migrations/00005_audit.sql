-- The audit log (SPEC, roles and isolation): one row per state-changing API
-- request and per operator read of another account's data.
--
-- Append-only: pib inserts rows and never updates or deletes them (package
-- audit has no such statement, and nothing else writes this table). A log
-- that the service itself can rewrite would not show what an operator did
-- as a seller or buyer; removing old rows is a database administrator's
-- decision, outside pib.
-- +goose Up
CREATE TABLE audit (
    -- Sorts by time: au-<unix nanoseconds, hex><random>.
    id           TEXT PRIMARY KEY,
    at           TIMESTAMP NOT NULL,
    request_id   TEXT NOT NULL,
    -- Who: the authenticated account, its name and role at that time.
    account_id   TEXT NOT NULL,
    account_name TEXT NOT NULL,
    role         TEXT NOT NULL,
    -- What: method and route pattern, e.g. "DELETE /v1/images/{ref}".
    action       TEXT NOT NULL,
    -- On what: the ID in the path or of the object created ('' for lists),
    -- and the account that owns it when the API knows ('' otherwise).
    object       TEXT NOT NULL DEFAULT '',
    owner        TEXT NOT NULL DEFAULT '',
    -- The HTTP status of the answer.
    result       INTEGER NOT NULL
);
CREATE INDEX audit_at ON audit (at);
CREATE INDEX audit_account ON audit (account_id, at);

-- +goose Down
DROP TABLE audit;
