-- Daily total-count reports (全数届出, from 2022-09-26): every institution reports, per day and
-- age band, how many positives it diagnosed, notified individually or not. One row per
-- (date, institution, age band); a re-sent report replaces the count.
CREATE TABLE total_reports (
    id                 INTEGER PRIMARY KEY,
    report_date        TEXT NOT NULL,
    prefecture_code    TEXT NOT NULL REFERENCES prefectures (code),
    health_centre_code TEXT NOT NULL REFERENCES health_centres (code),
    institution_code   TEXT NOT NULL REFERENCES institutions (code),
    age_band           TEXT NOT NULL,
    count              INTEGER NOT NULL CHECK (count >= 0),
    updated_at         TEXT NOT NULL,
    UNIQUE (report_date, institution_code, age_band)
);
CREATE INDEX total_reports_by_prefecture ON total_reports (prefecture_code, report_date);
