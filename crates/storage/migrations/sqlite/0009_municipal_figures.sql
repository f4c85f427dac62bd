-- Municipal-published figures (自治体公表データ): what each prefecture announced for a day.
-- The statistics publish from them before an indicator's switch to registry data, and compare
-- them with the registry after it (the difference indicator). A figure not announced is NULL.
CREATE TABLE municipal_figures (
    report_date           TEXT NOT NULL,
    prefecture_code       TEXT NOT NULL REFERENCES prefectures (code),
    new_positives         INTEGER CHECK (new_positives >= 0),
    cumulative_positives  INTEGER CHECK (cumulative_positives >= 0),
    severe                INTEGER CHECK (severe >= 0),
    deaths_cumulative     INTEGER CHECK (deaths_cumulative >= 0),
    requiring_inpatient   INTEGER CHECK (requiring_inpatient >= 0),
    discharged_cumulative INTEGER CHECK (discharged_cumulative >= 0),
    to_be_confirmed       INTEGER CHECK (to_be_confirmed >= 0),
    updated_at            TEXT NOT NULL,
    PRIMARY KEY (prefecture_code, report_date)
);
