//! The epidemiological assumptions (each is listed in docs/synthetic-data.md): who tests
//! positive in each wave, how each case's care goes, and how completely the registry was used
//! before it became the source of the daily figures.

use chrono::{Datelike, NaiveDate, Weekday};
use todoke_domain::counting::StatusEntry;
use todoke_domain::notification::{Severity, Sex, Status};

use crate::rng::Rng;

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("a valid date")
}

/// From this day the registry's daily new positives equal the published ones exactly (the
/// daily indicators' switch to registry data).
pub fn registry_complete_from() -> NaiveDate {
    date(2021, 5, 17)
}

/// From this day only the notified groups are notified, and every positive is counted in the
/// institutions' daily total-count reports.
pub fn total_count_regime_from() -> NaiveDate {
    date(2022, 9, 26)
}

/// The registry opened (HER-SYS went live in May 2020); earlier cases are entered late or never.
pub fn registry_opened() -> NaiveDate {
    date(2020, 5, 11)
}

/// The waves, by report date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wave {
    First,
    Second,
    Third,
    Fourth,
    Fifth,
    Sixth,
    Seventh,
    Eighth,
}

impl Wave {
    pub fn of(day: NaiveDate) -> Wave {
        let starts = [
            (date(2022, 11, 1), Wave::Eighth),
            (date(2022, 7, 1), Wave::Seventh),
            (date(2022, 1, 1), Wave::Sixth),
            (date(2021, 7, 1), Wave::Fifth),
            (date(2021, 3, 1), Wave::Fourth),
            (date(2020, 11, 1), Wave::Third),
            (date(2020, 6, 1), Wave::Second),
        ];
        starts
            .iter()
            .find(|(start, _)| day >= *start)
            .map(|(_, w)| *w)
            .unwrap_or(Wave::First)
    }

    /// Relative share of positives by ten-year band (under 10, 10s, ..., 80s, 90 and over):
    /// the young in the second and fifth waves, children in the sixth, the old in the eighth.
    fn age_weights(self) -> [f64; 10] {
        match self {
            Wave::First => [2.0, 4.0, 18.0, 15.0, 15.0, 14.0, 11.0, 10.0, 8.0, 3.0],
            Wave::Second => [3.0, 6.0, 33.0, 18.0, 14.0, 10.0, 6.0, 5.0, 4.0, 1.0],
            Wave::Third => [3.0, 7.0, 22.0, 14.0, 14.0, 13.0, 9.0, 8.0, 7.0, 3.0],
            Wave::Fourth => [5.0, 10.0, 20.0, 14.0, 15.0, 13.0, 8.0, 7.0, 5.0, 3.0],
            Wave::Fifth => [8.0, 14.0, 26.0, 17.0, 16.0, 10.0, 4.0, 3.0, 1.5, 0.5],
            Wave::Sixth => [17.0, 17.0, 15.0, 15.0, 13.0, 8.0, 5.0, 5.0, 3.5, 1.5],
            Wave::Seventh => [13.0, 14.0, 14.0, 14.0, 15.0, 11.0, 7.0, 6.0, 4.0, 2.0],
            Wave::Eighth => [10.0, 11.0, 11.0, 12.0, 14.0, 12.0, 9.0, 10.0, 7.0, 4.0],
        }
    }

    /// Multiplier of the base fatality by band: high before vaccines, low with omicron.
    fn fatality_factor(self) -> f64 {
        match self {
            Wave::First => 3.0,
            Wave::Second => 0.9,
            Wave::Third => 1.3,
            Wave::Fourth => 1.1,
            Wave::Fifth => 0.8,
            Wave::Sixth => 0.2,
            Wave::Seventh => 0.1,
            Wave::Eighth => 0.125,
        }
    }

    /// Share admitted to hospital before any age effect.
    fn admission_base(self) -> f64 {
        match self {
            Wave::First | Wave::Second => 0.45,
            Wave::Third | Wave::Fourth => 0.25,
            Wave::Fifth => 0.12,
            Wave::Sixth | Wave::Seventh | Wave::Eighth => 0.03,
        }
    }

    /// Share cared for in hotels (宿泊療養).
    fn hotel_share(self) -> f64 {
        match self {
            Wave::First => 0.05,
            Wave::Second | Wave::Third | Wave::Fourth | Wave::Fifth => 0.25,
            Wave::Sixth => 0.12,
            Wave::Seventh | Wave::Eighth => 0.05,
        }
    }
}

/// Base case fatality by ten-year band, before the wave's factor.
const BASE_FATALITY: [f64; 10] = [0.0, 0.0, 0.000_05, 0.000_2, 0.000_7, 0.002, 0.009, 0.035, 0.10, 0.18];

/// A person who tested positive: age at diagnosis and sex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Positive {
    pub age: u32,
    pub sex: Sex,
}

pub fn draw_positive(rng: &mut Rng, day: NaiveDate) -> Positive {
    let band = rng.weighted(&Wave::of(day).age_weights()) as u32;
    let age = if band == 9 {
        90 + rng.below(16) as u32
    } else {
        band * 10 + rng.below(10) as u32
    };
    // More women among the very old (they outlive men); slightly more men otherwise.
    let male_share = match age {
        0..=69 => 0.52,
        70..=79 => 0.47,
        _ => 0.36,
    };
    let sex = if rng.chance(0.002) {
        Sex::Unknown
    } else if rng.chance(male_share) {
        Sex::Male
    } else {
        Sex::Female
    };
    Positive { age, sex }
}

/// How a case's care went: its status history (dates strictly increasing) and, if it died,
/// the day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Course {
    pub history: Vec<StatusEntry>,
    pub died: Option<NaiveDate>,
    /// The severity at notification.
    pub initial_severity: Severity,
    pub needs_admission: bool,
}

fn entry(effective: NaiveDate, status: Status, severity: Option<Severity>) -> StatusEntry {
    StatusEntry {
        effective,
        status,
        severity,
    }
}

/// The course of a case diagnosed on `day`.
pub fn draw_course(rng: &mut Rng, day: NaiveDate, who: Positive) -> Course {
    let wave = Wave::of(day);
    let band = (who.age / 10).min(9) as usize;
    let fatality = (BASE_FATALITY[band] * wave.fatality_factor()).min(0.6);
    let dies = rng.chance(fatality);
    // Severe illness is several times as common as death, and not only among the old.
    let severe = dies && rng.chance(0.6) || rng.chance((fatality * 1.5 + 0.000_3).min(0.5));
    let age_pull = (who.age as f64 / 100.0).powi(2) * 0.6;
    let admitted = severe || dies && rng.chance(0.7) || rng.chance((wave.admission_base() + age_pull).min(0.9));
    let days = |rng: &mut Rng, lo: i64, hi: i64| day + chrono::Days::new(rng.between(lo, hi) as u64);
    // Release after 10 days of care until 2022-09-06, 7 days after (the shortened period).
    let care_days = if day >= date(2022, 9, 7) { (7, 8) } else { (10, 12) };
    let mut history = Vec::with_capacity(4);
    let mut start = day;
    // At the height of a wave some cases wait a day while care is arranged (調整中).
    if admitted && rng.chance(0.08) {
        history.push(entry(day, Status::Adjusting, Some(Severity::Moderate1)));
        start = day + chrono::Days::new(1);
    }
    let initial_severity = if severe {
        Severity::Moderate2
    } else if admitted {
        Severity::Moderate1
    } else {
        Severity::Mild
    };
    let place = if admitted {
        Status::Hospitalized
    } else if who.age >= 80 && wave as u8 >= Wave::Sixth as u8 && rng.chance(0.3) {
        Status::Facility
    } else if rng.chance(wave.hotel_share()) {
        Status::Hotel
    } else {
        Status::Home
    };
    history.push(entry(start, place, Some(initial_severity)));
    let mut last = start;
    if severe {
        let onset = last + chrono::Days::new(rng.between(1, 4) as u64);
        history.push(entry(onset, Status::Hospitalized, Some(Severity::Severe)));
        last = onset;
        if !dies {
            let better = last + chrono::Days::new(rng.between(4, 12) as u64);
            history.push(entry(better, Status::Hospitalized, Some(Severity::Moderate1)));
            last = better;
        }
    }
    let died = if dies {
        let death = (last + chrono::Days::new(rng.between(1, 10) as u64)).max(days(rng, 3, 20));
        let death = death.max(last + chrono::Days::new(1));
        history.push(entry(death, Status::Dead, None));
        Some(death)
    } else {
        let release = (last + chrono::Days::new(rng.between(3, 6) as u64)).max(days(rng, care_days.0, care_days.1));
        history.push(entry(release.max(last + chrono::Days::new(1)), Status::Released, None));
        None
    };
    Course {
        history,
        died,
        initial_severity,
        needs_admission: admitted,
    }
}

/// Share of positives entered in the registry on time before it was complete: about 40% in
/// mid-2020 rising to all by spring 2021, lower at weekends.
pub fn coverage(day: NaiveDate) -> f64 {
    if day < registry_opened() {
        return 0.0;
    }
    let start = date(2020, 6, 15);
    let full = date(2021, 4, 1);
    let base = if day <= start {
        0.25 + 0.15 * (day - registry_opened()).num_days() as f64 / (start - registry_opened()).num_days() as f64
    } else if day >= full {
        1.0
    } else {
        0.4 + 0.6 * (day - start).num_days() as f64 / (full - start).num_days() as f64
    };
    match day.weekday() {
        Weekday::Sat => base * 0.8,
        Weekday::Sun => base * 0.7,
        _ => base,
    }
}

/// A catch-up day on which health centres entered a backlog: the 1st and 16th of each month.
pub fn next_catch_up_day(after: NaiveDate) -> NaiveDate {
    let mut d = after + chrono::Days::new(1);
    while d.day() != 1 && d.day() != 16 {
        d = d + chrono::Days::new(1);
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn courses_are_ordered_and_end_released_or_dead() {
        let mut rng = Rng::stream(3, 0, 0, 0);
        for i in 0..20_000 {
            let day = date(2020, 4, 1) + chrono::Days::new(i % 1100);
            let who = draw_positive(&mut rng, day);
            let c = draw_course(&mut rng, day, who);
            assert!(c.history.windows(2).all(|w| w[0].effective < w[1].effective), "{c:?}");
            assert!(c.history[0].effective >= day);
            let last = c.history.last().unwrap();
            assert!(matches!(last.status, Status::Released | Status::Dead), "{c:?}");
            assert_eq!(c.died.is_some(), last.status == Status::Dead);
        }
    }

    #[test]
    fn the_old_die_more_often_than_the_young_and_waves_differ() {
        let rate = |age: u32, day: NaiveDate| {
            let mut rng = Rng::stream(5, u64::from(age), 0, 0);
            let n = 40_000;
            let deaths = (0..n)
                .filter(|_| {
                    draw_course(&mut rng, day, Positive { age, sex: Sex::Female })
                        .died
                        .is_some()
                })
                .count();
            deaths as f64 / n as f64
        };
        let third = date(2021, 1, 10);
        let seventh = date(2022, 8, 10);
        assert!(rate(85, third) > 0.1, "{}", rate(85, third));
        assert!(rate(25, third) < 0.001);
        assert!(rate(85, seventh) < rate(85, third) / 5.0);
    }

    #[test]
    fn coverage_rises_to_full_by_spring_2021() {
        assert_eq!(coverage(date(2020, 4, 1)), 0.0);
        let mid_2020 = coverage(date(2020, 7, 1)); // a Wednesday
        assert!((0.38..0.5).contains(&mid_2020), "{mid_2020}");
        assert_eq!(coverage(date(2021, 4, 7)), 1.0);
        assert!(coverage(date(2020, 11, 8)) < coverage(date(2020, 11, 9)), "Sunday dips");
    }
}
