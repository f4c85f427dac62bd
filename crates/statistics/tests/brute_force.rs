//! Every indicator from the aggregate engine (cases → live counters → inputs → series) equals a
//! brute-force count over the raw cases, total-count reports and clusters, on random small
//! datasets; and suppression on those datasets always passes the auditor.

use std::collections::HashMap;

use chrono::{Days, NaiveDate};
use proptest::prelude::*;
use todoke_domain::codes::PrefectureCode;
use todoke_domain::counting::{CaseFacts, RecordedStatus, StatusEntry, contributions, total_report_contribution};
use todoke_domain::notification::{AgeBand, CaseType, ClusterSetting, Severity, Sex, Status, TotalsAgeBand};
use todoke_statistics::compute::{compute, per_100k_hundredths};
use todoke_statistics::inputs::Inputs;
use todoke_statistics::model::{AREAS, COLUMNS, Calendar, DailySeries, WeeklySeries, column, first_day};
use todoke_statistics::switch::{SwitchKey, Switches};
use todoke_storage::publications::ClusterCount;

fn day0() -> NaiveDate {
    NaiveDate::from_ymd_opt(2022, 9, 1).unwrap()
}

fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2022, 10, 20).unwrap()
}

#[derive(Debug, Clone)]
struct Dataset {
    cases: Vec<CaseFacts>,
    /// (day, prefecture number, band, count)
    totals: Vec<(NaiveDate, u8, TotalsAgeBand, i64)>,
    clusters: Vec<(NaiveDate, u8, ClusterSetting)>,
}

fn case_strategy() -> impl Strategy<Value = CaseFacts> {
    let statuses = prop::sample::select(Status::ALL.to_vec());
    let severity = prop::option::of(prop::sample::select(Severity::ALL.to_vec()));
    (
        prop::sample::select(vec![
            CaseType::Confirmed,
            CaseType::Confirmed,
            CaseType::Asymptomatic,
            CaseType::Suspected,
            CaseType::DeadConfirmed,
        ]),
        0u64..50,
        1u8..=3,
        prop::sample::select(Sex::ALL.to_vec()),
        0u8..=10,
        prop::option::of(0u64..50),
        prop::bool::weighted(0.05),
        prop::bool::weighted(0.05),
        prop::collection::vec((0u64..50, statuses, severity, 0i64..5), 0..5),
    )
        .prop_map(
            |(case_type, report, pref, sex, band, death, withdrawn, merged, history)| CaseFacts {
                case_type,
                report_day: day0() + Days::new(report),
                prefecture: PrefectureCode::from_number(pref).unwrap(),
                sex,
                age_band: AgeBand::from_index(band).unwrap(),
                death_date: death.map(|d| day0() + Days::new(d)),
                withdrawn,
                merged,
                history: history
                    .into_iter()
                    .enumerate()
                    .map(|(i, (day, status, severity, rec))| RecordedStatus {
                        entry: StatusEntry {
                            effective: day0() + Days::new(day),
                            status,
                            severity,
                        },
                        recorded: (rec, i as i64),
                    })
                    .collect(),
            },
        )
}

fn dataset() -> impl Strategy<Value = Dataset> {
    (
        prop::collection::vec(case_strategy(), 0..120),
        prop::collection::vec(
            (
                25u64..50,
                1u8..=3,
                prop::sample::select(TotalsAgeBand::ALL.to_vec()),
                0i64..6,
            ),
            0..40,
        ),
        prop::collection::vec(
            (0u64..50, 1u8..=3, prop::sample::select(ClusterSetting::ALL.to_vec())),
            0..10,
        ),
    )
        .prop_map(|(cases, totals, clusters)| Dataset {
            cases,
            totals: totals
                .into_iter()
                .map(|(d, p, b, n)| (day0() + Days::new(d), p, b, n))
                .collect(),
            clusters: clusters
                .into_iter()
                .map(|(d, p, s)| (day0() + Days::new(d), p, s))
                .collect(),
        })
}

/// Registry everywhere from the first day, so every series is the registry's.
fn registry_switches() -> Switches {
    let mut s = Switches::default();
    for key in SwitchKey::ALL {
        for p in 1..=47 {
            s.set(key, p, first_day());
        }
    }
    s
}

fn populations() -> [i64; 47] {
    let mut p = [0i64; 47];
    for (i, v) in p.iter_mut().enumerate() {
        *v = 100_000 + 37_000 * i as i64;
    }
    p
}

/// The engine: the counters storage would hold, folded into inputs.
fn engine_inputs(ds: &Dataset) -> Inputs {
    let mut counters: HashMap<_, i64> = HashMap::new();
    for c in &ds.cases {
        for (k, n) in contributions(c) {
            *counters.entry(k).or_default() += n;
        }
    }
    for (day, p, band, n) in &ds.totals {
        let (k, n) = total_report_contribution(*day, PrefectureCode::from_number(*p).unwrap(), *band, *n);
        *counters.entry(k).or_default() += n;
    }
    let mut inputs = Inputs::new(Calendar::new(as_of()), populations(), registry_switches());
    let counters: Vec<_> = counters.into_iter().filter(|(_, n)| *n != 0).collect();
    inputs.add_counters(&counters);
    let mut clusters: HashMap<(NaiveDate, u8, ClusterSetting), i64> = HashMap::new();
    for c in &ds.clusters {
        *clusters.entry(*c).or_default() += 1;
    }
    for ((d, p, s), n) in clusters {
        inputs.add_clusters(&ClusterCount {
            first_case_date: d,
            prefecture_code: format!("{p:02}"),
            setting: s.as_str().to_owned(),
            count: n,
        });
    }
    inputs
}

// ---- brute force: definitions applied to the raw rows ----

fn counts(c: &CaseFacts) -> bool {
    c.case_type.is_positive() && !c.withdrawn && !c.merged
}

/// The entry in force at the end of `day`: for each effective date the latest recorded entry;
/// the last such date on or before `day`.
fn status_at(c: &CaseFacts, day: NaiveDate) -> Option<StatusEntry> {
    let mut best: Option<&RecordedStatus> = None;
    for r in c.history.iter().filter(|r| r.entry.effective <= day) {
        best = match best {
            None => Some(r),
            Some(b) if (r.entry.effective, r.recorded) > (b.entry.effective, b.recorded) => Some(r),
            keep => keep,
        };
    }
    best.map(|r| r.entry)
}

fn death_day(c: &CaseFacts) -> Option<NaiveDate> {
    // The first day on which the resolved timeline says dead.
    let mut days: Vec<NaiveDate> = c.history.iter().map(|r| r.entry.effective).collect();
    days.sort();
    days.dedup();
    for d in days {
        if status_at(c, d).is_some_and(|e| e.status == Status::Dead) {
            return Some(d);
        }
    }
    (c.case_type == CaseType::DeadConfirmed).then(|| c.death_date.unwrap_or(c.report_day))
}

fn col_of(c: &CaseFacts) -> Option<usize> {
    column(
        Sex::ALL.iter().position(|s| *s == c.sex).unwrap() as i16,
        i16::from(c.age_band.index()),
    )
}

fn regime() -> NaiveDate {
    NaiveDate::from_ymd_opt(2022, 9, 26).unwrap()
}

fn brute_new(ds: &Dataset, p: u8, day: NaiveDate) -> i64 {
    if day >= regime() {
        ds.totals.iter().filter(|t| t.0 == day && t.1 == p).map(|t| t.3).sum()
    } else {
        ds.cases
            .iter()
            .filter(|c| counts(c) && c.prefecture.number() == p && c.report_day == day)
            .count() as i64
    }
}

fn brute_daily(ds: &Dataset, s: DailySeries, p: u8, day: NaiveDate) -> i64 {
    let cases = || ds.cases.iter().filter(|c| counts(c) && c.prefecture.number() == p);
    let status_is = |set: &[Status]| {
        cases()
            .filter(|c| status_at(c, day).is_some_and(|e| set.contains(&e.status)))
            .count() as i64
    };
    match s {
        DailySeries::NewPositives => brute_new(ds, p, day),
        DailySeries::CumulativePositives => {
            let mut d = first_day();
            let mut sum = 0;
            while d <= day {
                sum += brute_new(ds, p, d);
                d = d + Days::new(1);
            }
            sum
        }
        DailySeries::Per100kHundredths => {
            let sum: i64 = (0..7)
                .filter_map(|k| day.checked_sub_days(Days::new(k)))
                .filter(|d| *d >= first_day())
                .map(|d| brute_new(ds, p, d))
                .sum();
            per_100k_hundredths(sum, populations()[usize::from(p) - 1])
        }
        DailySeries::Severe => cases()
            .filter(|c| status_at(c, day).is_some_and(|e| e.severity == Some(Severity::Severe)))
            .count() as i64,
        DailySeries::DeathsCumulative => cases().filter(|c| death_day(c).is_some_and(|d| d <= day)).count() as i64,
        DailySeries::RequiringInpatient => status_is(&[
            Status::Hospitalized,
            Status::Hotel,
            Status::Home,
            Status::Facility,
            Status::Adjusting,
        ]),
        DailySeries::Discharged => status_is(&[Status::Released]),
        DailySeries::ToBeConfirmed => status_is(&[Status::Unknown]),
    }
}

fn brute_weekly(ds: &Dataset, s: WeeklySeries, p: u8, cal: &Calendar, w: usize, col: usize) -> i64 {
    let (start, end) = (cal.week_start(w), cal.week_end(w));
    if s == WeeklySeries::Clusters {
        let setting = ClusterSetting::ALL[col];
        return ds
            .clusters
            .iter()
            .filter(|c| c.1 == p && c.2 == setting && c.0 >= start && c.0 <= end)
            .count() as i64;
    }
    let cases = ds
        .cases
        .iter()
        .filter(|c| counts(c) && c.prefecture.number() == p && col_of(c) == Some(col));
    (match s {
        WeeklySeries::NewBySexAge => cases.filter(|c| c.report_day >= start && c.report_day <= end).count(),
        WeeklySeries::CumulativeBySexAge => cases.filter(|c| c.report_day <= end).count(),
        WeeklySeries::SevereBySexAge => cases
            .filter(|c| status_at(c, end).is_some_and(|e| e.severity == Some(Severity::Severe)))
            .count(),
        WeeklySeries::DeathsBySexAge => cases.filter(|c| death_day(c).is_some_and(|d| d <= end)).count(),
        WeeklySeries::Clusters => unreachable!(),
    }) as i64
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_indicator_equals_a_brute_force_count(ds in dataset()) {
        let inputs = engine_inputs(&ds);
        let ind = compute(&inputs);
        let cal = Calendar::new(as_of());
        // Daily series over the days the data covers (earlier days are all zero).
        let from = cal.day_index(day0() - Days::new(3)).unwrap();
        for s in DailySeries::ALL {
            let t = &ind.daily[s.index()];
            for d in from..cal.days() {
                let day = cal.day(d);
                let mut all = 0;
                for p in 1..=3u8 {
                    let expected = brute_daily(&ds, s, p, day);
                    prop_assert_eq!(t.get(usize::from(p), d).value, Some(expected), "{:?} pref {} on {}", s, p, day);
                    all += expected;
                }
                if s != DailySeries::Per100kHundredths {
                    prop_assert_eq!(t.get(0, d).value, Some(all), "{:?} ALL on {}", s, day);
                }
                prop_assert_eq!(t.get(5, d).value, Some(0));
            }
        }
        let first_week = cal.week_index(day0()).unwrap() - 1;
        for s in WeeklySeries::ALL {
            let t = &ind.weekly[s.index()];
            for w in first_week..cal.weeks() {
                for col in 0..s.columns() {
                    let mut all = 0;
                    for p in 1..=3u8 {
                        let expected = brute_weekly(&ds, s, p, &cal, w, col);
                        prop_assert_eq!(t.get(w, usize::from(p), col).value, Some(expected), "{:?} pref {} week {} col {}", s, p, w, col);
                        all += expected;
                    }
                    prop_assert_eq!(t.get(w, 0, col).value, Some(all));
                }
            }
        }
    }

    #[test]
    fn suppression_hides_every_small_count_and_passes_the_auditor(ds in dataset()) {
        let inputs = engine_inputs(&ds);
        let (publication, outcome) = todoke_statistics::build(&inputs);
        prop_assert_eq!(outcome.unprotected, 0);
        for s in [WeeklySeries::NewBySexAge, WeeklySeries::CumulativeBySexAge, WeeklySeries::SevereBySexAge, WeeklySeries::DeathsBySexAge] {
            let t = publication.weekly(s);
            for w in 0..t.weeks {
                for a in 0..AREAS {
                    for c in 0..COLUMNS {
                        let cell = t.get(w, a, c);
                        if cell.value.is_some_and(|v| (1..=4).contains(&v)) {
                            prop_assert_eq!(cell.render(), "*");
                        }
                    }
                }
            }
        }
        let report = todoke_statistics::audit::audit(&publication.indicators);
        prop_assert!(report.passed(), "unproven: {:?}", &report.unproven[..report.unproven.len().min(5)]);
        prop_assert_eq!(report.hidden, outcome.primary + outcome.secondary);
    }
}

/// The auditor is not a formality: with the primary cells hidden and nothing else, a lone small
/// count is derivable from its row total, and the auditor says so.
#[test]
fn the_auditor_finds_cells_that_primary_suppression_alone_leaves_derivable() {
    let mut cases = Vec::new();
    let case = |sex: Sex, age: u8, p: u8| CaseFacts {
        case_type: CaseType::Confirmed,
        report_day: day0() + Days::new(10),
        prefecture: PrefectureCode::from_number(p).unwrap(),
        sex,
        age_band: AgeBand::from_index(age).unwrap(),
        death_date: None,
        withdrawn: false,
        merged: false,
        history: Vec::new(),
    };
    // Prefecture 1: two women in their 30s (a primary cell) and 20 men in their 40s.
    cases.extend((0..2).map(|_| case(Sex::Female, 3, 1)));
    cases.extend((0..20).map(|_| case(Sex::Male, 4, 1)));
    let ds = Dataset {
        cases,
        totals: Vec::new(),
        clusters: Vec::new(),
    };
    let mut ind = compute(&engine_inputs(&ds));
    for s in [WeeklySeries::NewBySexAge, WeeklySeries::CumulativeBySexAge] {
        for cell in &mut ind.weekly[s.index()].cells {
            if cell.value.is_some_and(|v| (1..=4).contains(&v)) {
                cell.suppression = todoke_statistics::model::Suppression::Primary;
            }
        }
    }
    let weak = todoke_statistics::audit::audit(&ind);
    assert!(!weak.passed());
    assert_eq!(weak.proven, 0, "every primary cell is derivable: {weak:?}");
    todoke_statistics::suppress::suppress(&mut ind);
    let strong = todoke_statistics::audit::audit(&ind);
    assert!(strong.passed(), "{strong:?}");
    assert!(strong.hidden > weak.hidden, "secondary cells were added");
}
