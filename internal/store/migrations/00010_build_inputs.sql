-- Reproducible builds: the digest of everything that decides what a build
-- installs (base image, installer, packages, time clamp), recorded when
-- the build runs, so a build finds the previous one of the same inputs and
-- compares their layers (pipeline.InputsDigest).
-- +goose Up
ALTER TABLE builds ADD COLUMN inputs_digest TEXT NOT NULL DEFAULT '';
CREATE INDEX builds_inputs ON builds (owner, inputs_digest);

-- +goose Down
DROP INDEX builds_inputs;
ALTER TABLE builds DROP COLUMN inputs_digest;
