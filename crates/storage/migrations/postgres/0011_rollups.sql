-- Rollups of the live counters (see ../sqlite).
CREATE TABLE area_daily_flows (
    day                 DATE NOT NULL,
    prefecture_code     TEXT COLLATE "C" NOT NULL,
    new_positive        BIGINT NOT NULL DEFAULT 0,
    reported_positives  BIGINT NOT NULL DEFAULT 0,
    deaths              BIGINT NOT NULL DEFAULT 0,
    severe_net          BIGINT NOT NULL DEFAULT 0,
    requiring_net       BIGINT NOT NULL DEFAULT 0,
    released_net        BIGINT NOT NULL DEFAULT 0,
    to_be_confirmed_net BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, prefecture_code)
);
CREATE TABLE sex_age_weekly_flows (
    week_start      DATE NOT NULL,
    prefecture_code TEXT COLLATE "C" NOT NULL,
    sex             SMALLINT NOT NULL,
    age_band        SMALLINT NOT NULL,
    new_positive    BIGINT NOT NULL DEFAULT 0,
    deaths          BIGINT NOT NULL DEFAULT 0,
    severe_net      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (week_start, prefecture_code, sex, age_band)
);
INSERT INTO area_daily_flows (day, prefecture_code, new_positive, reported_positives, deaths, severe_net, requiring_net, released_net, to_be_confirmed_net)
SELECT day, prefecture_code,
    SUM(CASE WHEN measure = 1 THEN count ELSE 0 END),
    SUM(CASE WHEN measure = 60 THEN count ELSE 0 END),
    SUM(CASE WHEN measure = 2 THEN count ELSE 0 END),
    SUM(CASE WHEN measure = 50 THEN count WHEN measure = 51 THEN -count ELSE 0 END),
    SUM(CASE WHEN measure BETWEEN 10 AND 14 THEN count WHEN measure BETWEEN 30 AND 34 THEN -count ELSE 0 END),
    SUM(CASE WHEN measure = 15 THEN count WHEN measure = 35 THEN -count ELSE 0 END),
    SUM(CASE WHEN measure = 17 THEN count WHEN measure = 37 THEN -count ELSE 0 END)
FROM daily_counts GROUP BY day, prefecture_code;
INSERT INTO sex_age_weekly_flows (week_start, prefecture_code, sex, age_band, new_positive, deaths, severe_net)
SELECT (day - CAST(EXTRACT(DOW FROM day) AS INTEGER)), prefecture_code, sex, age_band,
    SUM(CASE WHEN measure = 1 THEN count ELSE 0 END),
    SUM(CASE WHEN measure = 2 THEN count ELSE 0 END),
    SUM(CASE WHEN measure = 50 THEN count WHEN measure = 51 THEN -count ELSE 0 END)
FROM daily_counts WHERE measure IN (1, 2, 50, 51) GROUP BY (day - CAST(EXTRACT(DOW FROM day) AS INTEGER)), prefecture_code, sex, age_band;
