-- Foundation schema (SQLite). The PostgreSQL twin in ../postgres has the same tables, columns
-- and meaning; only types and trigger syntax differ. Instants are RFC 3339 UTC text written by
-- the application (never SQLite's datetime()), so they sort correctly as text.

-- Small key/value facts about the database itself (e.g. that it is a disposable demo).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE prefectures (
    code            TEXT PRIMARY KEY CHECK (length(code) = 2),
    name_ja         TEXT NOT NULL,
    name_en         TEXT NOT NULL,
    population_2020 INTEGER NOT NULL CHECK (population_2020 > 0),
    population_2019 INTEGER NOT NULL CHECK (population_2019 > 0)
);

-- 保健所: each belongs to one prefecture and receives the notifications of its jurisdiction.
CREATE TABLE health_centres (
    code            TEXT PRIMARY KEY,
    prefecture_code TEXT NOT NULL REFERENCES prefectures (code),
    name            TEXT NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE INDEX health_centres_by_prefecture ON health_centres (prefecture_code, code);

-- 医療機関: each files its notifications with one health centre.
CREATE TABLE institutions (
    code               TEXT PRIMARY KEY,
    health_centre_code TEXT NOT NULL REFERENCES health_centres (code),
    name               TEXT NOT NULL,
    created_at         TEXT NOT NULL
);
CREATE INDEX institutions_by_health_centre ON institutions (health_centre_code, code);

-- Accounts. A role is bound to exactly one scope column (or none for national and admin), and
-- the foreign keys make a scope that names a missing organisation impossible.
CREATE TABLE users (
    id                  INTEGER PRIMARY KEY,
    login               TEXT NOT NULL UNIQUE,
    role                TEXT NOT NULL CHECK (role IN ('doctor', 'health_centre', 'prefecture', 'national', 'admin')),
    scope_institution   TEXT REFERENCES institutions (code),
    scope_health_centre TEXT REFERENCES health_centres (code),
    scope_prefecture    TEXT REFERENCES prefectures (code),
    password_hash       TEXT NOT NULL,
    totp_secret         TEXT,
    totp_last_step      INTEGER,
    disabled            BOOLEAN NOT NULL DEFAULT FALSE,
    created_at          TEXT NOT NULL,
    CHECK ((scope_institution IS NOT NULL) = (role = 'doctor')),
    CHECK ((scope_health_centre IS NOT NULL) = (role = 'health_centre')),
    CHECK ((scope_prefecture IS NOT NULL) = (role = 'prefecture'))
);

-- Browser sessions live here, not in server memory, so several servers can share one database.
-- Only a hash of the cookie value is stored: a leaked table does not yield working cookies.
CREATE TABLE sessions (
    token_hash          TEXT PRIMARY KEY,
    user_id             INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token          TEXT NOT NULL,
    second_factor_done  BOOLEAN NOT NULL,
    created_at          TEXT NOT NULL,
    idle_expires_at     TEXT NOT NULL,
    absolute_expires_at TEXT NOT NULL,
    client_addr         TEXT
);
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_expiry ON sessions (absolute_expires_at);

-- Bearer tokens for API clients, stored as SHA-256 hashes; revoking keeps the row for the audit.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash   TEXT NOT NULL UNIQUE,
    label        TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT
);
CREATE INDEX api_tokens_by_user ON api_tokens (user_id);

-- Failed-login counters per account ("login:NAME") and per client address ("addr:IP").
CREATE TABLE login_throttle (
    key               TEXT PRIMARY KEY,
    failures          INTEGER NOT NULL,
    window_started_at TEXT NOT NULL,
    locked_until      TEXT
);

-- The audit log: append-only and hash-chained (see todoke_domain::audit). The triggers stop
-- accidental edits; the chain detects deliberate ones made around them.
CREATE TABLE audit_log (
    seq           INTEGER PRIMARY KEY,
    at            TEXT NOT NULL,
    actor_user_id INTEGER,
    actor_login   TEXT,
    actor_role    TEXT,
    action        TEXT NOT NULL,
    record_type   TEXT NOT NULL,
    record_id     TEXT,
    client_addr   TEXT,
    request_id    TEXT,
    detail        TEXT,
    prev_hash     TEXT NOT NULL,
    hash          TEXT NOT NULL
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

-- The chain's head, one row; appends lock it so that concurrent writers cannot fork the chain.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- The 47 prefectures (JIS X 0401), with the populations used for "per 100,000" indicators:
-- the 2020 census (default) and the 2019-10-01 estimate (for reproducing 2020-21 figures).
-- Source: shared/data/prefectures.csv; the census column sums to 126,146,099.
INSERT INTO prefectures (code, name_ja, name_en, population_2020, population_2019) VALUES
  ('01', '北海道', 'Hokkaido', 5224614, 5250000),
  ('02', '青森県', 'Aomori', 1237984, 1246000),
  ('03', '岩手県', 'Iwate', 1210534, 1227000),
  ('04', '宮城県', 'Miyagi', 2301996, 2306000),
  ('05', '秋田県', 'Akita', 959502, 966000),
  ('06', '山形県', 'Yamagata', 1068027, 1078000),
  ('07', '福島県', 'Fukushima', 1833152, 1846000),
  ('08', '茨城県', 'Ibaraki', 2867009, 2860000),
  ('09', '栃木県', 'Tochigi', 1933146, 1934000),
  ('10', '群馬県', 'Gunma', 1939110, 1942000),
  ('11', '埼玉県', 'Saitama', 7344765, 7350000),
  ('12', '千葉県', 'Chiba', 6284480, 6259000),
  ('13', '東京都', 'Tokyo', 14047594, 13921000),
  ('14', '神奈川県', 'Kanagawa', 9237337, 9198000),
  ('15', '新潟県', 'Niigata', 2201272, 2223000),
  ('16', '富山県', 'Toyama', 1034814, 1044000),
  ('17', '石川県', 'Ishikawa', 1132526, 1138000),
  ('18', '福井県', 'Fukui', 766863, 768000),
  ('19', '山梨県', 'Yamanashi', 809974, 811000),
  ('20', '長野県', 'Nagano', 2048011, 2049000),
  ('21', '岐阜県', 'Gifu', 1978742, 1987000),
  ('22', '静岡県', 'Shizuoka', 3633202, 3644000),
  ('23', '愛知県', 'Aichi', 7542415, 7552000),
  ('24', '三重県', 'Mie', 1770254, 1781000),
  ('25', '滋賀県', 'Shiga', 1413610, 1414000),
  ('26', '京都府', 'Kyoto', 2578087, 2583000),
  ('27', '大阪府', 'Osaka', 8837685, 8809000),
  ('28', '兵庫県', 'Hyogo', 5465002, 5466000),
  ('29', '奈良県', 'Nara', 1324473, 1330000),
  ('30', '和歌山県', 'Wakayama', 922584, 925000),
  ('31', '鳥取県', 'Tottori', 553407, 556000),
  ('32', '島根県', 'Shimane', 671126, 674000),
  ('33', '岡山県', 'Okayama', 1888432, 1890000),
  ('34', '広島県', 'Hiroshima', 2799702, 2804000),
  ('35', '山口県', 'Yamaguchi', 1342059, 1358000),
  ('36', '徳島県', 'Tokushima', 719559, 728000),
  ('37', '香川県', 'Kagawa', 950244, 956000),
  ('38', '愛媛県', 'Ehime', 1334841, 1339000),
  ('39', '高知県', 'Kochi', 691527, 698000),
  ('40', '福岡県', 'Fukuoka', 5135214, 5104000),
  ('41', '佐賀県', 'Saga', 811442, 815000),
  ('42', '長崎県', 'Nagasaki', 1312317, 1327000),
  ('43', '熊本県', 'Kumamoto', 1738301, 1748000),
  ('44', '大分県', 'Oita', 1123852, 1135000),
  ('45', '宮崎県', 'Miyazaki', 1069576, 1073000),
  ('46', '鹿児島県', 'Kagoshima', 1588256, 1602000),
  ('47', '沖縄県', 'Okinawa', 1467480, 1453000);
