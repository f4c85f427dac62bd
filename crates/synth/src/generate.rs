//! Turns the curve into people: for each prefecture and day, the positives of that day, the
//! notifications the registry received for them (when it received them), the total-count
//! report lines from 2022-09-26, and their effect on what the prefecture announced. Pure: no
//! I/O; every prefecture and day draws from its own random stream.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use todoke_domain::counting::StatusEntry;
use todoke_domain::notification::{
    CaseType, ClusterSetting, NotificationDraft, NotifiedGroup, PersonDraft, Severity, Sex, Status, TotalsAgeBand,
};
use todoke_domain::{HealthCentreCode, InstitutionCode, PrefectureCode};
use todoke_storage::bulk::{MunicipalFigures, NewTotal};
use todoke_storage::follow_up::{NewContact, NewObservation};
use todoke_storage::registry::Placement;

use crate::model::{self, Course, Positive};
use crate::names;
use crate::rng::Rng;

/// Health centres per country (約469 in 2020); each prefecture gets a share by population.
pub const HEALTH_CENTRES: usize = 469;
/// Medical institutions per health centre.
pub const INSTITUTIONS_PER_CENTRE: usize = 8;

/// One prefecture's organisations.
#[derive(Debug, Clone)]
pub struct PrefectureOrgs {
    pub code: PrefectureCode,
    pub name_ja: String,
    pub health_centres: Vec<(HealthCentreCode, String)>,
    /// (code, index of its health centre, name)
    pub institutions: Vec<(InstitutionCode, usize, String)>,
}

/// Health centres per prefecture: at least one each, the rest by population (largest
/// remainder), `HEALTH_CENTRES` in all.
pub fn centres_per_prefecture(populations: &[i64; 47]) -> [usize; 47] {
    let total: i64 = populations.iter().sum();
    let spare = (HEALTH_CENTRES - 47) as i64;
    let mut out = [1usize; 47];
    let mut remainders: Vec<(i64, usize)> = Vec::with_capacity(47);
    let mut given = 0;
    for (i, pop) in populations.iter().enumerate() {
        let exact = spare * pop;
        out[i] += (exact / total) as usize;
        given += (exact / total) as usize;
        remainders.push((exact % total, i));
    }
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in remainders.into_iter().take(spare as usize - given) {
        out[i] += 1;
    }
    out
}

pub fn prefecture_orgs(seed: u64, code: PrefectureCode, name_ja: &str, centres: usize) -> PrefectureOrgs {
    let mut rng = Rng::stream(seed, u64::from(code.number()), 0xC0DE, 0);
    let health_centres: Vec<(HealthCentreCode, String)> = (0..centres)
        .map(|n| {
            let code = HealthCentreCode::parse(&format!("HC{code}{:03}", n + 1)).expect("a valid code");
            (code, names::health_centre(name_ja, n))
        })
        .collect();
    let institutions = health_centres
        .iter()
        .enumerate()
        .flat_map(|(h, (hc_code, hc_name))| {
            (0..INSTITUTIONS_PER_CENTRE)
                .map(|m| {
                    let code = InstitutionCode::parse(&format!("MI{}{:02}", &hc_code.as_str()[2..], m + 1))
                        .expect("a valid code");
                    (code, h, names::institution(&mut rng, hc_name, m))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    PrefectureOrgs {
        code,
        name_ja: name_ja.to_owned(),
        health_centres,
        institutions,
    }
}

/// What happens to a notification after it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Aftermath {
    Stays,
    /// Withdrawn by the health centre with this reason (取り下げ).
    Withdrawn(&'static str),
    /// A second notification of the same person: merged into the one with this external id.
    MergedInto(String),
}

/// A notification ready to load.
#[derive(Debug, Clone)]
pub struct Synthesized {
    pub draft: NotificationDraft,
    pub placement: Placement,
    pub health_centre: String,
    pub history: Vec<StatusEntry>,
    pub aftermath: Aftermath,
    /// The setting the investigation linked it to, if any.
    pub cluster: Option<ClusterKey>,
    /// The cluster's id and the infection place, once the loader knows the setting had enough
    /// cases that week to be a cluster.
    pub investigation: Option<(i64, String)>,
    /// Close contacts and daily health observations, for a sample of cases.
    pub follow_up: Option<(Vec<NewContact>, Vec<NewObservation>)>,
}

/// Cases of one prefecture, one week (Sunday to Saturday) and one setting form one cluster,
/// registered by the health centre of its first case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterKey {
    pub prefecture: u8,
    /// Days from the series' first day to the week's Sunday.
    pub week_start: i64,
    pub setting: usize,
}

/// Share of cases an investigation links to a setting; a setting with at least
/// `CLUSTER_MIN_CASES` such cases in a week becomes a cluster.
const CLUSTER_RATE: f64 = 0.02;
pub const CLUSTER_MIN_CASES: usize = 5;
/// Share of cases with contacts and health observations recorded.
const FOLLOW_UP_RATE: f64 = 0.000_5;

/// The setting a case's cluster is in, by age: schools for children, restaurants and workplaces
/// for adults, care facilities and hospitals for the old.
fn cluster_setting(rng: &mut Rng, age: u32) -> ClusterSetting {
    use ClusterSetting::*;
    let (settings, weights): (&[ClusterSetting], &[f64]) = match age {
        0..=19 => (&[School, Other], &[0.8, 0.2]),
        20..=64 => (&[Restaurant, Workplace, Hospital, Other], &[0.35, 0.45, 0.05, 0.15]),
        _ => (&[CareFacility, Hospital, Other], &[0.6, 0.3, 0.1]),
    };
    settings[rng.weighted(weights)]
}

/// Contacts (mostly household members, sharing the surname) and daily observations from
/// diagnosis to the end of care (at most 10 days).
fn follow_up(
    rng: &mut Rng,
    who: Positive,
    kana: &str,
    diagnosed: NaiveDate,
    history: &[StatusEntry],
) -> (Vec<NewContact>, Vec<NewObservation>) {
    let surname_kana = kana.split(' ').next().unwrap_or(kana).to_owned();
    let surname = names::surname_of(&surname_kana);
    // Contacts were monitored for 14 days, 5 from 2022-07-22.
    let monitored = if diagnosed >= NaiveDate::from_ymd_opt(2022, 7, 22).expect("a date") {
        5
    } else {
        14
    };
    let contacts = (0..rng.between(1, 4))
        .map(|_| {
            let sex = if rng.chance(0.5) { Sex::Male } else { Sex::Female };
            let (name, kana) = names::person(rng, sex);
            let given = name.split(' ').nth(1).unwrap_or("").to_owned();
            let given_kana = kana.split(' ').nth(1).unwrap_or("").to_owned();
            let last_exposure = diagnosed - chrono::Days::new(rng.between(0, 2) as u64);
            NewContact {
                name: format!("{surname} {given}"),
                name_kana: Some(format!("{surname_kana} {given_kana}")),
                phone: None,
                relationship: Some(rng.pick(&["同居家族", "同居家族", "職場", "友人"]).to_string()),
                last_exposure,
                monitored_until: last_exposure + chrono::Days::new(monitored),
            }
        })
        .collect();
    let end = history.last().map(|e| e.effective).unwrap_or(diagnosed);
    let days = (end - diagnosed).num_days().clamp(1, 10);
    let mut fever = 37.0 + rng.unit() * 2.0;
    let observations = (0..days)
        .map(|d| {
            fever = (fever - 0.3 * rng.unit()).max(36.2);
            NewObservation {
                observed_on: diagnosed + chrono::Days::new(d as u64),
                temperature: Some((fever * 10.0).round() / 10.0),
                spo2: Some(if who.age >= 70 {
                    rng.between(92, 97)
                } else {
                    rng.between(95, 99)
                }),
                symptoms: (fever > 37.4).then(|| "発熱".to_owned()),
            }
        })
        .collect();
    (contacts, observations)
}

/// Per-prefecture running figures behind what the prefecture announces each day, as changes
/// by day (index from the first day of the series; courses may run past its end).
#[derive(Debug, Clone)]
pub struct Announced {
    severe: Vec<i64>,
    under_care: Vec<i64>,
    being_arranged: Vec<i64>,
    released: Vec<i64>,
    deaths: Vec<i64>,
}

impl Announced {
    pub fn new(days: usize) -> Announced {
        let n = days + 120;
        Announced {
            severe: vec![0; n],
            under_care: vec![0; n],
            being_arranged: vec![0; n],
            released: vec![0; n],
            deaths: vec![0; n],
        }
    }

    fn add(&mut self, first_day: NaiveDate, course: &Course, death_lag: i64) {
        let end = self.under_care.len() - 1;
        let at = |d: NaiveDate| ((d - first_day).num_days().max(0) as usize).min(end);
        let first = course.history.first().expect("a course has entries");
        let last = course.history.last().expect("a course has entries");
        self.under_care[at(first.effective)] += 1;
        let j = at(last.effective);
        self.under_care[j] -= 1;
        for (k, e) in course.history.iter().enumerate() {
            let next = course.history.get(k + 1);
            if e.status == Status::Adjusting {
                self.being_arranged[at(e.effective)] += 1;
                self.being_arranged[at(next.map(|n| n.effective).unwrap_or(e.effective))] -= 1;
            }
            if e.severity == Some(Severity::Severe) {
                self.severe[at(e.effective)] += 1;
                self.severe[at(next.map(|n| n.effective).unwrap_or(e.effective))] -= 1;
            }
        }
        match course.died {
            Some(d) => {
                self.deaths[at(d + chrono::Days::new(death_lag as u64))] += 1;
            }
            None => self.released[j] += 1,
        }
    }

    /// The rows a prefecture announced, one per day of the series.
    pub fn figures(
        &self,
        prefecture: PrefectureCode,
        quirks: &Quirks,
        series_days: &[(NaiveDate, u32)],
    ) -> Vec<MunicipalFigures> {
        let mut cumulative = 0i64;
        let (mut severe, mut care, mut arranging, mut released, mut deaths) = (0i64, 0i64, 0i64, 0i64, 0i64);
        series_days
            .iter()
            .enumerate()
            .map(|(i, (day, n))| {
                cumulative += i64::from(*n);
                severe += self.severe[i];
                care += self.under_care[i];
                arranging += self.being_arranged[i];
                released += self.released[i];
                deaths += self.deaths[i];
                MunicipalFigures {
                    report_date: *day,
                    prefecture_code: prefecture.to_string(),
                    new_positives: Some(i64::from(*n)),
                    cumulative_positives: Some(cumulative),
                    severe: Some((severe as f64 * quirks.severe_factor).round() as i64),
                    deaths_cumulative: Some(deaths),
                    requiring_inpatient: Some(care),
                    discharged_cumulative: Some(released),
                    to_be_confirmed: quirks.reports_being_arranged.then_some(arranging),
                }
            })
            .collect()
    }
}

/// How a prefecture's announcements differ from the registry's way of counting.
#[derive(Debug, Clone, PartialEq)]
pub struct Quirks {
    /// Own criteria for "severe" (Tokyo counted fewer than the national definition).
    pub severe_factor: f64,
    /// Days between a death and its announcement.
    pub death_lag: i64,
    /// Whether the prefecture announces cases still being arranged.
    pub reports_being_arranged: bool,
}

pub fn quirks(seed: u64, prefecture: PrefectureCode) -> Quirks {
    let mut rng = Rng::stream(seed, u64::from(prefecture.number()), 0x0DD, 0);
    Quirks {
        severe_factor: if prefecture.number() == 13 {
            0.5
        } else {
            0.75 + rng.unit() * 0.5
        },
        death_lag: rng.between(0, 3),
        reports_being_arranged: rng.chance(0.6),
    }
}

/// Rates of the notifications that never count.
const WITHDRAWN_RATE: f64 = 0.002;
const DUPLICATE_RATE: f64 = 0.001;
const SUSPECTED_RATE: f64 = 0.003;
/// Share of the positives not entered on time before 2021-05-17 that were entered later, on a
/// catch-up day.
const CATCH_UP_SHARE: f64 = 0.35;

/// Everything one prefecture's day produced.
#[derive(Debug, Default)]
pub struct DayOutput {
    pub notifications: Vec<Synthesized>,
    pub totals: Vec<NewTotal>,
}

/// The day `day_index` of one prefecture, with `count` positives.
pub fn prefecture_day(
    seed: u64,
    orgs: &PrefectureOrgs,
    first_day: NaiveDate,
    day_index: usize,
    count: u32,
    announced: &mut Announced,
    quirks: &Quirks,
) -> DayOutput {
    let day = first_day + chrono::Days::new(day_index as u64);
    let mut rng = Rng::stream(seed, u64::from(orgs.code.number()), day_index as u64, 1);
    let mut out = DayOutput::default();
    let regime = day >= model::total_count_regime_from();
    let mut bands: Vec<[i64; 14]> = vec![[0; 14]; orgs.institutions.len()];
    for n in 0..count {
        let who = model::draw_positive(&mut rng, day);
        let course = model::draw_course(&mut rng, day, who);
        announced.add(first_day, &course, quirks.death_lag);
        let institution = rng.index(orgs.institutions.len());
        let group = if regime {
            bands[institution][band_index(TotalsAgeBand::of_age(who.age))] += 1;
            notified_group(&mut rng, who, &course)
        } else {
            None
        };
        let filed_on = if regime {
            group.map(|_| day)
        } else if day >= model::registry_complete_from() || rng.chance(model::coverage(day)) {
            Some(day.max(model::registry_opened()))
        } else if rng.chance(CATCH_UP_SHARE) {
            Some(model::next_catch_up_day(day.max(model::registry_opened())))
                .filter(|d| *d < model::registry_complete_from())
        } else {
            None
        };
        let Some(filed_on) = filed_on else { continue };
        let external_id = format!("S{}-{}-{n:06}", orgs.code, day.format("%Y%m%d"));
        let cluster = rng.chance(CLUSTER_RATE).then(|| {
            let setting = cluster_setting(&mut rng, who.age);
            ClusterKey {
                prefecture: orgs.code.number(),
                week_start: day_index as i64 - i64::from(day.weekday().num_days_from_sunday()),
                setting: ClusterSetting::ALL.iter().position(|s| *s == setting).expect("listed"),
            }
        });
        let with_follow_up = rng.chance(FOLLOW_UP_RATE);
        let mut main = notification(
            &mut rng,
            orgs,
            institution,
            &external_id,
            day,
            filed_on,
            who,
            course,
            group,
        );
        main.cluster = cluster;
        if with_follow_up {
            let kana = main.draft.person.name_kana.clone().unwrap_or_default();
            main.follow_up = Some(follow_up(&mut rng, who, &kana, day, &main.history));
        }
        if rng.chance(DUPLICATE_RATE) {
            // The same person notified again a few days later by another institution.
            let mut again = main.clone();
            again.draft.external_id = Some(format!("{external_id}-D"));
            let later = filed_on + chrono::Days::new(rng.between(0, 3) as u64);
            again.draft.reported_at = at_jst(later, rng.between(8 * 60, 20 * 60));
            let other = rng.index(orgs.institutions.len());
            place(&mut again, orgs, other);
            again.aftermath = Aftermath::MergedInto(external_id.clone());
            again.cluster = None;
            again.follow_up = None;
            out.notifications.push(main);
            out.notifications.push(again);
        } else {
            out.notifications.push(main);
        }
        if rng.chance(WITHDRAWN_RATE + SUSPECTED_RATE) {
            // A notification that does not count: withdrawn (a false positive) or a suspected case.
            let who = model::draw_positive(&mut rng, day);
            let course = model::draw_course(&mut rng, day, who);
            let at = rng.index(orgs.institutions.len());
            let extra_id = format!("{external_id}-X");
            let mut extra = notification(&mut rng, orgs, at, &extra_id, day, filed_on, who, course, group);
            if rng.chance(WITHDRAWN_RATE / (WITHDRAWN_RATE + SUSPECTED_RATE)) {
                extra.aftermath = Aftermath::Withdrawn("検査の誤りが判明したため（偽陽性） / false positive test");
            } else {
                extra.draft.case_type = CaseType::Suspected;
            }
            out.notifications.push(extra);
        }
    }
    if regime {
        for (i, per_band) in bands.iter().enumerate() {
            let (code, hc, _) = &orgs.institutions[i];
            for (b, &c) in per_band.iter().enumerate().filter(|(_, c)| **c > 0) {
                out.totals.push(NewTotal {
                    date: day,
                    prefecture: orgs.code,
                    health_centre: orgs.health_centres[*hc].0.to_string(),
                    institution: code.to_string(),
                    age_band: TotalsAgeBand::ALL[b],
                    count: c,
                });
            }
        }
    }
    out
}

fn band_index(band: TotalsAgeBand) -> usize {
    TotalsAgeBand::ALL.iter().position(|b| *b == band).expect("listed")
}

/// From 2022-09-26 only these are notified: 65 and over, needing admission, at risk and
/// needing treatment, pregnant.
fn notified_group(rng: &mut Rng, who: Positive, course: &Course) -> Option<NotifiedGroup> {
    if who.age >= 65 {
        Some(NotifiedGroup::Age65)
    } else if course.needs_admission {
        Some(NotifiedGroup::Admission)
    } else if rng.chance(0.03) {
        Some(NotifiedGroup::RiskTreatment)
    } else if who.sex == Sex::Female && (18..=45).contains(&who.age) && rng.chance(0.01) {
        Some(NotifiedGroup::Pregnant)
    } else {
        None
    }
}

/// A JST day and minute of the day as an instant.
fn at_jst(day: NaiveDate, minute: i64) -> DateTime<Utc> {
    let local = day.and_hms_opt(0, 0, 0).expect("midnight") + chrono::Duration::minutes(minute);
    (local - chrono::Duration::hours(9)).and_utc()
}

fn place(n: &mut Synthesized, orgs: &PrefectureOrgs, institution: usize) {
    let (code, hc, _) = &orgs.institutions[institution];
    let hc_code = &orgs.health_centres[*hc].0;
    n.draft.institution = Some(code.clone());
    n.draft.health_centre = Some(hc_code.clone());
    n.placement = Placement {
        prefecture: orgs.code,
        health_centre: Some(hc_code.clone()),
        institution: Some(code.clone()),
    };
    n.health_centre = hc_code.to_string();
}

const SYMPTOMS: [&str; 8] = [
    "発熱",
    "咳",
    "咽頭痛",
    "倦怠感",
    "頭痛",
    "味覚障害",
    "嗅覚障害",
    "呼吸困難",
];
const TOWNS: [&str; 8] = ["本町", "栄町", "緑町", "旭町", "錦町", "新町", "中町", "幸町"];
const METHODS: [&str; 3] = ["PCR検査", "抗原定量検査", "抗原定性検査"];

#[allow(clippy::too_many_arguments)]
fn notification(
    rng: &mut Rng,
    orgs: &PrefectureOrgs,
    institution: usize,
    external_id: &str,
    diagnosed: NaiveDate,
    filed_on: NaiveDate,
    who: Positive,
    course: Course,
    group: Option<NotifiedGroup>,
) -> Synthesized {
    let (name, kana) = names::person(rng, who.sex);
    let birth = birth_date(rng, who.age, diagnosed);
    let asymptomatic = course.initial_severity == Severity::Mild && rng.chance(0.15);
    let symptoms: Vec<String> = if asymptomatic {
        Vec::new()
    } else {
        let k = 1 + rng.index(3);
        let mut s: Vec<String> = (0..k).map(|_| rng.pick(&SYMPTOMS).to_string()).collect();
        s.sort();
        s.dedup();
        s
    };
    let onset = (!asymptomatic).then(|| diagnosed - chrono::Days::new(rng.between(0, 4) as u64));
    let spo2 = match course.initial_severity {
        Severity::Severe | Severity::Moderate2 => Some(rng.between(88, 93) as u32),
        Severity::Moderate1 => Some(rng.between(93, 96) as u32),
        Severity::Mild => rng.chance(0.5).then(|| rng.between(96, 99) as u32),
    };
    let phone = format!(
        "0{}0-{:04}-{:04}",
        rng.between(7, 9),
        rng.below(10_000),
        rng.below(10_000)
    );
    let draft = NotificationDraft {
        external_id: Some(external_id.to_owned()),
        disease: "covid19".into(),
        case_type: if asymptomatic {
            CaseType::Asymptomatic
        } else {
            CaseType::Confirmed
        },
        reported_at: at_jst(filed_on, rng.between(8 * 60, 20 * 60)),
        prefecture: Some(orgs.code),
        health_centre: None,
        institution: None,
        doctor_name: Some(names::doctor(rng)),
        person: PersonDraft {
            name: Some(name),
            name_kana: Some(kana),
            sex: Some(who.sex),
            birth_date: Some(birth),
            occupation: None,
            postal_code: Some(format!("{:03}-{:04}", rng.between(100, 999), rng.below(10_000))),
            address: Some(format!(
                "{}{}{}-{}",
                orgs.name_ja,
                rng.pick(&TOWNS),
                rng.between(1, 9),
                rng.between(1, 30)
            )),
            phone: Some(phone),
        },
        age: who.age,
        symptoms,
        spo2,
        diagnosis_method: Some(rng.pick(&METHODS).to_string()),
        first_visit_date: Some(diagnosed),
        diagnosis_date: Some(diagnosed),
        infection_date: None,
        onset_date: onset,
        death_date: None,
        infection_route: None,
        vaccinations: None,
        risk_factors: None,
        immunosuppressed: None,
        pregnant: (group == Some(NotifiedGroup::Pregnant)).then_some(true),
        severity: Some(course.initial_severity),
        needs_admission: Some(course.needs_admission),
        notified_group: group,
        withdrawn: false,
    };
    let mut n = Synthesized {
        draft,
        placement: Placement {
            prefecture: orgs.code,
            health_centre: None,
            institution: None,
        },
        health_centre: String::new(),
        history: course.history,
        aftermath: Aftermath::Stays,
        cluster: None,
        investigation: None,
        follow_up: None,
    };
    place(&mut n, orgs, institution);
    n
}

/// A birth date that makes the person exactly `age` on `on`: the last birthday falls in the
/// year before `on`.
pub(crate) fn birth_date(rng: &mut Rng, age: u32, on: NaiveDate) -> NaiveDate {
    let last_birthday = on - chrono::Days::new(rng.below(365));
    let year = last_birthday.year() - age as i32;
    NaiveDate::from_ymd_opt(year, last_birthday.month(), last_birthday.day())
        // 29 February in a year without it: born on the 28th.
        .unwrap_or_else(|| NaiveDate::from_ymd_opt(year, 2, 28).expect("28 February exists"))
}
