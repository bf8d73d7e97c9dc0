-- Monitoring (S5): what the latest re-match of each image that matters
-- found, and the verdict its scan gave with the data of its day, so that a
-- change is announced once and the status view can say which verdicts the
-- newest data would change. No row: the image is not monitored (it has no
-- kept inventory, or was never re-matched).
-- +goose Up
CREATE TABLE image_monitoring (
    image_id       TEXT PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
    -- The scan's verdict (successful, issues_found; '' when no scan report
    -- is kept) and the date of the vulnerability data it was made with.
    scan_status    TEXT NOT NULL,
    scan_data_date TIMESTAMP,
    -- JSON of the scan's findings, and of its S3 check results, which the
    -- verdict with newer data is decided from again.
    scan_findings  TEXT NOT NULL,
    checks         TEXT NOT NULL,
    -- The latest re-match: its findings (JSON), their digest (the
    -- compare-and-set key that makes concurrent runs announce a change
    -- once), the verdict they give and the data they were made with.
    findings       TEXT NOT NULL,
    findings_digest TEXT NOT NULL,
    status         TEXT NOT NULL,
    data_date      TIMESTAMP NOT NULL,
    checked_at     TIMESTAMP NOT NULL,
    changed_at     TIMESTAMP
);

-- One row per re-match run: what it was made with and what it did. The
-- latest row's data version tells whether the data changed since.
CREATE TABLE monitor_runs (
    id            TEXT PRIMARY KEY,
    reason        TEXT NOT NULL,
    data_records  INTEGER NOT NULL,
    data_date     TIMESTAMP,
    data_imported TIMESTAMP,
    images        INTEGER NOT NULL,
    changed       INTEGER NOT NULL,
    not_monitored INTEGER NOT NULL,
    started_at    TIMESTAMP NOT NULL,
    duration_ms   BIGINT NOT NULL
);
CREATE INDEX monitor_runs_started ON monitor_runs (started_at);

-- +goose Down
DROP TABLE monitor_runs;
DROP TABLE image_monitoring;
