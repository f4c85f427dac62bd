-- Clusters (集団感染等) and the active investigation (積極的疫学調査) links: a cluster has a
-- setting, a prefecture and the date of its first case; the investigating health centre links
-- notifications to it and records the infection route and place it found.
CREATE TABLE clusters (
    id               INTEGER PRIMARY KEY,
    prefecture_code  TEXT NOT NULL REFERENCES prefectures (code),
    health_centre_code TEXT NOT NULL REFERENCES health_centres (code),
    setting          TEXT NOT NULL CHECK (setting IN ('hospital', 'care_facility', 'school', 'restaurant', 'workplace', 'other')),
    name             TEXT NOT NULL,
    first_case_date  TEXT NOT NULL,
    created_at       TEXT NOT NULL
);
CREATE INDEX clusters_by_prefecture ON clusters (prefecture_code, first_case_date);
ALTER TABLE notifications ADD COLUMN cluster_id INTEGER REFERENCES clusters (id);
ALTER TABLE notifications ADD COLUMN infection_place TEXT;
