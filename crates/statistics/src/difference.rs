//! The difference indicator (差分指標): per prefecture and day, the registry's count of new
//! positives against the municipal-published count — the gap, the input rate (registry over
//! municipal) and both as 7-day sums — and the gaps of the severe stock and cumulative deaths;
//! plus the list of prefectures whose 7-day gap exceeds a threshold, for follow-up. Read from a
//! publication's internal series, never shown in open data.

use chrono::NaiveDate;

use crate::model::{AREAS, DifferenceSeries};
use crate::publication::Publication;

/// One prefecture (or ALL) on one day.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DifferenceRow {
    pub date: NaiveDate,
    /// `ALL` or the prefecture code.
    pub area: String,
    pub registry: Option<i64>,
    pub municipal: Option<i64>,
    /// Registry minus municipal.
    pub gap: Option<i64>,
    /// Registry over municipal (1.0 = complete input); absent when municipal is 0 or missing.
    pub input_rate: Option<f64>,
    pub registry_7d: Option<i64>,
    pub municipal_7d: Option<i64>,
    pub gap_7d: Option<i64>,
    pub input_rate_7d: Option<f64>,
    /// Registry severe stock minus the municipal-published severe count.
    pub severe_gap: Option<i64>,
    /// Registry cumulative deaths minus the municipal-published cumulative deaths.
    pub deaths_gap: Option<i64>,
}

fn area_code(area: usize) -> String {
    if area == 0 {
        "ALL".to_owned()
    } else {
        format!("{area:02}")
    }
}

fn rate(registry: Option<i64>, municipal: Option<i64>) -> Option<f64> {
    match (registry, municipal) {
        (Some(r), Some(m)) if m > 0 => Some((r as f64 / m as f64 * 10_000.0).round() / 10_000.0),
        _ => None,
    }
}

/// The rows of one area (0 = ALL) between two days, inclusive.
pub fn rows(p: &Publication, area: usize, from: NaiveDate, to: NaiveDate) -> Vec<DifferenceRow> {
    let cal = p.calendar();
    let v = |s: DifferenceSeries, d: usize| p.difference(s).get(area, d).value;
    let sum7 = |s: DifferenceSeries, d: usize| -> Option<i64> {
        (d.saturating_sub(6)..=d).map(|i| v(s, i)).sum::<Option<i64>>()
    };
    let gap = |a: Option<i64>, b: Option<i64>| Some(a? - b?);
    (0..cal.days())
        .filter(|d| (from..=to).contains(&cal.day(*d)))
        .map(|d| {
            let registry = v(DifferenceSeries::RegistryNew, d);
            let municipal = v(DifferenceSeries::MunicipalNew, d);
            let registry_7d = sum7(DifferenceSeries::RegistryNew, d);
            let municipal_7d = sum7(DifferenceSeries::MunicipalNew, d);
            DifferenceRow {
                date: cal.day(d),
                area: area_code(area),
                registry,
                municipal,
                gap: gap(registry, municipal),
                input_rate: rate(registry, municipal),
                registry_7d,
                municipal_7d,
                gap_7d: gap(registry_7d, municipal_7d),
                input_rate_7d: rate(registry_7d, municipal_7d),
                severe_gap: gap(
                    v(DifferenceSeries::RegistrySevere, d),
                    v(DifferenceSeries::MunicipalSevere, d),
                ),
                deaths_gap: gap(
                    v(DifferenceSeries::RegistryDeathsCumulative, d),
                    v(DifferenceSeries::MunicipalDeathsCumulative, d),
                ),
            }
        })
        .collect()
}

/// The prefectures whose 7-day gap of new positives, relative to the municipal 7-day sum,
/// exceeds `threshold` (0.05 = 5 %) on `day`, largest first.
pub fn follow_up(p: &Publication, day: NaiveDate, threshold: f64) -> Vec<DifferenceRow> {
    let mut out: Vec<(f64, DifferenceRow)> = (1..AREAS)
        .filter_map(|area| rows(p, area, day, day).into_iter().next())
        .filter_map(|r| {
            let relative = match (r.gap_7d, r.municipal_7d) {
                (Some(g), Some(m)) if m > 0 => g.unsigned_abs() as f64 / m as f64,
                (Some(g), Some(_)) if g != 0 => f64::INFINITY,
                _ => return None,
            };
            (relative > threshold).then_some((relative, r))
        })
        .collect();
    out.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.area.cmp(&b.1.area)));
    out.into_iter().map(|(_, r)| r).collect()
}
