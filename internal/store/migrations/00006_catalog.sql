-- The catalog (SPEC: catalog visibility, L2, F1–F3): products, their
-- versions, each version's fulfillment options, the accounts a seller
-- names for test fulfilment, and the change requests operators review.
-- Nothing reaches products, product_versions or fulfillment_options but
-- an approved change request (package catalog).
-- +goose Up

-- F1: the version of the software a package group installs; optional,
-- existing groups have none ('').
ALTER TABLE package_groups ADD COLUMN software_version TEXT NOT NULL DEFAULT '';

CREATE TABLE products (
    id                TEXT PRIMARY KEY,
    owner             TEXT NOT NULL REFERENCES accounts (id),
    title             TEXT NOT NULL,
    short_description TEXT NOT NULL,
    long_description  TEXT NOT NULL,
    -- JSON array of at most 3 strings.
    highlights        TEXT NOT NULL DEFAULT '[]',
    category          TEXT NOT NULL,
    support_contact   TEXT NOT NULL,
    eula_url          TEXT NOT NULL DEFAULT '',
    logo_url          TEXT NOT NULL DEFAULT '',
    visibility        TEXT NOT NULL CHECK (visibility IN ('draft', 'limited', 'public')),
    created_at        TIMESTAMP NOT NULL,
    updated_at        TIMESTAMP NOT NULL,
    -- F3: a seller's product titles are unique.
    UNIQUE (owner, title)
);
CREATE INDEX products_visibility ON products (visibility, title);

CREATE TABLE product_versions (
    id                 TEXT PRIMARY KEY,
    product_id         TEXT NOT NULL REFERENCES products (id),
    -- The product's owner, repeated so that one visibility condition
    -- serves products and versions alike.
    owner              TEXT NOT NULL REFERENCES accounts (id),
    title              TEXT NOT NULL,
    release_notes      TEXT NOT NULL,
    usage_instructions TEXT NOT NULL,
    visibility         TEXT NOT NULL CHECK (visibility IN ('draft', 'limited', 'public')),
    created_at         TIMESTAMP NOT NULL,
    UNIQUE (product_id, title)
);

CREATE TABLE fulfillment_options (
    id         TEXT PRIMARY KEY,
    version_id TEXT NOT NULL REFERENCES product_versions (id),
    kind       TEXT NOT NULL CHECK (kind IN ('package_group', 'image')),
    -- kind package_group: the group and its platform; kind image: the image.
    group_id   TEXT REFERENCES package_groups (id),
    platform   TEXT NOT NULL DEFAULT '',
    image_id   TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    CHECK ((kind = 'package_group' AND group_id IS NOT NULL AND platform IN ('linux', 'windows'))
        OR (kind = 'image' AND group_id IS NULL AND image_id <> ''))
);
-- F1: at most one package group per platform per version, and one image
-- per version, which nothing replaces.
CREATE UNIQUE INDEX fulfillment_one_group_per_platform ON fulfillment_options (version_id, platform) WHERE kind = 'package_group';
CREATE UNIQUE INDEX fulfillment_one_image ON fulfillment_options (version_id) WHERE kind = 'image';

-- Limited visibility: the accounts a seller names for test fulfilment of a
-- product or a version (object_id is a prod-… or a ver-… ID).
CREATE TABLE catalog_grants (
    object_id  TEXT NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    PRIMARY KEY (object_id, account_id)
);
CREATE INDEX catalog_grants_account ON catalog_grants (account_id);

-- L2: a load form (or a publish request) waiting for, or after, an
-- operator's decision. rows_json holds every row; approval applies them all
-- in one transaction or none.
CREATE TABLE change_requests (
    id         TEXT PRIMARY KEY,
    seller     TEXT NOT NULL REFERENCES accounts (id),
    state      TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected')),
    rows_json  TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    decided_at TIMESTAMP,
    decided_by TEXT NOT NULL DEFAULT '',
    reason     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX change_requests_seller ON change_requests (seller, created_at);
CREATE INDEX change_requests_state ON change_requests (state, created_at);

-- +goose Down
DROP TABLE change_requests;
DROP TABLE catalog_grants;
DROP TABLE fulfillment_options;
DROP TABLE product_versions;
DROP TABLE products;
ALTER TABLE package_groups DROP COLUMN software_version;
