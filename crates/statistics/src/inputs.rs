//! What a publication is computed from, held in memory as small dense arrays: the rollups of
//! the live counters (daily flows per prefecture, weekly flows per prefecture and sex/age column),
//! the municipal-published figures, cluster counts, populations and the source switch table.
//! Loading reads the counters once; nothing here reads notifications.

use chrono::NaiveDate;
use todoke_domain::codes::PrefectureCode;
use todoke_domain::counting::{AreaFlows, CounterKey, SexAgeFlows, rollups};
use todoke_domain::notification::ClusterSetting;
use todoke_domain::notification::Sex;
use todoke_storage::Db;
use todoke_storage::bulk::MunicipalFigures;
use todoke_storage::publications::ClusterCount;

use crate::model::{COLUMNS, Calendar, column};
use crate::switch::Switches;

/// Daily flows kept per prefecture, in the order of `AreaFlows`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DailyFlow {
    NewPositive,
    ReportedPositives,
    Death,
    /// Severe entries minus exits.
    SevereNet,
    /// Entries minus exits of the statuses that require care (入院治療等を要する者): in hospital,
    /// hotel, home, care facility, being arranged.
    RequiringNet,
    /// Entries minus exits of 療養解除.
    ReleasedNet,
    /// Entries minus exits of an unknown status (確認中).
    ToBeConfirmedNet,
}

const DAILY_FLOWS: usize = 7;
const _: () = assert!(DAILY_FLOWS == std::mem::size_of::<AreaFlows>() / 8);

/// Weekly flows kept per prefecture and sex/age column, in the order of `SexAgeFlows`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeeklyFlow {
    NewPositive,
    Death,
    SevereNet,
}

const WEEKLY_FLOWS: usize = 3;
const _: () = assert!(WEEKLY_FLOWS == std::mem::size_of::<SexAgeFlows>() / 8);

/// The municipal fields, in CONTRACT.md order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MunicipalField {
    NewPositives,
    CumulativePositives,
    Severe,
    DeathsCumulative,
    RequiringInpatient,
    DischargedCumulative,
    ToBeConfirmed,
}

/// Everything a publication needs, in memory.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub calendar: Calendar,
    /// `[flow][prefecture 0..47][slot]`, slot 0 = everything before the first day, slot `1 + i`
    /// = day `i`.
    daily: Vec<i64>,
    /// `[flow][prefecture][slot][column]`, slot 0 = before the first week, `1 + i` = week `i`.
    weekly: Vec<i64>,
    /// `[prefecture][day][field]`.
    municipal: Vec<Option<i64>>,
    /// `[prefecture][week][setting]`.
    clusters: Vec<i64>,
    /// 2020 census population per prefecture.
    pub populations: [i64; 47],
    pub switches: Switches,
}

impl Inputs {
    pub fn new(calendar: Calendar, populations: [i64; 47], switches: Switches) -> Inputs {
        let days = calendar.days();
        let weeks = calendar.weeks();
        Inputs {
            calendar,
            daily: vec![0; DAILY_FLOWS * 47 * (days + 1)],
            weekly: vec![0; WEEKLY_FLOWS * 47 * (weeks + 1) * COLUMNS],
            municipal: vec![None; 47 * days * 7],
            clusters: vec![0; 47 * weeks * ClusterSetting::ALL.len()],
            populations,
            switches,
        }
    }

    fn daily_at(&self, flow: usize, pref: usize, slot: usize) -> usize {
        (flow * 47 + pref) * (self.calendar.days() + 1) + slot
    }

    fn weekly_at(&self, flow: usize, pref: usize, slot: usize, col: usize) -> usize {
        ((flow * 47 + pref) * (self.calendar.weeks() + 1) + slot) * COLUMNS + col
    }

    /// Takes in one row of the per-prefecture daily rollup (flows in the order of
    /// `todoke_domain::counting::AreaFlows`, which [`DailyFlow`] follows). Days after `as_of`
    /// are ignored; days before the first day go to the opening balance.
    pub fn add_area_day(&mut self, day: NaiveDate, prefecture: u8, flows: AreaFlows) {
        let pref = usize::from(prefecture).wrapping_sub(1);
        if day > self.calendar.as_of || pref >= 47 {
            return;
        }
        let slot = self.calendar.day_index(day).map_or(0, |i| i + 1);
        for (i, v) in flows.iter().enumerate() {
            let at = self.daily_at(i, pref, slot);
            self.daily[at] += v;
        }
    }

    /// Takes in one row of the weekly sex/age rollup (week starting on Sunday `week_start`;
    /// flows in the order of `SexAgeFlows`, which [`WeeklyFlow`] follows). Cells outside the
    /// public columns and weeks after the last complete one are ignored; weeks before the first
    /// go to the opening balance.
    pub fn add_sex_age_week(
        &mut self,
        week_start: NaiveDate,
        prefecture: u8,
        sex: i16,
        age_band: i16,
        flows: SexAgeFlows,
    ) {
        let pref = usize::from(prefecture).wrapping_sub(1);
        let Some(col) = column(sex, age_band) else { return };
        if pref >= 47 {
            return;
        }
        let slot = self.calendar.week_index(week_start).map_or(0, |i| i + 1);
        if slot > self.calendar.weeks() {
            return;
        }
        for (i, v) in flows.iter().enumerate() {
            let at = self.weekly_at(i, pref, slot, col);
            self.weekly[at] += v;
        }
    }

    /// Folds counter changes in through the same rollup storage keeps (for tests and tools
    /// that hold counters in memory).
    pub fn add_counters<'a>(&mut self, counters: impl IntoIterator<Item = &'a (CounterKey, i64)>) {
        let r = rollups(counters);
        for ((day, pref), flows) in r.area {
            self.add_area_day(day, pref.number(), flows);
        }
        for ((week, pref, sex, band), flows) in r.sex_age {
            let sex = Sex::ALL.iter().position(|s| *s == sex).expect("listed") as i16;
            self.add_sex_age_week(week, pref.number(), sex, i16::from(band.index()), flows);
        }
    }

    /// Takes in one day of a prefecture's municipal-published figures.
    pub fn add_municipal(&mut self, m: &MunicipalFigures) {
        let (Some(day), Ok(pref)) = (
            self.calendar.day_index(m.report_date),
            PrefectureCode::parse(&m.prefecture_code),
        ) else {
            return;
        };
        let base = ((usize::from(pref.number()) - 1) * self.calendar.days() + day) * 7;
        let fields = [
            m.new_positives,
            m.cumulative_positives,
            m.severe,
            m.deaths_cumulative,
            m.requiring_inpatient,
            m.discharged_cumulative,
            m.to_be_confirmed,
        ];
        self.municipal[base..base + 7].copy_from_slice(&fields);
    }

    /// Takes in a count of new clusters.
    pub fn add_clusters(&mut self, c: &ClusterCount) {
        let (Ok(pref), Ok(setting), Some(week)) = (
            PrefectureCode::parse(&c.prefecture_code),
            ClusterSetting::parse(&c.setting),
            self.calendar.week_index(c.first_case_date),
        ) else {
            return;
        };
        if week >= self.calendar.weeks() {
            return;
        }
        let s = ClusterSetting::ALL.iter().position(|x| *x == setting).expect("listed");
        let i = ((usize::from(pref.number()) - 1) * self.calendar.weeks() + week) * ClusterSetting::ALL.len() + s;
        self.clusters[i] += c.count;
    }

    /// A daily flow of prefecture `pref` (0-based) on day `day`.
    pub fn daily(&self, flow: DailyFlow, pref: usize, day: usize) -> i64 {
        self.daily[self.daily_at(flow as usize, pref, day + 1)]
    }

    /// The sum of a daily flow before the first day.
    pub fn daily_opening(&self, flow: DailyFlow, pref: usize) -> i64 {
        self.daily[self.daily_at(flow as usize, pref, 0)]
    }

    pub fn weekly(&self, flow: WeeklyFlow, pref: usize, week: usize, col: usize) -> i64 {
        self.weekly[self.weekly_at(flow as usize, pref, week + 1, col)]
    }

    pub fn weekly_opening(&self, flow: WeeklyFlow, pref: usize, col: usize) -> i64 {
        self.weekly[self.weekly_at(flow as usize, pref, 0, col)]
    }

    pub fn municipal(&self, field: MunicipalField, pref: usize, day: usize) -> Option<i64> {
        self.municipal[(pref * self.calendar.days() + day) * 7 + field as usize]
    }

    pub fn clusters(&self, pref: usize, week: usize, setting: usize) -> i64 {
        self.clusters[(pref * self.calendar.weeks() + week) * ClusterSetting::ALL.len() + setting]
    }

    /// Loads everything a publication as of `as_of` needs from the database.
    pub async fn load(db: &Db, as_of: NaiveDate) -> todoke_storage::Result<Inputs> {
        let mut populations = [0i64; 47];
        for p in db.prefectures().await? {
            if let Ok(code) = PrefectureCode::parse(&p.code) {
                populations[usize::from(code.number()) - 1] = p.population_2020;
            }
        }
        let switches = Switches::from_rows(&db.source_switches().await?);
        let mut inputs = Inputs::new(Calendar::new(as_of), populations, switches);
        // The four reads are independent: run them side by side on the reader connections.
        let (area, weekly, municipal, clusters) = tokio::join!(
            db.area_days(as_of),
            db.sex_age_weeks(as_of, true),
            db.municipal_figures_through(as_of),
            db.cluster_counts(as_of),
        );
        for (day, pref, flows) in area? {
            inputs.add_area_day(day, pref, flows);
        }
        for (week, pref, sex, band, flows) in weekly? {
            inputs.add_sex_age_week(week, pref, sex, band, flows);
        }
        for m in municipal? {
            inputs.add_municipal(&m);
        }
        for c in clusters? {
            inputs.add_clusters(&c);
        }
        Ok(inputs)
    }
}
