-- Inventories (S1, S5): what a scan found in an image, kept per image ID.
-- Images never change, so neither does their inventory: a build's scan
-- starts from its base image's (incremental scanning), and monitoring
-- re-matches them when the vulnerability data changes without reading any
-- root file system again. Both parts are blobs (gzip'd JSON), also listed
-- in image_blobs so that removing the image removes them.
-- +goose Up
CREATE TABLE image_inventories (
    image_id        TEXT PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
    -- the matching view: scan.Inventory (OS and packages)
    packages_digest TEXT NOT NULL,
    -- the scanner's full record (syft's SBOM and the policy checks'
    -- state), which an incremental scan starts from
    state_digest    TEXT NOT NULL,
    created_at      TIMESTAMP NOT NULL
);

-- +goose Down
DROP TABLE image_inventories;
