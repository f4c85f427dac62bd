//! Publications (公表): immutable snapshots of every cell with its source and suppression flag.
//!
//! A publication is stored as one canonical byte string (fixed table order, one flag byte and a
//! variable-length integer per cell), so the same data published twice gives the same bytes and
//! the same SHA-256; the time of publication is kept beside it, not in it. Two publications are
//! compared cell by cell to show what was revised.

use chrono::NaiveDate;
use sha2::{Digest, Sha256};

use crate::compute::Indicators;
use crate::model::{
    AREAS, Calendar, Cell, DailySeries, DailyTable, DifferenceSeries, Source, Suppression, WeeklySeries, WeeklyTable,
};

const MAGIC: &[u8] = b"TODOKE-PUBLICATION-1\n";

/// What a publication holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    pub as_of: NaiveDate,
    pub rules_version: String,
    pub indicators: Indicators,
}

/// Counts that describe a publication (stored as JSON beside it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub days: usize,
    pub weeks: usize,
    pub cells: usize,
    pub primary_suppressed: usize,
    pub secondary_suppressed: usize,
    /// Primary cells secondary suppression could not protect (published only when explicitly
    /// allowed, for synthetic data).
    #[serde(default)]
    pub unprotected: usize,
}

/// The content could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("publication content is corrupt: {0}")]
pub struct Corrupt(&'static str);

impl Publication {
    pub fn calendar(&self) -> Calendar {
        Calendar::new(self.as_of)
    }

    pub fn daily(&self, s: DailySeries) -> &DailyTable {
        &self.indicators.daily[s.index()]
    }

    pub fn weekly(&self, s: WeeklySeries) -> &WeeklyTable {
        &self.indicators.weekly[s.index()]
    }

    pub fn difference(&self, s: DifferenceSeries) -> &DailyTable {
        &self.indicators.difference[s.index()]
    }

    fn tables(&self) -> impl Iterator<Item = &[Cell]> {
        self.indicators
            .daily
            .iter()
            .map(|t| t.cells.as_slice())
            .chain(self.indicators.weekly.iter().map(|t| t.cells.as_slice()))
            .chain(self.indicators.difference.iter().map(|t| t.cells.as_slice()))
    }

    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            days: self.calendar().days(),
            weeks: self.calendar().weeks(),
            cells: 0,
            primary_suppressed: 0,
            secondary_suppressed: 0,
            unprotected: 0,
        };
        for cells in self.tables() {
            s.cells += cells.len();
            for c in cells {
                match c.suppression {
                    Suppression::Primary => s.primary_suppressed += 1,
                    Suppression::Secondary => s.secondary_suppressed += 1,
                    Suppression::Shown => {}
                }
            }
        }
        s
    }

    /// The canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 << 20);
        out.extend_from_slice(MAGIC);
        put_str(&mut out, &self.as_of.to_string());
        put_str(&mut out, &self.rules_version);
        for cells in self.tables() {
            put_varint(&mut out, cells.len() as u64);
            for c in cells {
                let flag = c.source.code()
                    | (match c.suppression {
                        Suppression::Shown => 0,
                        Suppression::Primary => 1,
                        Suppression::Secondary => 2,
                    } << 2)
                    | (u8::from(c.value.is_some()) << 4);
                out.push(flag);
                if let Some(v) = c.value {
                    put_varint(&mut out, ((v << 1) ^ (v >> 63)) as u64);
                }
            }
        }
        out
    }

    /// Reads canonical bytes back.
    pub fn decode(bytes: &[u8]) -> Result<Publication, Corrupt> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(MAGIC.len())? != MAGIC {
            return Err(Corrupt("not a publication"));
        }
        let as_of: NaiveDate = r.string()?.parse().map_err(|_| Corrupt("as-of date"))?;
        let rules_version = r.string()?;
        let cal = Calendar::new(as_of);
        let (days, weeks) = (cal.days(), cal.weeks());
        let mut read_cells = |expected: usize| -> Result<Vec<Cell>, Corrupt> {
            if r.varint()? as usize != expected {
                return Err(Corrupt("table size"));
            }
            (0..expected)
                .map(|_| {
                    let flag = r.byte()?;
                    let source = Source::from_code(flag & 3).ok_or(Corrupt("source"))?;
                    let suppression = match (flag >> 2) & 3 {
                        0 => Suppression::Shown,
                        1 => Suppression::Primary,
                        2 => Suppression::Secondary,
                        _ => return Err(Corrupt("suppression")),
                    };
                    let value = if flag & 16 != 0 {
                        let z = r.varint()?;
                        Some(((z >> 1) as i64) ^ -((z & 1) as i64))
                    } else {
                        None
                    };
                    Ok(Cell {
                        value,
                        source,
                        suppression,
                    })
                })
                .collect()
        };
        let mut daily = Vec::new();
        for _ in DailySeries::ALL {
            daily.push(DailyTable {
                days,
                cells: read_cells(AREAS * days)?,
            });
        }
        let mut weekly = Vec::new();
        for s in WeeklySeries::ALL {
            weekly.push(WeeklyTable {
                weeks,
                columns: s.columns(),
                cells: read_cells(weeks * AREAS * s.columns())?,
            });
        }
        let mut difference = Vec::new();
        for _ in DifferenceSeries::ALL {
            difference.push(DailyTable {
                days,
                cells: read_cells(AREAS * days)?,
            });
        }
        if r.at != bytes.len() {
            return Err(Corrupt("trailing bytes"));
        }
        Ok(Publication {
            as_of,
            rules_version,
            indicators: Indicators {
                daily,
                weekly,
                difference,
            },
        })
    }
}

/// The SHA-256 of canonical bytes, in hex.
pub fn content_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Corrupt> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or(Corrupt("truncated"))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, Corrupt> {
        Ok(self.take(1)?[0])
    }

    fn varint(&mut self) -> Result<u64, Corrupt> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Corrupt("varint"))
    }

    fn string(&mut self) -> Result<String, Corrupt> {
        let n = self.varint()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| Corrupt("text"))
    }
}

/// One cell that differs between two publications.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Revision {
    /// The series code, e.g. `newly_confirmed_cases_daily` or `newly_confirmed_cases_detail_weekly`.
    pub series: &'static str,
    /// `ALL` or the prefecture code.
    pub area: String,
    /// The day, or the week's first day.
    pub date: NaiveDate,
    /// The column of a weekly table (`Male 20s`, `hospital`...), empty for daily series.
    pub column: String,
    /// The values as published (`*` when suppressed, empty when not published).
    pub before: String,
    pub after: String,
}

/// The public cells that differ between `old` and `new` over the days and weeks both cover, as
/// each was published (a suppressed cell shows `*`).
pub fn compare(old: &Publication, new: &Publication) -> Vec<Revision> {
    let area_name = |a: usize| if a == 0 { "ALL".to_owned() } else { format!("{a:02}") };
    let mut out = Vec::new();
    let (oc, nc) = (old.calendar(), new.calendar());
    for s in DailySeries::ALL {
        let (a, b) = (old.daily(s), new.daily(s));
        for area in 0..AREAS {
            for d in 0..oc.days().min(nc.days()) {
                let (x, y) = (
                    crate::opendata::render_daily(s, a.get(area, d)),
                    crate::opendata::render_daily(s, b.get(area, d)),
                );
                if x != y {
                    out.push(Revision {
                        series: crate::opendata::daily_series_code(s),
                        area: area_name(area),
                        date: oc.day(d),
                        column: String::new(),
                        before: x,
                        after: y,
                    });
                }
            }
        }
    }
    for s in WeeklySeries::ALL {
        let (a, b) = (old.weekly(s), new.weekly(s));
        for w in 0..oc.weeks().min(nc.weeks()) {
            for area in 0..AREAS {
                for c in 0..s.columns() {
                    let (x, y) = (a.get(w, area, c).render(), b.get(w, area, c).render());
                    if x != y {
                        out.push(Revision {
                            series: crate::opendata::weekly_series_code(s),
                            area: area_name(area),
                            date: oc.week_start(w),
                            column: crate::opendata::weekly_column_label(s, c),
                            before: x,
                            after: y,
                        });
                    }
                }
            }
        }
    }
    out
}
