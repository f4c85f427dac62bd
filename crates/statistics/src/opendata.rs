//! The open-data files of DOMAIN.md section 6, rendered from a publication exactly in the MHLW
//! format: UTF-8 with a BOM, LF line endings, dates `YYYY/M/D`, columns `Date,ALL,Hokkaido,...`,
//! the three columns per area of the inpatient file, two header rows and `Week` ranges in the
//! weekly sex/age files, `*` for suppressed cells. Each file is written row by row to any
//! writer.

use std::io::{self, Write};

use chrono::{Datelike, NaiveDate};
use todoke_domain::notification::ClusterSetting;

use crate::compute::render_hundredths;
use crate::model::{AREAS, COLUMNS, Cell, DailySeries, WeeklySeries, column_label};
use crate::publication::Publication;

/// Every open-data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenDataFile {
    NewlyConfirmedCasesDaily,
    NewlyConfirmedCasesPer100kDaily,
    ConfirmedCasesCumulativeDaily,
    SevereCasesDaily,
    DeathsCumulativeDaily,
    NumberOfDeathsDaily,
    RequiringInpatientCareEtcDaily,
    NewlyConfirmedCasesDetailWeekly,
    SevereCasesDetailWeekly,
    DeathsDetailCumulativeWeekly,
}

impl OpenDataFile {
    pub const ALL: [OpenDataFile; 10] = [
        OpenDataFile::NewlyConfirmedCasesDaily,
        OpenDataFile::NewlyConfirmedCasesPer100kDaily,
        OpenDataFile::ConfirmedCasesCumulativeDaily,
        OpenDataFile::SevereCasesDaily,
        OpenDataFile::DeathsCumulativeDaily,
        OpenDataFile::NumberOfDeathsDaily,
        OpenDataFile::RequiringInpatientCareEtcDaily,
        OpenDataFile::NewlyConfirmedCasesDetailWeekly,
        OpenDataFile::SevereCasesDetailWeekly,
        OpenDataFile::DeathsDetailCumulativeWeekly,
    ];

    /// The file name without `.csv`.
    pub fn stem(self) -> &'static str {
        match self {
            OpenDataFile::NewlyConfirmedCasesDaily => "newly_confirmed_cases_daily",
            OpenDataFile::NewlyConfirmedCasesPer100kDaily => "newly_confirmed_cases_per_100_thousand_population_daily",
            OpenDataFile::ConfirmedCasesCumulativeDaily => "confirmed_cases_cumulative_daily",
            OpenDataFile::SevereCasesDaily => "severe_cases_daily",
            OpenDataFile::DeathsCumulativeDaily => "deaths_cumulative_daily",
            OpenDataFile::NumberOfDeathsDaily => "number_of_deaths_daily",
            OpenDataFile::RequiringInpatientCareEtcDaily => "requiring_inpatient_care_etc_daily",
            OpenDataFile::NewlyConfirmedCasesDetailWeekly => "newly_confirmed_cases_detail_weekly",
            OpenDataFile::SevereCasesDetailWeekly => "severe_cases_detail_weekly",
            OpenDataFile::DeathsDetailCumulativeWeekly => "deaths_detail_cumulative_weekly",
        }
    }

    pub fn file_name(self) -> String {
        format!("{}.csv", self.stem())
    }

    pub fn from_stem(stem: &str) -> Option<OpenDataFile> {
        Self::ALL.into_iter().find(|f| f.stem() == stem)
    }
}

/// The code of a daily series, as used in revisions and the JSON API.
pub fn daily_series_code(s: DailySeries) -> &'static str {
    match s {
        DailySeries::NewPositives => "newly_confirmed_cases_daily",
        DailySeries::Per100kHundredths => "newly_confirmed_cases_per_100_thousand_population_daily",
        DailySeries::CumulativePositives => "confirmed_cases_cumulative_daily",
        DailySeries::Severe => "severe_cases_daily",
        DailySeries::DeathsCumulative => "deaths_cumulative_daily",
        DailySeries::RequiringInpatient => "requiring_inpatient_care_daily",
        DailySeries::Discharged => "discharged_or_released_cumulative_daily",
        DailySeries::ToBeConfirmed => "to_be_confirmed_daily",
    }
}

/// The code of a weekly series, as used in revisions and the JSON API.
pub fn weekly_series_code(s: WeeklySeries) -> &'static str {
    match s {
        WeeklySeries::NewBySexAge => "newly_confirmed_cases_detail_weekly",
        WeeklySeries::CumulativeBySexAge => "confirmed_cases_cumulative_detail_weekly",
        WeeklySeries::SevereBySexAge => "severe_cases_detail_weekly",
        WeeklySeries::DeathsBySexAge => "deaths_detail_cumulative_weekly",
        WeeklySeries::Clusters => "clusters_weekly",
    }
}

/// The header of a weekly column.
pub fn weekly_column_label(s: WeeklySeries, c: usize) -> String {
    match s {
        WeeklySeries::Clusters => ClusterSetting::ALL[c].as_str().to_owned(),
        _ => column_label(c),
    }
}

/// A cell as published in a daily series.
pub fn render_daily(s: DailySeries, cell: &Cell) -> String {
    match (s, cell.value) {
        (DailySeries::Per100kHundredths, Some(v)) if !cell.suppression.is_hidden() => render_hundredths(v),
        _ => cell.render(),
    }
}

/// `2020/1/16`.
pub fn mhlw_date(d: NaiveDate) -> String {
    format!("{}/{}/{}", d.year(), d.month(), d.day())
}

const BOM: &[u8] = "\u{feff}".as_bytes();

/// Writes one file of a publication. `area_names` holds `ALL` and the 47 English names in
/// prefecture order.
pub fn write(file: OpenDataFile, p: &Publication, area_names: &[String], out: &mut impl Write) -> io::Result<()> {
    assert_eq!(area_names.len(), AREAS, "ALL and 47 prefectures");
    out.write_all(BOM)?;
    let daily = |s: DailySeries, out: &mut dyn Write| -> io::Result<()> {
        writeln!(out, "Date,{}", area_names.join(","))?;
        let t = p.daily(s);
        let mut line = String::new();
        for d in 0..p.calendar().days() {
            line.clear();
            line.push_str(&mhlw_date(p.calendar().day(d)));
            for area in 0..AREAS {
                line.push(',');
                line.push_str(&render_daily(s, t.get(area, d)));
            }
            line.push('\n');
            out.write_all(line.as_bytes())?;
        }
        Ok(())
    };
    match file {
        OpenDataFile::NewlyConfirmedCasesDaily => daily(DailySeries::NewPositives, out),
        OpenDataFile::NewlyConfirmedCasesPer100kDaily => daily(DailySeries::Per100kHundredths, out),
        OpenDataFile::ConfirmedCasesCumulativeDaily => daily(DailySeries::CumulativePositives, out),
        OpenDataFile::SevereCasesDaily => daily(DailySeries::Severe, out),
        OpenDataFile::DeathsCumulativeDaily => daily(DailySeries::DeathsCumulative, out),
        OpenDataFile::NumberOfDeathsDaily => {
            // The day's deaths: the change of the cumulative count.
            writeln!(out, "Date,{}", area_names.join(","))?;
            let t = p.daily(DailySeries::DeathsCumulative);
            for d in 0..p.calendar().days() {
                let mut line = mhlw_date(p.calendar().day(d));
                for area in 0..AREAS {
                    line.push(',');
                    let now = t.get(area, d).value;
                    let before = if d == 0 { Some(0) } else { t.get(area, d - 1).value };
                    if let (Some(n), Some(b)) = (now, before) {
                        line.push_str(&(n - b).to_string());
                    }
                }
                line.push('\n');
                out.write_all(line.as_bytes())?;
            }
            Ok(())
        }
        OpenDataFile::RequiringInpatientCareEtcDaily => {
            let mut header = String::from("Date");
            for name in area_names {
                header.push_str(&format!(
                    ",({name}) Requiring inpatient care,({name}) Discharged from hospital or released from treatment,({name}) To be confirmed"
                ));
            }
            writeln!(out, "{header}")?;
            let series = [
                DailySeries::RequiringInpatient,
                DailySeries::Discharged,
                DailySeries::ToBeConfirmed,
            ];
            for d in 0..p.calendar().days() {
                let mut line = mhlw_date(p.calendar().day(d));
                for area in 0..AREAS {
                    for s in series {
                        line.push(',');
                        line.push_str(&p.daily(s).get(area, d).render());
                    }
                }
                line.push('\n');
                out.write_all(line.as_bytes())?;
            }
            Ok(())
        }
        OpenDataFile::NewlyConfirmedCasesDetailWeekly => weekly(WeeklySeries::NewBySexAge, p, area_names, out),
        OpenDataFile::SevereCasesDetailWeekly => weekly(WeeklySeries::SevereBySexAge, p, area_names, out),
        OpenDataFile::DeathsDetailCumulativeWeekly => weekly(WeeklySeries::DeathsBySexAge, p, area_names, out),
    }
}

fn weekly(s: WeeklySeries, p: &Publication, area_names: &[String], out: &mut impl Write) -> io::Result<()> {
    let mut row1 = String::from("Week");
    let mut row2 = String::new();
    for name in area_names {
        row1.push(',');
        row1.push_str(name);
        row1.push_str(&",".repeat(COLUMNS - 1));
        for c in 0..COLUMNS {
            row2.push(',');
            row2.push_str(&column_label(c));
        }
    }
    writeln!(out, "{row1}")?;
    writeln!(out, "{row2}")?;
    let t = p.weekly(s);
    let cal = p.calendar();
    for w in 0..cal.weeks() {
        let mut line = format!("{}~{}", mhlw_date(cal.week_start(w)), mhlw_date(cal.week_end(w)));
        for area in 0..AREAS {
            for c in 0..COLUMNS {
                line.push(',');
                line.push_str(&t.get(w, area, c).render());
            }
        }
        line.push('\n');
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}
