//! The shape of what is published: the calendar (days and Sunday–Saturday weeks), the 48 areas,
//! the sex/age columns, the series of each indicator, and the cell (value, source, suppression).

use chrono::{Datelike, Days, NaiveDate};

/// The first day of the national series (the first positive in Japan, 2020-01-16).
pub fn first_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2020, 1, 16).expect("valid date")
}

/// The first week of the weekly sex/age tables: the week (Sunday to Saturday) in which the
/// registry (HER-SYS) opened, 2020-05-10 to 2020-05-16.
pub fn first_week() -> NaiveDate {
    NaiveDate::from_ymd_opt(2020, 5, 10).expect("valid date")
}

/// The 2022-09-26 regime (全数届出の見直し): from that day the daily new positives are the sum of
/// the institutions' total-count reports.
pub fn total_count_regime_from() -> NaiveDate {
    NaiveDate::from_ymd_opt(2022, 9, 26).expect("valid date")
}

/// The days and weeks a publication covers: every day from [`first_day`] to `as_of`, and every
/// complete week (Sunday to Saturday) from [`first_week`] that ends on or before `as_of`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calendar {
    pub as_of: NaiveDate,
}

impl Calendar {
    pub fn new(as_of: NaiveDate) -> Calendar {
        Calendar { as_of }
    }

    pub fn days(&self) -> usize {
        usize::try_from((self.as_of - first_day()).num_days() + 1).unwrap_or(0)
    }

    pub fn day(&self, i: usize) -> NaiveDate {
        first_day() + Days::new(i as u64)
    }

    /// The index of a day, `None` before the first day or after `as_of`.
    pub fn day_index(&self, d: NaiveDate) -> Option<usize> {
        (d >= first_day() && d <= self.as_of).then(|| (d - first_day()).num_days() as usize)
    }

    pub fn weeks(&self) -> usize {
        let last_saturday = self.as_of - Days::new(u64::from((self.as_of.weekday().num_days_from_sunday() + 1) % 7));
        if last_saturday < first_week() {
            return 0;
        }
        ((last_saturday - first_week()).num_days() / 7 + 1) as usize
    }

    /// The Sunday that starts week `i`.
    pub fn week_start(&self, i: usize) -> NaiveDate {
        first_week() + Days::new(7 * i as u64)
    }

    /// The Saturday that ends week `i`.
    pub fn week_end(&self, i: usize) -> NaiveDate {
        self.week_start(i) + Days::new(6)
    }

    /// The week of a day: `None` before the first week; weeks past the last complete one are
    /// returned too (callers drop them).
    pub fn week_index(&self, d: NaiveDate) -> Option<usize> {
        (d >= first_week()).then(|| ((d - first_week()).num_days() / 7) as usize)
    }
}

/// Number of areas: ALL (index 0) and the 47 prefectures (index = prefecture number).
pub const AREAS: usize = 48;

/// Number of sex/age columns: male then female, each in the ten public age bands.
pub const COLUMNS: usize = 20;

/// The column of a sex (index in `Sex::ALL`) and age band (0..=9), if the public tables show it.
pub fn column(sex: i16, age_band: i16) -> Option<usize> {
    ((0..=1).contains(&sex) && (0..=9).contains(&age_band)).then(|| (sex * 10 + age_band) as usize)
}

/// The English header of a column: `Male Under 10` ... `Female Over 90`.
pub fn column_label(c: usize) -> String {
    let sex = if c < 10 { "Male" } else { "Female" };
    format!("{sex} {}", todoke_domain::notification::AgeBand::LABELS_EN[c % 10])
}

/// Where a published value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Not published (before the switch, with no municipal figure).
    None,
    /// The registry's live counters.
    Registry,
    /// Municipal-published figures (自治体公表).
    Municipal,
    /// An ALL cell summed from prefectures of both sources.
    Mixed,
}

impl Source {
    pub fn code(self) -> u8 {
        match self {
            Source::None => 0,
            Source::Registry => 1,
            Source::Municipal => 2,
            Source::Mixed => 3,
        }
    }

    pub fn from_code(c: u8) -> Option<Source> {
        Some(match c {
            0 => Source::None,
            1 => Source::Registry,
            2 => Source::Municipal,
            3 => Source::Mixed,
            _ => return None,
        })
    }

    /// The source of a sum of cells.
    pub fn combine(self, other: Source) -> Source {
        match (self, other) {
            (Source::None, s) | (s, Source::None) => s,
            (a, b) if a == b => a,
            _ => Source::Mixed,
        }
    }
}

/// Why a cell is shown as `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Suppression {
    Shown,
    /// The minimum publication rule: a count of 1 to 4.
    Primary,
    /// Hidden so that a primary cell cannot be derived from what is shown.
    Secondary,
}

impl Suppression {
    pub fn is_hidden(self) -> bool {
        self != Suppression::Shown
    }
}

/// One published cell. The value of a suppressed cell is kept (revisions compare it) but never
/// rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    pub value: Option<i64>,
    pub source: Source,
    pub suppression: Suppression,
}

impl Cell {
    pub const EMPTY: Cell = Cell {
        value: None,
        source: Source::None,
        suppression: Suppression::Shown,
    };

    pub fn of(value: i64, source: Source) -> Cell {
        Cell {
            value: Some(value),
            source,
            suppression: Suppression::Shown,
        }
    }

    /// The public rendering: the value, `*` when suppressed, empty when not published.
    pub fn render(&self) -> String {
        match (self.suppression.is_hidden(), self.value) {
            (true, _) => "*".to_owned(),
            (false, Some(v)) => v.to_string(),
            (false, None) => String::new(),
        }
    }
}

/// The daily series, one value per area and day. The order is the encoding order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DailySeries {
    /// ① 新規陽性者数.
    NewPositives,
    /// ② per 100,000 population, last 7 days, in hundredths.
    Per100kHundredths,
    /// ⑤ 累積陽性者数.
    CumulativePositives,
    /// ⑥ 重症者数 (stock at the end of the day).
    Severe,
    /// ⑧ 累積死亡者数.
    DeathsCumulative,
    /// ⑩ 入院治療等を要する者 (stock).
    RequiringInpatient,
    /// ⑩ 退院又は療養解除となった者 (cumulative).
    Discharged,
    /// ⑩ 確認中 (stock).
    ToBeConfirmed,
}

impl DailySeries {
    pub const ALL: [DailySeries; 8] = [
        DailySeries::NewPositives,
        DailySeries::Per100kHundredths,
        DailySeries::CumulativePositives,
        DailySeries::Severe,
        DailySeries::DeathsCumulative,
        DailySeries::RequiringInpatient,
        DailySeries::Discharged,
        DailySeries::ToBeConfirmed,
    ];

    pub fn index(self) -> usize {
        Self::ALL.iter().position(|s| *s == self).expect("listed")
    }
}

/// The weekly series by sex and age band (20 columns), and clusters by setting (6 columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WeeklySeries {
    /// ③ new positives by sex and age band, per week.
    NewBySexAge,
    /// ④ cumulative positives by sex and age band, at the week's end.
    CumulativeBySexAge,
    /// ⑦ severe cases by sex and age band, stock at the week's last day.
    SevereBySexAge,
    /// ⑨ cumulative deaths by sex and age band, at the week's end.
    DeathsBySexAge,
    /// ⑪ new clusters by setting, per week (by the first case's date).
    Clusters,
}

impl WeeklySeries {
    pub const ALL: [WeeklySeries; 5] = [
        WeeklySeries::NewBySexAge,
        WeeklySeries::CumulativeBySexAge,
        WeeklySeries::SevereBySexAge,
        WeeklySeries::DeathsBySexAge,
        WeeklySeries::Clusters,
    ];

    pub fn index(self) -> usize {
        Self::ALL.iter().position(|s| *s == self).expect("listed")
    }

    pub fn columns(self) -> usize {
        match self {
            WeeklySeries::Clusters => todoke_domain::notification::ClusterSetting::ALL.len(),
            _ => COLUMNS,
        }
    }

    /// Whether the minimum publication rule applies (③④⑦⑨).
    pub fn suppressed(self) -> bool {
        self != WeeklySeries::Clusters
    }
}

/// The internal series of the difference indicator (registry against municipal), per
/// prefecture and day; never published openly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DifferenceSeries {
    RegistryNew,
    MunicipalNew,
    RegistrySevere,
    MunicipalSevere,
    RegistryDeathsCumulative,
    MunicipalDeathsCumulative,
}

impl DifferenceSeries {
    pub const ALL: [DifferenceSeries; 6] = [
        DifferenceSeries::RegistryNew,
        DifferenceSeries::MunicipalNew,
        DifferenceSeries::RegistrySevere,
        DifferenceSeries::MunicipalSevere,
        DifferenceSeries::RegistryDeathsCumulative,
        DifferenceSeries::MunicipalDeathsCumulative,
    ];

    pub fn index(self) -> usize {
        Self::ALL.iter().position(|s| *s == self).expect("listed")
    }
}

/// A table of daily cells: `[area][day]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyTable {
    pub days: usize,
    pub cells: Vec<Cell>,
}

impl DailyTable {
    pub fn new(days: usize) -> DailyTable {
        DailyTable {
            days,
            cells: vec![Cell::EMPTY; AREAS * days],
        }
    }

    pub fn get(&self, area: usize, day: usize) -> &Cell {
        &self.cells[area * self.days + day]
    }

    pub fn get_mut(&mut self, area: usize, day: usize) -> &mut Cell {
        &mut self.cells[area * self.days + day]
    }
}

/// A table of weekly cells: `[week][area][column]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeeklyTable {
    pub weeks: usize,
    pub columns: usize,
    pub cells: Vec<Cell>,
}

impl WeeklyTable {
    pub fn new(weeks: usize, columns: usize) -> WeeklyTable {
        WeeklyTable {
            weeks,
            columns,
            cells: vec![Cell::EMPTY; weeks * AREAS * columns],
        }
    }

    pub fn at(&self, week: usize, area: usize, column: usize) -> usize {
        (week * AREAS + area) * self.columns + column
    }

    pub fn get(&self, week: usize, area: usize, column: usize) -> &Cell {
        &self.cells[self.at(week, area, column)]
    }

    pub fn get_mut(&mut self, week: usize, area: usize, column: usize) -> &mut Cell {
        let i = self.at(week, area, column);
        &mut self.cells[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_final_publication_spans_1209_days_and_complete_weeks() {
        let cal = Calendar::new(NaiveDate::from_ymd_opt(2023, 5, 8).unwrap());
        assert_eq!(cal.days(), 1209);
        assert_eq!(cal.day(1208), cal.as_of);
        // 2023-05-08 is a Monday: the last complete week is 2023-04-30 to 2023-05-06.
        let last = cal.weeks() - 1;
        assert_eq!(cal.week_start(last), NaiveDate::from_ymd_opt(2023, 4, 30).unwrap());
        assert_eq!(cal.week_end(last), NaiveDate::from_ymd_opt(2023, 5, 6).unwrap());
        assert_eq!(cal.week_start(0).weekday(), chrono::Weekday::Sun);
        // A Saturday as of date closes its own week.
        let sat = Calendar::new(NaiveDate::from_ymd_opt(2020, 5, 16).unwrap());
        assert_eq!(sat.weeks(), 1);
        assert_eq!(Calendar::new(NaiveDate::from_ymd_opt(2020, 5, 15).unwrap()).weeks(), 0);
    }

    #[test]
    fn columns_are_male_then_female_by_band() {
        assert_eq!(column(0, 0), Some(0));
        assert_eq!(column(1, 9), Some(19));
        assert_eq!(column(2, 3), None, "unknown sex is in no column");
        assert_eq!(column(0, 10), None, "unknown age is in no column");
        assert_eq!(column_label(0), "Male Under 10");
        assert_eq!(column_label(19), "Female Over 90");
    }
}
