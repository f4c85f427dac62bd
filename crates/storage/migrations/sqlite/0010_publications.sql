-- The source switch table (集計元の切替): per published indicator and prefecture, the first day
-- on which the registry rather than the municipal-published figures is the source. Rows absent
-- here take the default schedule of todoke_statistics::switch.
CREATE TABLE source_switches (
    indicator       TEXT NOT NULL,
    prefecture_code TEXT NOT NULL REFERENCES prefectures (code),
    registry_from   TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (indicator, prefecture_code)
);

-- Publications (公表): immutable snapshots of every published cell (value, source, suppression
-- flag), encoded canonically by todoke_statistics so that the same data gives the same bytes and
-- the same content hash. Open-data files are rendered from them.
CREATE TABLE publications (
    id              INTEGER PRIMARY KEY,
    as_of           TEXT NOT NULL,
    published_at    TEXT NOT NULL,
    rules_version   TEXT NOT NULL,
    content_sha256  TEXT NOT NULL,
    summary         TEXT NOT NULL,
    content         BLOB NOT NULL
);
CREATE TRIGGER publications_no_update BEFORE UPDATE ON publications
BEGIN SELECT RAISE(ABORT, 'publications are immutable'); END;
CREATE TRIGGER publications_no_delete BEFORE DELETE ON publications
BEGIN SELECT RAISE(ABORT, 'publications are immutable'); END;
