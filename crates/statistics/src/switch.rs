//! The source switch table (集計元の切替): for every switchable indicator and prefecture, the
//! first day on which the registry rather than the municipal-published figures is the source.
//! Rows stored in the database override the defaults of seed 000's schedule.

use std::collections::HashMap;

use chrono::NaiveDate;
use todoke_domain::i18n::Message;
use todoke_storage::publications::SourceSwitch;

/// The indicators whose source switches. ② and ⑤ follow ①; ④ follows ③; ⑪ (clusters) is
/// registry data throughout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SwitchKey {
    /// ① (and ②, ⑤).
    NewPositives,
    /// ③ (and ④).
    NewBySexAge,
    /// ⑥.
    Severe,
    /// ⑦.
    SevereBySexAge,
    /// ⑧.
    Deaths,
    /// ⑨.
    DeathsBySexAge,
    /// ⑩.
    Inpatient,
}

impl SwitchKey {
    pub const ALL: [SwitchKey; 7] = [
        SwitchKey::NewPositives,
        SwitchKey::NewBySexAge,
        SwitchKey::Severe,
        SwitchKey::SevereBySexAge,
        SwitchKey::Deaths,
        SwitchKey::DeathsBySexAge,
        SwitchKey::Inpatient,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SwitchKey::NewPositives => "new_positives",
            SwitchKey::NewBySexAge => "new_by_sex_age",
            SwitchKey::Severe => "severe",
            SwitchKey::SevereBySexAge => "severe_by_sex_age",
            SwitchKey::Deaths => "deaths",
            SwitchKey::DeathsBySexAge => "deaths_by_sex_age",
            SwitchKey::Inpatient => "inpatient",
        }
    }

    pub fn parse(s: &str) -> Result<SwitchKey, Message> {
        SwitchKey::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = SwitchKey::ALL.iter().map(|k| k.as_str()).collect();
            Message::new(
                format!("指標「{s}」は切替の対象ではありません（{}）", names.join(", ")),
                format!("\"{s}\" is not a switchable indicator ({})", names.join(", ")),
            )
        })
    }

    /// Seed 000's schedule: daily ①② from 2021-05-17; the weekly sex/age table from 2021-04-08,
    /// earlier for the prefectures that moved first; ⑥–⑩ from [`follow_up_default`].
    pub fn default_from(self, prefecture: u8) -> NaiveDate {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).expect("valid date");
        match self {
            SwitchKey::NewPositives => d(2021, 5, 17),
            SwitchKey::NewBySexAge => match prefecture {
                // Iwate, Yamagata, Gunma, Shizuoka, Osaka, Tokushima, Miyazaki.
                3 | 6 | 10 | 22 | 27 | 36 | 45 => d(2021, 2, 16),
                // Tochigi, Nara, Kagawa, Kagoshima, Okinawa.
                9 | 29 | 37 | 46 | 47 => d(2021, 3, 16),
                _ => d(2021, 4, 8),
            },
            _ => follow_up_default(),
        }
    }
}

/// The default switch of ⑥–⑩, which the seed leaves to configuration: the day the registry's
/// input became complete (2021-05-17), as for ①.
pub fn follow_up_default() -> NaiveDate {
    NaiveDate::from_ymd_opt(2021, 5, 17).expect("valid date")
}

/// The effective table: defaults overridden by stored rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Switches {
    overrides: HashMap<(SwitchKey, u8), NaiveDate>,
}

impl Switches {
    /// The table from stored rows; rows naming an unknown indicator or prefecture are ignored
    /// (the writer validates them).
    pub fn from_rows(rows: &[SourceSwitch]) -> Switches {
        let mut overrides = HashMap::new();
        for r in rows {
            if let (Ok(key), Ok(pref)) = (SwitchKey::parse(&r.indicator), r.prefecture_code.parse::<u8>()) {
                overrides.insert((key, pref), r.registry_from);
            }
        }
        Switches { overrides }
    }

    pub fn set(&mut self, key: SwitchKey, prefecture: u8, from: NaiveDate) {
        self.overrides.insert((key, prefecture), from);
    }

    /// The first day the registry is the source of `key` in prefecture number `prefecture`.
    pub fn registry_from(&self, key: SwitchKey, prefecture: u8) -> NaiveDate {
        self.overrides
            .get(&(key, prefecture))
            .copied()
            .unwrap_or_else(|| key.default_from(prefecture))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_seed_schedule_and_rows_override_them() {
        let mut s = Switches::default();
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        assert_eq!(s.registry_from(SwitchKey::NewPositives, 13), d(2021, 5, 17));
        assert_eq!(s.registry_from(SwitchKey::NewBySexAge, 13), d(2021, 4, 8));
        assert_eq!(
            s.registry_from(SwitchKey::NewBySexAge, 27),
            d(2021, 2, 16),
            "Osaka moved first"
        );
        assert_eq!(
            s.registry_from(SwitchKey::NewBySexAge, 47),
            d(2021, 3, 16),
            "Okinawa in March"
        );
        s.set(SwitchKey::Severe, 13, d(2022, 1, 1));
        assert_eq!(s.registry_from(SwitchKey::Severe, 13), d(2022, 1, 1));
        assert_eq!(s.registry_from(SwitchKey::Severe, 14), follow_up_default());
        assert!(SwitchKey::parse("clusters").unwrap_err().en.contains("new_positives"));
    }
}
