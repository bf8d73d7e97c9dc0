-- SBOM formats (S1): a scan keeps one SBOM, in syft's own JSON; the
-- CycloneDX and SPDX documents are made from it when first asked for and
-- kept, so that every download of one scan's SBOM in one format is the
-- same document (each encoding draws a new serial number / namespace).
-- +goose Up
CREATE TABLE sbom_formats (
    -- the syft JSON SBOM a scan kept
    source_digest TEXT NOT NULL,
    -- cyclonedx-json or spdx-json
    format        TEXT NOT NULL,
    -- the document made from it
    digest        TEXT NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (source_digest, format)
);

-- +goose Down
DROP TABLE sbom_formats;
