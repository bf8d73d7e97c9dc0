-- Blob leases: how nodes sharing one S3 blob store keep a garbage
-- collector (or an image removal) on one node from deleting a blob that a
-- writer on another node has just found or uploaded and is about to
-- reference (blobs.Leases). One row per digest: state 'held' by a writer
-- until its reference is committed (at most the grace period), or
-- 'deleting' while a deleter removes the object.
-- +goose Up
CREATE TABLE blob_leases (
    digest TEXT PRIMARY KEY,
    state  TEXT NOT NULL,
    -- Unix milliseconds: compared as numbers on both engines.
    at     BIGINT NOT NULL
);

-- +goose Down
DROP TABLE blob_leases;
