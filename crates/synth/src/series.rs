//! The real epidemic curve: MHLW's published daily new positives per prefecture, 2020-01-16 to
//! 2023-05-08 (the final open-data file, embedded), and its scaled-down versions.

use chrono::NaiveDate;

use crate::Scale;

/// The MHLW open-data file `newly_confirmed_cases_daily.csv` (BOM removed, ISO dates).
const REAL_CSV: &str = include_str!("../data/mhlw_newly_confirmed_cases_daily.csv");

/// Daily new positives per prefecture (index 0 = code 01 ... 46 = code 47).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub first_day: NaiveDate,
    /// One row per day from `first_day`.
    pub counts: Vec<[u32; 47]>,
}

impl Series {
    /// The published series, exactly as in the file.
    pub fn real() -> Series {
        let mut lines = REAL_CSV.lines();
        let header = lines.next().expect("the embedded file has a header");
        assert_eq!(header.split(',').count(), 49, "Date, ALL and 47 prefectures");
        let mut first_day = None;
        let mut counts = Vec::new();
        for line in lines.filter(|l| !l.trim().is_empty()) {
            let mut cells = line.split(',');
            let day: NaiveDate = cells.next().and_then(|d| d.parse().ok()).expect("ISO dates");
            first_day.get_or_insert(day);
            let all: u32 = cells
                .next()
                .and_then(|v| v.trim().parse().ok())
                .expect("ALL is a number");
            let mut row = [0u32; 47];
            for (slot, cell) in row.iter_mut().zip(cells) {
                *slot = cell.trim().parse().expect("counts are numbers");
            }
            assert_eq!(
                row.iter().sum::<u32>(),
                all,
                "ALL is the sum of the prefectures on {day}"
            );
            counts.push(row);
        }
        Series {
            first_day: first_day.expect("at least one day"),
            counts,
        }
    }

    /// The series at `scale`: each prefecture's cumulative count is scaled and rounded, and the
    /// daily counts are its differences, so every prefecture's total is its real total scaled
    /// and rounded once (rounding never drifts over the 1,209 days).
    pub fn scaled(&self, scale: Scale) -> Series {
        let den = u64::from(scale.denominator());
        if den == 1 {
            return self.clone();
        }
        let mut cumulative = [0u64; 47];
        let mut previous_scaled = [0u64; 47];
        let counts = self
            .counts
            .iter()
            .map(|row| {
                let mut out = [0u32; 47];
                for p in 0..47 {
                    cumulative[p] += u64::from(row[p]);
                    // Round half up: (2c + den) / 2den.
                    let scaled = (2 * cumulative[p] + den) / (2 * den);
                    out[p] = u32::try_from(scaled - previous_scaled[p]).expect("a day's count fits");
                    previous_scaled[p] = scaled;
                }
                out
            })
            .collect();
        Series {
            first_day: self.first_day,
            counts,
        }
    }

    pub fn days(&self) -> usize {
        self.counts.len()
    }

    pub fn day(&self, index: usize) -> NaiveDate {
        self.first_day + chrono::Days::new(index as u64)
    }

    pub fn count(&self, day: usize, prefecture_index: usize) -> u32 {
        self.counts[day][prefecture_index]
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().map(|&n| u64::from(n)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_real_file_is_complete() {
        let s = Series::real();
        assert_eq!(s.days(), 1209);
        assert_eq!(s.first_day.to_string(), "2020-01-16");
        assert_eq!(s.day(1208).to_string(), "2023-05-08");
        assert_eq!(s.total(), 33_738_398);
        let peak = (0..s.days()).max_by_key(|&d| s.counts[d].iter().sum::<u32>()).unwrap();
        assert_eq!(s.day(peak).to_string(), "2022-08-19");
        assert_eq!(s.counts[peak].iter().sum::<u32>(), 261_735);
    }

    #[test]
    fn scaling_keeps_each_prefectures_total_rounded_once() {
        let real = Series::real();
        for scale in [Scale::Small, Scale::Tiny] {
            let den = u64::from(scale.denominator());
            let scaled = real.scaled(scale);
            for p in 0..47 {
                let real_total: u64 = real.counts.iter().map(|r| u64::from(r[p])).sum();
                let scaled_total: u64 = scaled.counts.iter().map(|r| u64::from(r[p])).sum();
                assert_eq!(scaled_total, (2 * real_total + den) / (2 * den), "prefecture index {p}");
            }
        }
        // Tokyo's real total is 4,380,000-odd: about 43,800 at 1/100.
        let tokyo: u64 = real.scaled(Scale::Small).counts.iter().map(|r| u64::from(r[12])).sum();
        assert!((43_000..45_000).contains(&tokyo), "{tokyo}");
    }
}
