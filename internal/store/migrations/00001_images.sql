-- Images: OCI manifests and layers live in the blob store; this is what
-- pib needs to list, resolve and garbage-collect them.
-- +goose Up
CREATE TABLE images (
    id              TEXT PRIMARY KEY,
    alias           TEXT,
    owner           TEXT NOT NULL,
    os              TEXT NOT NULL,
    distro_id       TEXT NOT NULL,
    distro_version  TEXT NOT NULL,
    architecture    TEXT NOT NULL,
    parent_id       TEXT,
    manifest_digest TEXT NOT NULL,
    config_digest   TEXT NOT NULL,
    size            BIGINT NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    UNIQUE (owner, alias)
);

-- Every blob an image needs (manifest, config, layers): a blob no row
-- names is garbage.
CREATE TABLE image_blobs (
    image_id TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    digest   TEXT NOT NULL,
    PRIMARY KEY (image_id, digest)
);
CREATE INDEX image_blobs_digest ON image_blobs (digest);

-- +goose Down
DROP TABLE image_blobs;
DROP TABLE images;
