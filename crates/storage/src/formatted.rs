//! Dates and instants as text, formatted without chrono's general formatter (which showed in
//! profiles of national loads, a `String` each): SQLite's bulk path writes them by the million, and
//! in exactly the form sqlx writes them (RFC 3339, `+00:00`, fractions only when present), so
//! that rows written by a bulk path and by a single statement are alike.

use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, Timelike, Utc};

/// Text formatted into the value itself where it fits (dates and instants are bound by the
/// million during a national load, and a `String` each showed in profiles as allocation).
pub(crate) enum Formatted<const N: usize> {
    Inline([u8; N]),
    Heap(String),
}

impl<const N: usize> Formatted<N> {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Formatted::Inline(bytes) => std::str::from_utf8(bytes).expect("formatted as ASCII"),
            Formatted::Heap(s) => s,
        }
    }
}

/// Writes `YYYY-MM-DD` into `out`; false (and nothing written) for a year outside 0..=9999.
fn date_digits(date: NaiveDate, out: &mut [u8]) -> bool {
    let (y, m, d) = (date.year(), date.month(), date.day());
    if !(0..=9999).contains(&y) {
        return false;
    }
    let y = y as u32;
    out[..10].copy_from_slice(&[
        b'0' + (y / 1000) as u8,
        b'0' + (y / 100 % 10) as u8,
        b'0' + (y / 10 % 10) as u8,
        b'0' + (y % 10) as u8,
        b'-',
        b'0' + (m / 10) as u8,
        b'0' + (m % 10) as u8,
        b'-',
        b'0' + (d / 10) as u8,
        b'0' + (d % 10) as u8,
    ]);
    true
}

/// A date as sqlx writes it to SQLite (`YYYY-MM-DD`), formatted without chrono's general
/// formatter (which showed in profiles).
pub(crate) fn date_text(date: NaiveDate) -> Formatted<10> {
    let mut out = [0u8; 10];
    if date_digits(date, &mut out) {
        Formatted::Inline(out)
    } else {
        // Out of the four-digit range: the general formatter, as sqlx would.
        Formatted::Heap(date.format("%F").to_string())
    }
}

/// An instant as sqlx writes it to SQLite (RFC 3339, `+00:00`, fractions only when present).
pub(crate) fn instant(t: DateTime<Utc>) -> Formatted<25> {
    let mut out = *b"0000-00-00T00:00:00+00:00";
    if t.nanosecond() == 0 && date_digits(t.date_naive(), &mut out) {
        let (h, m, s) = (t.hour(), t.minute(), t.second());
        for (at, v) in [(11, h), (14, m), (17, s)] {
            out[at] = b'0' + (v / 10) as u8;
            out[at + 1] = b'0' + (v % 10) as u8;
        }
        return Formatted::Inline(out);
    }
    Formatted::Heap(t.to_rfc3339_opts(SecondsFormat::AutoSi, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text<const N: usize>(f: &Formatted<N>) -> &str {
        f.as_str()
    }

    /// Dates and instants must be written exactly as sqlx writes them, or range
    /// comparisons and reads would differ between rows written by the two paths.
    #[test]
    fn dates_and_instants_are_written_as_sqlx_writes_them() {
        for (y, m, d) in [(2021, 5, 17), (1900, 1, 1), (2023, 12, 31), (999, 2, 3)] {
            let date = NaiveDate::from_ymd_opt(y, m, d).expect("valid");
            assert_eq!(text(&date_text(date)), date.format("%F").to_string());
        }
        let t = DateTime::parse_from_rfc3339("2022-09-26T01:02:03Z")
            .expect("valid")
            .to_utc();
        assert_eq!(text(&instant(t)), "2022-09-26T01:02:03+00:00");
        assert_eq!(text(&instant(t)), t.to_rfc3339_opts(SecondsFormat::AutoSi, false));
        let t = DateTime::parse_from_rfc3339("2022-09-26T01:02:03.250Z")
            .expect("valid")
            .to_utc();
        assert_eq!(text(&instant(t)), "2022-09-26T01:02:03.250+00:00");
        let t = NaiveDate::from_ymd_opt(12_000, 1, 2)
            .expect("valid")
            .and_hms_opt(23, 59, 58)
            .expect("valid")
            .and_utc();
        assert_eq!(text(&instant(t)), t.to_rfc3339_opts(SecondsFormat::AutoSi, false));
    }
}
