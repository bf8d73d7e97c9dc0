-- Disk images (issue 18): an image whose content is a bootable disk kept
-- whole, as a chain of qcow2 files one per layer (disk/0.qcow2 imported,
-- disk/N.qcow2 the overlay build N left), rather than a root file system.
-- A Windows base is one: pib cannot unpack or write NTFS, so its builds
-- run in a machine and keep what the installer changed as an overlay.
-- disk is the image's top disk file; '' for a file-system image.
-- +goose Up
ALTER TABLE images ADD COLUMN disk TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE images DROP COLUMN disk;
