//! The counting rules of docs/indicators.md, applied to [`Inputs`]: every series of the 11
//! indicators for ALL and the 47 prefectures, each cell with its source, and the difference
//! indicator's internal series. Suppression comes after (see [`crate::suppress`]).

use crate::inputs::{DailyFlow, Inputs, MunicipalField, WeeklyFlow};
use crate::model::{
    AREAS, COLUMNS, Cell, DailySeries, DailyTable, DifferenceSeries, Source, WeeklySeries, WeeklyTable,
    total_count_regime_from,
};
use crate::switch::SwitchKey;

/// All computed series, before suppression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indicators {
    /// Indexed by [`DailySeries::index`].
    pub daily: Vec<DailyTable>,
    /// Indexed by [`WeeklySeries::index`].
    pub weekly: Vec<WeeklyTable>,
    /// Indexed by [`DifferenceSeries::index`].
    pub difference: Vec<DailyTable>,
}

/// A cumulative series that switches source: after the switch it continues from the last value
/// published before it (however many days back), adding the registry's change since that day, so
/// that the switch adds no jump of its own.
#[derive(Default)]
struct Chain {
    /// The last published value and the registry's cumulative figure on that day.
    last: Option<(i64, i64)>,
}

impl Chain {
    fn next(&mut self, registry_day: bool, registry_now: i64, municipal: Option<i64>) -> Cell {
        let cell = if registry_day {
            let value = match self.last {
                Some((published, registry_then)) => published + (registry_now - registry_then),
                None => registry_now,
            };
            Cell::of(value, Source::Registry)
        } else {
            municipal.map_or(Cell::EMPTY, |v| Cell::of(v, Source::Municipal))
        };
        if let Some(v) = cell.value {
            self.last = Some((v, registry_now));
        }
        cell
    }
}

/// Computes every series.
pub fn compute(inputs: &Inputs) -> Indicators {
    let cal = inputs.calendar;
    let days = cal.days();
    let weeks = cal.weeks();
    let mut daily: Vec<DailyTable> = DailySeries::ALL.iter().map(|_| DailyTable::new(days)).collect();
    let mut difference: Vec<DailyTable> = DifferenceSeries::ALL.iter().map(|_| DailyTable::new(days)).collect();
    let regime = cal.day_index(total_count_regime_from());

    for p in 0..47 {
        let area = p + 1;
        let number = (p + 1) as u8;
        let from = |key: SwitchKey| inputs.switches.registry_from(key, number);
        let registry_day = |key: SwitchKey, d: usize| cal.day(d) >= from(key);
        let mut severe = inputs.daily_opening(DailyFlow::SevereNet, p);
        let mut deaths = inputs.daily_opening(DailyFlow::Death, p);
        let mut requiring = inputs.daily_opening(DailyFlow::RequiringNet, p);
        let mut released = inputs.daily_opening(DailyFlow::ReleasedNet, p);
        let mut confirming = inputs.daily_opening(DailyFlow::ToBeConfirmedNet, p);
        let mut cumulative: Option<i64> = None;
        let mut deaths_chain = Chain::default();
        let mut discharged_chain = Chain::default();
        for d in 0..days {
            let flow = |f: DailyFlow| inputs.daily(f, p, d);
            let municipal = |f: MunicipalField| inputs.municipal(f, p, d);
            let registry_new = if regime.is_some_and(|r| d >= r) {
                flow(DailyFlow::ReportedPositives)
            } else {
                flow(DailyFlow::NewPositive)
            };
            severe += flow(DailyFlow::SevereNet);
            deaths += flow(DailyFlow::Death);
            requiring += flow(DailyFlow::RequiringNet);
            released += flow(DailyFlow::ReleasedNet);
            confirming += flow(DailyFlow::ToBeConfirmedNet);

            // ① and ⑤ (running sum of the published ①).
            let new = if registry_day(SwitchKey::NewPositives, d) {
                Cell::of(registry_new, Source::Registry)
            } else {
                municipal(MunicipalField::NewPositives).map_or(Cell::EMPTY, |v| Cell::of(v, Source::Municipal))
            };
            *daily[DailySeries::NewPositives.index()].get_mut(area, d) = new;
            if let Some(v) = new.value {
                let c = cumulative.unwrap_or(0) + v;
                cumulative = Some(c);
                *daily[DailySeries::CumulativePositives.index()].get_mut(area, d) = Cell::of(c, new.source);
            }

            let stock = |key: SwitchKey, registry: i64, field: MunicipalField| {
                if registry_day(key, d) {
                    Cell::of(registry, Source::Registry)
                } else {
                    municipal(field).map_or(Cell::EMPTY, |v| Cell::of(v, Source::Municipal))
                }
            };
            *daily[DailySeries::Severe.index()].get_mut(area, d) =
                stock(SwitchKey::Severe, severe, MunicipalField::Severe);
            *daily[DailySeries::DeathsCumulative.index()].get_mut(area, d) = deaths_chain.next(
                registry_day(SwitchKey::Deaths, d),
                deaths,
                municipal(MunicipalField::DeathsCumulative),
            );
            *daily[DailySeries::RequiringInpatient.index()].get_mut(area, d) =
                stock(SwitchKey::Inpatient, requiring, MunicipalField::RequiringInpatient);
            *daily[DailySeries::Discharged.index()].get_mut(area, d) = discharged_chain.next(
                registry_day(SwitchKey::Inpatient, d),
                released,
                municipal(MunicipalField::DischargedCumulative),
            );
            *daily[DailySeries::ToBeConfirmed.index()].get_mut(area, d) =
                stock(SwitchKey::Inpatient, confirming, MunicipalField::ToBeConfirmed);

            let reg = |v: i64| Cell::of(v, Source::Registry);
            let mun = |f: MunicipalField| municipal(f).map_or(Cell::EMPTY, |v| Cell::of(v, Source::Municipal));
            *difference[DifferenceSeries::RegistryNew.index()].get_mut(area, d) = reg(registry_new);
            *difference[DifferenceSeries::MunicipalNew.index()].get_mut(area, d) = mun(MunicipalField::NewPositives);
            *difference[DifferenceSeries::RegistrySevere.index()].get_mut(area, d) = reg(severe);
            *difference[DifferenceSeries::MunicipalSevere.index()].get_mut(area, d) = mun(MunicipalField::Severe);
            *difference[DifferenceSeries::RegistryDeathsCumulative.index()].get_mut(area, d) = reg(deaths);
            *difference[DifferenceSeries::MunicipalDeathsCumulative.index()].get_mut(area, d) =
                mun(MunicipalField::DeathsCumulative);
        }
    }

    // ALL: the sum of the prefectures that have a value.
    for table in daily.iter_mut().chain(difference.iter_mut()) {
        for d in 0..days {
            let mut sum: Option<i64> = None;
            let mut source = Source::None;
            for area in 1..AREAS {
                let c = table.get(area, d);
                if let Some(v) = c.value {
                    sum = Some(sum.unwrap_or(0) + v);
                    source = source.combine(c.source);
                }
            }
            *table.get_mut(0, d) = sum.map_or(Cell::EMPTY, |v| Cell::of(v, source));
        }
    }

    // ② from ①: the last 7 days' sum over the population, in hundredths, rounded half up.
    let total_population: i64 = inputs.populations.iter().sum();
    for area in 0..AREAS {
        let population = if area == 0 {
            total_population
        } else {
            inputs.populations[area - 1]
        };
        let new = &daily[DailySeries::NewPositives.index()];
        let mut per100k = Vec::with_capacity(days);
        for d in 0..days {
            let window = d.saturating_sub(6)..=d;
            let cells: Vec<&Cell> = window.map(|i| new.get(area, i)).collect();
            if population <= 0 || cells.iter().any(|c| c.value.is_none()) {
                per100k.push(Cell::EMPTY);
                continue;
            }
            let sum: i64 = cells.iter().filter_map(|c| c.value).sum();
            let source = cells.iter().fold(Source::None, |s, c| s.combine(c.source));
            per100k.push(Cell::of(per_100k_hundredths(sum, population), source));
        }
        let table = &mut daily[DailySeries::Per100kHundredths.index()];
        for (d, c) in per100k.into_iter().enumerate() {
            *table.get_mut(area, d) = c;
        }
    }

    let mut weekly: Vec<WeeklyTable> = WeeklySeries::ALL
        .iter()
        .map(|s| WeeklyTable::new(weeks, s.columns()))
        .collect();
    for p in 0..47 {
        let area = p + 1;
        let number = (p + 1) as u8;
        let from = |key: SwitchKey| inputs.switches.registry_from(key, number);
        for c in 0..COLUMNS {
            let mut cumulative = inputs.weekly_opening(WeeklyFlow::NewPositive, p, c);
            let mut severe = inputs.weekly_opening(WeeklyFlow::SevereNet, p, c);
            let mut deaths = inputs.weekly_opening(WeeklyFlow::Death, p, c);
            for w in 0..weeks {
                let end = cal.week_end(w);
                let new = inputs.weekly(WeeklyFlow::NewPositive, p, w, c);
                cumulative += new;
                severe += inputs.weekly(WeeklyFlow::SevereNet, p, w, c);
                deaths += inputs.weekly(WeeklyFlow::Death, p, w, c);
                let publish = |key: SwitchKey, v: i64| {
                    if end >= from(key) {
                        Cell::of(v, Source::Registry)
                    } else {
                        Cell::EMPTY
                    }
                };
                *weekly[WeeklySeries::NewBySexAge.index()].get_mut(w, area, c) = publish(SwitchKey::NewBySexAge, new);
                *weekly[WeeklySeries::CumulativeBySexAge.index()].get_mut(w, area, c) =
                    publish(SwitchKey::NewBySexAge, cumulative);
                *weekly[WeeklySeries::SevereBySexAge.index()].get_mut(w, area, c) =
                    publish(SwitchKey::SevereBySexAge, severe);
                *weekly[WeeklySeries::DeathsBySexAge.index()].get_mut(w, area, c) =
                    publish(SwitchKey::DeathsBySexAge, deaths);
            }
        }
        for w in 0..weeks {
            for s in 0..WeeklySeries::Clusters.columns() {
                *weekly[WeeklySeries::Clusters.index()].get_mut(w, area, s) =
                    Cell::of(inputs.clusters(p, w, s), Source::Registry);
            }
        }
    }
    // ALL of a weekly table: published only when every prefecture is, so that it is the
    // national figure and not a partial sum.
    for table in &mut weekly {
        for w in 0..weeks {
            for c in 0..table.columns {
                let mut sum = 0i64;
                let mut complete = true;
                for area in 1..AREAS {
                    match table.get(w, area, c).value {
                        Some(v) => sum += v,
                        None => complete = false,
                    }
                }
                *table.get_mut(w, 0, c) = if complete {
                    Cell::of(sum, Source::Registry)
                } else {
                    Cell::EMPTY
                };
            }
        }
    }
    Indicators {
        daily,
        weekly,
        difference,
    }
}

/// `sum / population × 100,000` in hundredths, rounded half up, in integers (no float drift).
pub fn per_100k_hundredths(sum: i64, population: i64) -> i64 {
    let scaled = i128::from(sum) * 10_000_000;
    ((scaled * 2 + i128::from(population)) / (i128::from(population) * 2)) as i64
}

/// Hundredths as a decimal with two places: `1234` → `12.34`.
pub fn render_hundredths(v: i64) -> String {
    let sign = if v < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", v.abs() / 100, v.abs() % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cumulative_series_continues_across_the_switch_and_across_missing_days() {
        let mut chain = Chain::default();
        // Municipal 1,200 on Friday, nothing on the weekend, registry from Monday; the registry
        // counted 950 by Friday, 953 by Sunday and 955 by Monday.
        assert_eq!(chain.next(false, 950, Some(1200)).value, Some(1200));
        assert_eq!(chain.next(false, 951, None).value, None);
        assert_eq!(chain.next(false, 953, None).value, None);
        let monday = chain.next(true, 955, None);
        assert_eq!(
            monday.value,
            Some(1205),
            "1,200 plus the registry's 5 deaths since Friday"
        );
        assert_eq!(monday.source, Source::Registry);
        assert_eq!(
            chain.next(true, 956, Some(9999)).value,
            Some(1206),
            "municipal figures no longer count"
        );
        // Without any earlier figure the registry's own cumulative is published.
        assert_eq!(Chain::default().next(true, 42, None).value, Some(42));
    }

    #[test]
    fn per_100k_rounds_half_up_in_hundredths() {
        // 7 positives in 1,000,000 people: 0.70 per 100,000.
        assert_eq!(per_100k_hundredths(7, 1_000_000), 70);
        // 1 in 3: 33,333.333... → 3333333 hundredths.
        assert_eq!(per_100k_hundredths(1, 3), 3_333_333);
        // 1 in 8,000,000: 0.0125 → 0.01; 1 in 2,000,000: 0.05 exactly.
        assert_eq!(per_100k_hundredths(1, 8_000_000), 1);
        assert_eq!(per_100k_hundredths(1, 2_000_000), 5);
        // 0.005 rounds up to 0.01.
        assert_eq!(per_100k_hundredths(1, 20_000_000), 1);
        assert_eq!(render_hundredths(1234), "12.34");
        assert_eq!(render_hundredths(5), "0.05");
    }
}
