//! The counting rules: what each notification contributes to the live daily counters that the
//! statistics read.
//!
//! A case contributes a set of `(counter, +n)` pairs computed from its facts alone
//! ([`contributions`]). Storage applies, in the transaction of every change, the difference
//! between the case's contributions before and after, so the counters always equal the sum of
//! every case's contributions: exactly what a rebuild from scratch computes. Stocks (in hospital,
//! severe...) are kept as flows (entries and exits per day); the stock at the end of a day is
//! the running sum of entries minus exits.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::codes::PrefectureCode;
use crate::i18n::Message;
use crate::notification::{AgeBand, CaseType, Severity, Sex, Status};

/// What a counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Measure {
    /// A positive notification, on the JST day it was filed (①).
    NewPositive,
    /// A death, on the day it took effect (⑧).
    Death,
    /// A case entering a status that day.
    StatusIn(Status),
    /// A case leaving a status that day.
    StatusOut(Status),
    /// A case becoming severe that day (⑥).
    SevereIn,
    /// A case ceasing to be severe that day.
    SevereOut,
    /// Positives counted in the institutions' daily total-count reports (全数届出), on the
    /// report's date; from 2022-09-26 the daily new positives are their sum.
    ReportedPositives,
}

impl Measure {
    /// The stored code: stable numbers, never reused.
    pub fn code(self) -> i16 {
        let status_index = |s: Status| Status::ALL.iter().position(|x| *x == s).expect("listed") as i16;
        match self {
            Measure::NewPositive => 1,
            Measure::Death => 2,
            Measure::StatusIn(s) => 10 + status_index(s),
            Measure::StatusOut(s) => 30 + status_index(s),
            Measure::SevereIn => 50,
            Measure::SevereOut => 51,
            Measure::ReportedPositives => 60,
        }
    }

    pub fn from_code(code: i16) -> Option<Measure> {
        let status = |i: i16| Status::ALL.get(usize::try_from(i).ok()?).copied();
        Some(match code {
            1 => Measure::NewPositive,
            2 => Measure::Death,
            10..=29 => Measure::StatusIn(status(code - 10)?),
            30..=49 => Measure::StatusOut(status(code - 30)?),
            50 => Measure::SevereIn,
            51 => Measure::SevereOut,
            60 => Measure::ReportedPositives,
            _ => return None,
        })
    }
}

/// One daily counter: a JST day, the prefecture of the receiving health centre, sex, age band,
/// and what is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CounterKey {
    pub day: NaiveDate,
    pub prefecture: PrefectureCode,
    pub sex: Sex,
    pub age_band: AgeBand,
    pub measure: Measure,
}

/// One entry of a case's status history as it stands after corrections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusEntry {
    pub effective: NaiveDate,
    pub status: Status,
    pub severity: Option<Severity>,
}

/// Why a status cannot take effect on `effective`, if it cannot: a status takes effect from the
/// notification's report day up to today (JST). The message names `effective_date`.
pub fn effective_date_problem(effective: NaiveDate, report_day: NaiveDate, today: NaiveDate) -> Option<Message> {
    if effective > today {
        Some(Message::fixed(
            "未来の日付は指定できません",
            "effective_date is in the future",
        ))
    } else if effective < report_day {
        Some(Message::new(
            format!("効力発生日 {effective} は届出日 {report_day} より前です"),
            format!("effective_date {effective} is before the report day {report_day}"),
        ))
    } else {
        None
    }
}

/// A recorded status change; several may share an effective date (a correction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordedStatus {
    pub entry: StatusEntry,
    /// Order of recording, (recorded-at microseconds, record id): later corrects earlier for
    /// the same effective date.
    pub recorded: (i64, i64),
}

/// The timeline after corrections: for each effective date the latest recorded entry, in date
/// order.
pub fn timeline(history: &[RecordedStatus]) -> Vec<StatusEntry> {
    latest_by_day(history.iter().map(|r| (r.entry.effective, r.recorded, r.entry)))
        .into_values()
        .map(|(_, entry)| entry)
        .collect()
}

/// For each of `history`'s entries (its effective date, and its order of recording as in
/// [`RecordedStatus::recorded`]), whether it is the one that stands for its day in the
/// [`timeline`]; the others were corrected.
pub fn standing(history: &[(NaiveDate, (i64, i64))]) -> Vec<bool> {
    let latest = latest_by_day(history.iter().map(|&(day, recorded)| (day, recorded, ())));
    history
        .iter()
        .map(|(day, recorded)| latest.get(day).is_some_and(|(held, ())| held == recorded))
        .collect()
}

/// The rule of corrections: for each day, the item recorded last.
fn latest_by_day<T>(items: impl Iterator<Item = (NaiveDate, (i64, i64), T)>) -> BTreeMap<NaiveDate, ((i64, i64), T)> {
    let mut by_day: BTreeMap<NaiveDate, ((i64, i64), T)> = BTreeMap::new();
    for (day, recorded, item) in items {
        match by_day.get(&day) {
            Some((held, _)) if *held >= recorded => {}
            _ => {
                by_day.insert(day, (recorded, item));
            }
        }
    }
    by_day
}

/// Whether recording `entry` would add nothing to `history`, so that a status file imported
/// twice records each change once. Given the instant it was recorded at (microseconds; an
/// export's `recorded_at`), the same entry recorded at that instant is already there; given
/// none, the entry standing for its effective date already says the same.
pub fn restates(history: &[RecordedStatus], entry: &StatusEntry, recorded_micros: Option<i64>) -> bool {
    match recorded_micros {
        Some(at) => history.iter().any(|r| r.entry == *entry && r.recorded.0 == at),
        None => timeline(history).contains(entry),
    }
}

/// What counting needs to know about a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseFacts {
    pub case_type: CaseType,
    pub report_day: NaiveDate,
    pub prefecture: PrefectureCode,
    pub sex: Sex,
    pub age_band: AgeBand,
    pub death_date: Option<NaiveDate>,
    /// Withdrawn (取り下げ) notifications never count.
    pub withdrawn: bool,
    /// A duplicate merged into another notification never counts.
    pub merged: bool,
    pub history: Vec<RecordedStatus>,
}

/// Everything one case adds to the counters. Only positive notifications that are neither
/// withdrawn nor merged count, from the moment they are filed (confirmation is not required).
pub fn contributions(case: &CaseFacts) -> Vec<(CounterKey, i64)> {
    if !case.case_type.is_positive() || case.withdrawn || case.merged {
        return Vec::new();
    }
    let key = |day: NaiveDate, measure: Measure| CounterKey {
        day,
        prefecture: case.prefecture,
        sex: case.sex,
        age_band: case.age_band,
        measure,
    };
    let mut out = vec![(key(case.report_day, Measure::NewPositive), 1)];
    let entries = timeline(&case.history);
    let mut died = false;
    for (i, e) in entries.iter().enumerate() {
        let next = entries.get(i + 1);
        out.push((key(e.effective, Measure::StatusIn(e.status)), 1));
        if let Some(n) = next {
            out.push((key(n.effective, Measure::StatusOut(e.status)), 1));
        }
        let severe = e.severity == Some(Severity::Severe);
        let was_severe = i > 0 && entries[i - 1].severity == Some(Severity::Severe);
        if severe && !was_severe {
            out.push((key(e.effective, Measure::SevereIn), 1));
        }
        if severe && let Some(n) = next.filter(|n| n.severity != Some(Severity::Severe)) {
            out.push((key(n.effective, Measure::SevereOut), 1));
        }
        if e.status == Status::Dead && !died {
            died = true;
            out.push((key(e.effective, Measure::Death), 1));
        }
    }
    if !died && case.case_type == CaseType::DeadConfirmed {
        out.push((key(case.death_date.unwrap_or(case.report_day), Measure::Death), 1));
    }
    out
}

/// What one line of a daily total-count report adds to the counters: its count, on its date,
/// under the public age band of its report band; sex is not reported.
pub fn total_report_contribution(
    date: NaiveDate,
    prefecture: PrefectureCode,
    band: crate::notification::TotalsAgeBand,
    count: i64,
) -> (CounterKey, i64) {
    let key = CounterKey {
        day: date,
        prefecture,
        sex: Sex::Unknown,
        age_band: band.public_band(),
        measure: Measure::ReportedPositives,
    };
    (key, count)
}

/// The flows the published daily indicators read per prefecture and day (docs/indicators.md),
/// in the order of [`AreaFlows`]: new positives, total-count positives, deaths, severe net,
/// requiring care net, released net, to-be-confirmed net (net = entries minus exits).
pub type AreaFlows = [i64; 7];

/// The flows the weekly sex/age tables read: new positives, deaths, severe net.
pub type SexAgeFlows = [i64; 3];

impl Measure {
    /// What a counter of this measure adds to [`AreaFlows`]: `(index, sign)` pairs.
    pub fn area_flows(self) -> &'static [(usize, i64)] {
        let requiring = |s: Status| {
            matches!(
                s,
                Status::Hospitalized | Status::Hotel | Status::Home | Status::Facility | Status::Adjusting
            )
        };
        match self {
            Measure::NewPositive => &[(0, 1)],
            Measure::ReportedPositives => &[(1, 1)],
            Measure::Death => &[(2, 1)],
            Measure::SevereIn => &[(3, 1)],
            Measure::SevereOut => &[(3, -1)],
            Measure::StatusIn(s) if requiring(s) => &[(4, 1)],
            Measure::StatusOut(s) if requiring(s) => &[(4, -1)],
            Measure::StatusIn(Status::Released) => &[(5, 1)],
            Measure::StatusOut(Status::Released) => &[(5, -1)],
            Measure::StatusIn(Status::Unknown) => &[(6, 1)],
            Measure::StatusOut(Status::Unknown) => &[(6, -1)],
            Measure::StatusIn(_) | Measure::StatusOut(_) => &[],
        }
    }

    /// What a counter of this measure adds to [`SexAgeFlows`].
    pub fn sex_age_flow(self) -> Option<(usize, i64)> {
        match self {
            Measure::NewPositive => Some((0, 1)),
            Measure::Death => Some((1, 1)),
            Measure::SevereIn => Some((2, 1)),
            Measure::SevereOut => Some((2, -1)),
            _ => None,
        }
    }
}

/// The Sunday that starts the week (Sunday to Saturday) of `day`.
pub fn week_start(day: NaiveDate) -> NaiveDate {
    day - chrono::Days::new(u64::from(chrono::Datelike::weekday(&day).num_days_from_sunday()))
}

/// The rollups of counter changes that storage keeps beside the counters, so that a publication
/// reads one row per prefecture and day and one per prefecture, week, sex and age band.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rollups {
    pub area: BTreeMap<(NaiveDate, PrefectureCode), AreaFlows>,
    pub sex_age: BTreeMap<(NaiveDate, PrefectureCode, Sex, AgeBand), SexAgeFlows>,
}

/// Rolls counter changes up; entries whose flows are all zero are left out.
pub fn rollups<'a>(delta: impl IntoIterator<Item = &'a (CounterKey, i64)>) -> Rollups {
    let mut r = Rollups::default();
    for (k, n) in delta {
        for (i, sign) in k.measure.area_flows() {
            r.area.entry((k.day, k.prefecture)).or_default()[*i] += sign * n;
        }
        if let Some((i, sign)) = k.measure.sex_age_flow() {
            r.sex_age
                .entry((week_start(k.day), k.prefecture, k.sex, k.age_band))
                .or_default()[i] += sign * n;
        }
    }
    r.area.retain(|_, v| v.iter().any(|x| *x != 0));
    r.sex_age.retain(|_, v| v.iter().any(|x| *x != 0));
    r
}

/// The change to the counters when a case goes from `before` to `after` (either may be absent),
/// with zero entries removed.
pub fn difference(before: Option<&CaseFacts>, after: Option<&CaseFacts>) -> Vec<(CounterKey, i64)> {
    let mut delta: BTreeMap<CounterKey, i64> = BTreeMap::new();
    for (k, n) in before.map(contributions).unwrap_or_default() {
        *delta.entry(k).or_default() -= n;
    }
    for (k, n) in after.map(contributions).unwrap_or_default() {
        *delta.entry(k).or_default() += n;
    }
    delta.into_iter().filter(|(_, n)| *n != 0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2021, 5, day).unwrap()
    }

    fn case(history: Vec<(u32, Status, Option<Severity>, i64)>) -> CaseFacts {
        let history = history
            .into_iter()
            .map(|(day, s, sev, n)| (day, s, sev, (n, n)))
            .collect::<Vec<_>>();
        CaseFacts {
            case_type: CaseType::Confirmed,
            report_day: d(1),
            prefecture: PrefectureCode::parse("13").unwrap(),
            sex: Sex::Female,
            age_band: AgeBand::of_age(72),
            death_date: None,
            withdrawn: false,
            merged: false,
            history: history
                .into_iter()
                .map(|(day, status, severity, recorded)| RecordedStatus {
                    entry: StatusEntry {
                        effective: d(day),
                        status,
                        severity,
                    },
                    recorded,
                })
                .collect(),
        }
    }

    fn measures(c: &CaseFacts) -> Vec<(u32, Measure)> {
        let mut v: Vec<(u32, Measure)> = contributions(c)
            .into_iter()
            .map(|(k, _)| (chrono::Datelike::day(&k.day), k.measure))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn rollups_sum_flows_by_area_day_and_by_sex_age_week() {
        let key = |day: u32, measure| CounterKey {
            day: d(day),
            prefecture: PrefectureCode::parse("13").unwrap(),
            sex: Sex::Female,
            age_band: AgeBand::of_age(72),
            measure,
        };
        let delta = vec![
            (key(3, Measure::NewPositive), 2),
            (key(3, Measure::StatusIn(Status::Home)), 2),
            (key(3, Measure::StatusIn(Status::Dead)), 1),
            (key(4, Measure::StatusOut(Status::Home)), 1),
            (key(4, Measure::StatusIn(Status::Released)), 1),
            (key(4, Measure::SevereIn), 1),
            (key(5, Measure::SevereOut), 1),
        ];
        let r = rollups(&delta);
        let tokyo = PrefectureCode::parse("13").unwrap();
        assert_eq!(
            r.area[&(d(3), tokyo)],
            [2, 0, 0, 0, 2, 0, 0],
            "dead is neither care nor released"
        );
        assert_eq!(r.area[&(d(4), tokyo)], [0, 0, 0, 1, -1, 1, 0]);
        // 2021-05-02 is a Sunday: the 3rd to the 5th fall in its week; severe in and out cancel.
        assert_eq!(week_start(d(5)), d(2));
        assert_eq!(week_start(d(2)), d(2));
        assert_eq!(r.sex_age[&(d(2), tokyo, Sex::Female, AgeBand::of_age(72))], [2, 0, 0]);
    }

    #[test]
    fn a_positive_counts_once_on_its_report_day() {
        assert_eq!(measures(&case(vec![])), [(1, Measure::NewPositive)]);
        let mut suspected = case(vec![]);
        suspected.case_type = CaseType::Suspected;
        assert!(
            contributions(&suspected).is_empty(),
            "suspected cases are not positives"
        );
        let mut withdrawn = case(vec![]);
        withdrawn.withdrawn = true;
        assert!(contributions(&withdrawn).is_empty());
        let mut merged = case(vec![]);
        merged.merged = true;
        assert!(contributions(&merged).is_empty());
    }

    #[test]
    fn a_status_history_becomes_entries_and_exits() {
        let c = case(vec![
            (1, Status::Home, Some(Severity::Mild), 1),
            (3, Status::Hospitalized, Some(Severity::Severe), 2),
            (8, Status::Hospitalized, Some(Severity::Moderate1), 3),
            (12, Status::Released, None, 4),
        ]);
        use Measure::*;
        assert_eq!(
            measures(&c),
            [
                (1, NewPositive),
                (1, StatusIn(Status::Home)),
                (3, StatusIn(Status::Hospitalized)),
                (3, StatusOut(Status::Home)),
                (3, SevereIn),
                (8, StatusIn(Status::Hospitalized)),
                (8, StatusOut(Status::Hospitalized)),
                (8, SevereOut),
                (12, StatusIn(Status::Released)),
                (12, StatusOut(Status::Hospitalized)),
            ]
        );
    }

    #[test]
    fn a_correction_replaces_the_entry_of_its_day() {
        let c = case(vec![
            (2, Status::Home, None, 1),
            (2, Status::Hotel, None, 5),
            (4, Status::Dead, None, 2),
        ]);
        let t = timeline(&c.history);
        assert_eq!(
            t.iter().map(|e| e.status).collect::<Vec<_>>(),
            [Status::Hotel, Status::Dead]
        );
        assert!(measures(&c).contains(&(4, Measure::Death)));
        assert!(
            !measures(&c).contains(&(2, Measure::StatusIn(Status::Home))),
            "the corrected entry is gone"
        );
    }

    #[test]
    fn a_body_counts_as_a_death_on_its_death_date() {
        let mut body = case(vec![]);
        body.case_type = CaseType::DeadConfirmed;
        body.death_date = Some(d(1));
        assert!(measures(&body).contains(&(1, Measure::Death)));
    }

    #[test]
    fn the_difference_of_a_withdrawal_takes_everything_back() {
        let before = case(vec![(1, Status::Home, None, 1)]);
        let mut after = before.clone();
        after.withdrawn = true;
        let delta = difference(Some(&before), Some(&after));
        assert_eq!(delta.len(), 2);
        assert!(delta.iter().all(|(_, n)| *n == -1));
        assert!(difference(Some(&before), Some(&before)).is_empty());
    }

    #[test]
    fn measure_codes_round_trip_and_never_collide() {
        let mut all = vec![
            Measure::NewPositive,
            Measure::Death,
            Measure::SevereIn,
            Measure::SevereOut,
            Measure::ReportedPositives,
        ];
        for s in Status::ALL {
            all.push(Measure::StatusIn(*s));
            all.push(Measure::StatusOut(*s));
        }
        let mut codes: Vec<i16> = all.iter().map(|m| m.code()).collect();
        for m in &all {
            assert_eq!(Measure::from_code(m.code()), Some(*m));
        }
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }

    #[test]
    fn a_status_row_imported_again_restates_what_is_recorded() {
        // Day 2 at home (recorded at 10), corrected to hospital (recorded at 20).
        let c = case(vec![(2, Status::Home, None, 10), (2, Status::Hospitalized, None, 20)]);
        let home = c.history[0].entry;
        let hospital = c.history[1].entry;
        // With its instant: the same row again is already there, even the corrected one.
        assert!(restates(&c.history, &home, Some(10)));
        assert!(restates(&c.history, &hospital, Some(20)));
        assert!(
            !restates(&c.history, &home, Some(30)),
            "a later recording corrects again"
        );
        let severe = StatusEntry {
            severity: Some(Severity::Severe),
            ..hospital
        };
        assert!(
            !restates(&c.history, &severe, Some(20)),
            "same instant, another severity"
        );
        // Without one: only what stands for the day now.
        assert!(restates(&c.history, &hospital, None));
        assert!(
            !restates(&c.history, &home, None),
            "home was corrected; saying it again corrects back"
        );
        let day3 = StatusEntry {
            effective: d(3),
            ..hospital
        };
        assert!(!restates(&c.history, &day3, None));
    }

    #[test]
    fn a_status_takes_effect_from_the_report_day_to_today() {
        assert_eq!(effective_date_problem(d(1), d(1), d(9)), None);
        assert_eq!(effective_date_problem(d(9), d(1), d(9)), None);
        let early = effective_date_problem(d(1), d(2), d(9)).expect("refused");
        assert_eq!(
            early.en,
            "effective_date 2021-05-01 is before the report day 2021-05-02"
        );
        assert_eq!(early.ja, "効力発生日 2021-05-01 は届出日 2021-05-02 より前です");
        let late = effective_date_problem(d(10), d(1), d(9)).expect("refused");
        assert_eq!(late.en, "effective_date is in the future");
    }
}
