//! What a publication is computed from, held in memory as small dense arrays: the live counters
//! folded into daily flows per prefecture and weekly flows per prefecture and sex/age column,
//! the municipal-published figures, cluster counts, populations and the source switch table.
//! Loading reads the counters once; nothing here reads notifications.

use chrono::NaiveDate;
use todoke_domain::codes::PrefectureCode;
use todoke_domain::notification::ClusterSetting;
use todoke_storage::Db;
use todoke_storage::bulk::MunicipalFigures;
use todoke_storage::publications::{ClusterCount, CounterRow};

use crate::model::{COLUMNS, Calendar, column};
use crate::switch::Switches;

/// Daily flows kept per prefecture.
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

/// Weekly flows kept per prefecture and sex/age column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeeklyFlow {
    NewPositive,
    Death,
    SevereNet,
}

const WEEKLY_FLOWS: usize = 3;

/// Which flows a counter feeds, with its sign.
fn daily_flows_of(measure: i16) -> &'static [(DailyFlow, i64)] {
    match measure {
        1 => &[(DailyFlow::NewPositive, 1)],
        60 => &[(DailyFlow::ReportedPositives, 1)],
        2 => &[(DailyFlow::Death, 1)],
        50 => &[(DailyFlow::SevereNet, 1)],
        51 => &[(DailyFlow::SevereNet, -1)],
        // StatusIn / StatusOut, by index in Status::ALL.
        10..=14 => &[(DailyFlow::RequiringNet, 1)],
        30..=34 => &[(DailyFlow::RequiringNet, -1)],
        15 => &[(DailyFlow::ReleasedNet, 1)],
        35 => &[(DailyFlow::ReleasedNet, -1)],
        17 => &[(DailyFlow::ToBeConfirmedNet, 1)],
        37 => &[(DailyFlow::ToBeConfirmedNet, -1)],
        _ => &[],
    }
}

fn weekly_flow_of(measure: i16) -> Option<(WeeklyFlow, i64)> {
    match measure {
        1 => Some((WeeklyFlow::NewPositive, 1)),
        2 => Some((WeeklyFlow::Death, 1)),
        50 => Some((WeeklyFlow::SevereNet, 1)),
        51 => Some((WeeklyFlow::SevereNet, -1)),
        _ => None,
    }
}

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

    fn daily_at(&self, flow: DailyFlow, pref: usize, slot: usize) -> usize {
        ((flow as usize) * 47 + pref) * (self.calendar.days() + 1) + slot
    }

    fn weekly_at(&self, flow: WeeklyFlow, pref: usize, slot: usize, col: usize) -> usize {
        (((flow as usize) * 47 + pref) * (self.calendar.weeks() + 1) + slot) * COLUMNS + col
    }

    /// Folds one counter row in. Days after `as_of` are ignored; days before the first day (or
    /// week) go to the opening slot, which cumulative figures and stocks include.
    pub fn add_counter(&mut self, row: &CounterRow) {
        let pref = usize::from(row.prefecture) - 1;
        if row.day > self.calendar.as_of || pref >= 47 {
            return;
        }
        let slot = self.calendar.day_index(row.day).map_or(0, |i| i + 1);
        for (flow, sign) in daily_flows_of(row.measure) {
            let i = self.daily_at(*flow, pref, slot);
            self.daily[i] += sign * row.count;
        }
        if let (Some((flow, sign)), Some(col)) = (weekly_flow_of(row.measure), column(row.sex, row.age_band)) {
            let slot = self.calendar.week_index(row.day).map_or(0, |i| i + 1);
            // Flows in the incomplete week after the last complete one are not published.
            if slot <= self.calendar.weeks() {
                let i = self.weekly_at(flow, pref, slot, col);
                self.weekly[i] += sign * row.count;
            }
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
        self.daily[self.daily_at(flow, pref, day + 1)]
    }

    /// The sum of a daily flow before the first day.
    pub fn daily_opening(&self, flow: DailyFlow, pref: usize) -> i64 {
        self.daily[self.daily_at(flow, pref, 0)]
    }

    pub fn weekly(&self, flow: WeeklyFlow, pref: usize, week: usize, col: usize) -> i64 {
        self.weekly[self.weekly_at(flow, pref, week + 1, col)]
    }

    pub fn weekly_opening(&self, flow: WeeklyFlow, pref: usize, col: usize) -> i64 {
        self.weekly[self.weekly_at(flow, pref, 0, col)]
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
        db.for_each_counter(as_of, |row| inputs.add_counter(&row)).await?;
        for m in db.municipal_figures(None).await? {
            inputs.add_municipal(&m);
        }
        for c in db.cluster_counts(as_of).await? {
            inputs.add_clusters(&c);
        }
        Ok(inputs)
    }
}
