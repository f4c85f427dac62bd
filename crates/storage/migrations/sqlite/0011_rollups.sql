-- Rollups of the live counters, kept by the same writes in the same transactions
-- (todoke_domain::counting::rollups): one row per prefecture and day with the flows the daily
-- indicators read, and one per prefecture, week (Sunday to Saturday), sex and age band with the
-- flows of the sex/age tables. A publication reads these (about 170,000 rows at national scale)
-- instead of millions of counters. Filled here from the counters already stored.
CREATE TABLE area_daily_flows (
    day                 TEXT NOT NULL,
    prefecture_code     TEXT NOT NULL,
    new_positive        INTEGER NOT NULL DEFAULT 0,
    reported_positives  INTEGER NOT NULL DEFAULT 0,
    deaths              INTEGER NOT NULL DEFAULT 0,
    severe_net          INTEGER NOT NULL DEFAULT 0,
    requiring_net       INTEGER NOT NULL DEFAULT 0,
    released_net        INTEGER NOT NULL DEFAULT 0,
    to_be_confirmed_net INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, prefecture_code)
) WITHOUT ROWID;
CREATE TABLE sex_age_weekly_flows (
    week_start      TEXT NOT NULL,
    prefecture_code TEXT NOT NULL,
    sex             INTEGER NOT NULL,
    age_band        INTEGER NOT NULL,
    new_positive    INTEGER NOT NULL DEFAULT 0,
    deaths          INTEGER NOT NULL DEFAULT 0,
    severe_net      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (week_start, prefecture_code, sex, age_band)
) WITHOUT ROWID;
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
SELECT date(day, '-' || strftime('%w', day) || ' days'), prefecture_code, sex, age_band,
    SUM(CASE WHEN measure = 1 THEN count ELSE 0 END),
    SUM(CASE WHEN measure = 2 THEN count ELSE 0 END),
    SUM(CASE WHEN measure = 50 THEN count WHEN measure = 51 THEN -count ELSE 0 END)
FROM daily_counts WHERE measure IN (1, 2, 50, 51) GROUP BY date(day, '-' || strftime('%w', day) || ' days'), prefecture_code, sex, age_band;
