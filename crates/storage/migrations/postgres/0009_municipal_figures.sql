-- Municipal-published figures (see ../sqlite).
CREATE TABLE municipal_figures (
    report_date           DATE NOT NULL,
    prefecture_code       TEXT COLLATE "C" NOT NULL REFERENCES prefectures (code),
    new_positives         BIGINT CHECK (new_positives >= 0),
    cumulative_positives  BIGINT CHECK (cumulative_positives >= 0),
    severe                BIGINT CHECK (severe >= 0),
    deaths_cumulative     BIGINT CHECK (deaths_cumulative >= 0),
    requiring_inpatient   BIGINT CHECK (requiring_inpatient >= 0),
    discharged_cumulative BIGINT CHECK (discharged_cumulative >= 0),
    to_be_confirmed       BIGINT CHECK (to_be_confirmed >= 0),
    updated_at            TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (prefecture_code, report_date)
);
