-- Build backend per OS version (issue 18): 'sandbox' runs the installer in
-- pib's Linux sandbox (namespaces over the base image's layers, about a
-- second); 'vm' boots the base image under QEMU and runs it through the
-- guest agent (a real systemd, tens of seconds under software emulation).
-- Windows OS versions can only build in a machine, so they are 'vm'.
-- +goose Up
ALTER TABLE os_versions ADD COLUMN build_backend TEXT NOT NULL DEFAULT 'sandbox' CHECK (build_backend IN ('sandbox', 'vm'));
UPDATE os_versions SET build_backend = 'vm' WHERE platform = 'windows';

-- +goose Down
ALTER TABLE os_versions DROP COLUMN build_backend;
