-- One-time codes with which a patient reports their own daily health observations without an
-- account. Only a hash is stored; one live code per notification (a new code replaces it).
CREATE TABLE self_report_codes (
    notification_id INTEGER PRIMARY KEY REFERENCES notifications (id) ON DELETE CASCADE,
    code_hash       TEXT NOT NULL UNIQUE,
    expires_at      TEXT NOT NULL,
    created_at      TEXT NOT NULL
);
