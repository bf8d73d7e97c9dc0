-- The seller service: accounts, registered base OS versions, uploaded
-- packages and package groups.
-- +goose Up
CREATE TABLE accounts (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    role       TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL
);

-- P4: only registered OS versions may be targeted.
CREATE TABLE os_versions (
    name       TEXT PRIMARY KEY,
    platform   TEXT NOT NULL,
    image_id   TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE packages (
    id          TEXT PRIMARY KEY,
    owner       TEXT NOT NULL REFERENCES accounts (id),
    name        TEXT NOT NULL,
    size        BIGINT NOT NULL,
    digest      TEXT NOT NULL,
    uploaded_at TIMESTAMP NOT NULL,
    UNIQUE (owner, digest, name)
);

-- N2: every group name an account ever used, kept forever (never deleted,
-- not even with the group), so a name can be taken only once.
CREATE TABLE group_names (
    owner TEXT NOT NULL,
    name  TEXT NOT NULL,
    PRIMARY KEY (owner, name)
);

CREATE TABLE package_groups (
    id           TEXT PRIMARY KEY,
    owner        TEXT NOT NULL REFERENCES accounts (id),
    name         TEXT NOT NULL,
    platform     TEXT NOT NULL,
    installer_id TEXT NOT NULL REFERENCES packages (id),
    created_at   TIMESTAMP NOT NULL,
    submitted_at TIMESTAMP,
    UNIQUE (owner, name)
);
CREATE INDEX package_groups_owner ON package_groups (owner, created_at);

CREATE TABLE group_os_versions (
    group_id TEXT NOT NULL REFERENCES package_groups (id) ON DELETE CASCADE,
    os_name  TEXT NOT NULL REFERENCES os_versions (name),
    PRIMARY KEY (group_id, os_name)
);

CREATE TABLE group_packages (
    group_id   TEXT NOT NULL REFERENCES package_groups (id) ON DELETE CASCADE,
    package_id TEXT NOT NULL REFERENCES packages (id),
    PRIMARY KEY (group_id, package_id)
);

-- +goose Down
DROP TABLE group_packages;
DROP TABLE group_os_versions;
DROP TABLE package_groups;
DROP TABLE group_names;
DROP TABLE packages;
DROP TABLE os_versions;
DROP TABLE accounts;
