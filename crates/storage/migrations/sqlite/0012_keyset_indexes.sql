-- Indexes shaped for the registry's keyset listings (WHERE scope = ? AND id > ? ORDER BY id),
-- and cheap to keep up to date while notifications arrive in bulk:
-- * a prefecture's notifications by id: new ids land at the end of each prefecture's range,
--   where (prefecture_code, report_day, id) put every insert at a random place in the tree; a
--   report-date filter is applied while walking the prefecture's range;
-- * health centre, institution, kana name and phone are often absent (imports, notifications
--   without a name): only rows that have one can match a search on it, so only those are indexed.
DROP INDEX notifications_by_prefecture_day;
CREATE INDEX notifications_by_prefecture ON notifications (prefecture_code, id);
DROP INDEX notifications_by_health_centre;
CREATE INDEX notifications_by_health_centre ON notifications (health_centre_code, id) WHERE health_centre_code IS NOT NULL;
DROP INDEX notifications_by_institution;
CREATE INDEX notifications_by_institution ON notifications (institution_code, id) WHERE institution_code IS NOT NULL;
DROP INDEX persons_by_kana;
CREATE INDEX persons_by_kana ON persons (name_kana, birth_date, sex) WHERE name_kana IS NOT NULL;
DROP INDEX persons_by_phone;
CREATE INDEX persons_by_phone ON persons (phone_digits) WHERE phone_digits IS NOT NULL;
