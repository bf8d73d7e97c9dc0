-- Buyers (SPEC C1–C6): subscriptions to products, private image builds,
-- and tags on images (C5). A private image build is a pipeline build
-- (builds row, kind 'private') of the fulfillment's package group with the
-- buyer's gold image as its base; private_builds holds what the buyer asked
-- for and makes the request idempotent (C4).
-- +goose Up

-- C1: a buyer's subscription to a product it may see.
CREATE TABLE subscriptions (
    account_id TEXT NOT NULL REFERENCES accounts (id),
    product_id TEXT NOT NULL REFERENCES products (id),
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (account_id, product_id)
);

-- kind '' is a seller's test build of a submitted group; 'private' a
-- buyer's (or a seller's test-fulfilment, F2) build onto its own image.
-- A private build has a submission number of its own below zero
-- (UNIQUE (group_id, submission, os_name) stays as it is, and the
-- group's submissions, counted from 1, never see it); its history is
-- kept under its own ID, not its group's. image_tags is the JSON object
-- of tags the new image gets (C5).
ALTER TABLE builds ADD COLUMN kind TEXT NOT NULL DEFAULT '';
ALTER TABLE builds ADD COLUMN image_tags TEXT NOT NULL DEFAULT '';
CREATE INDEX builds_owner_kind ON builds (owner, kind, state);

CREATE TABLE private_builds (
    build_id     TEXT PRIMARY KEY REFERENCES builds (id) ON DELETE CASCADE,
    account_id   TEXT NOT NULL REFERENCES accounts (id),
    product_id   TEXT NOT NULL,
    version_id   TEXT NOT NULL,
    option_id    TEXT NOT NULL,
    gold_image   TEXT NOT NULL,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    -- JSON object of the buyer's own tags.
    tags         TEXT NOT NULL DEFAULT '{}',
    -- C4: the request as given, to tell a retry from a different request
    -- under the same client token; '' client_token: not idempotent.
    client_token TEXT NOT NULL DEFAULT '',
    request      TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL
);
-- C4: one build per client token and account, whatever the race.
CREATE UNIQUE INDEX private_builds_token ON private_builds (account_id, client_token) WHERE client_token <> '';
CREATE INDEX private_builds_account ON private_builds (account_id, created_at);

-- C5: an image's tags (a private image's fulfillment, product, version
-- and source image, and the buyer's own); images never change, so neither
-- do their tags.
CREATE TABLE image_tags (
    image_id TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (image_id, key)
);
CREATE INDEX image_tags_key ON image_tags (key, value);

-- +goose Down
DROP TABLE image_tags;
DROP TABLE private_builds;
DROP TABLE subscriptions;
DROP INDEX builds_owner_kind;
ALTER TABLE builds DROP COLUMN image_tags;
ALTER TABLE builds DROP COLUMN kind;
