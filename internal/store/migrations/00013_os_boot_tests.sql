-- Boot tests (rules V1–V3): an operator turns them on per OS version.
-- Off by default: on machines with only software emulation a boot test adds
-- tens of seconds to a build that otherwise takes about one.
-- +goose Up
ALTER TABLE os_versions ADD COLUMN boot_test BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down
ALTER TABLE os_versions DROP COLUMN boot_test;
