//! Publications from synthetic Japan, on the real storage: the open-data files equal the real
//! MHLW series for the loaded prefectures, the auditor passes, publications are reproducible,
//! immutable and comparable, and the first lines of every file are pinned by snapshots.

use chrono::NaiveDate;
use todoke_domain::PrefectureCode;
use todoke_statistics::opendata::{self, OpenDataFile};
use todoke_statistics::publication::{Publication, compare};
use todoke_storage::bulk::MunicipalFigures;
use todoke_storage::testing::TestDb;
use todoke_storage::{AuditContext, Db};
use todoke_synth::{Options, Scale};

fn final_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2023, 5, 8).unwrap()
}

async fn load(db: &Db, scale: Scale, prefectures: Option<&[&str]>) {
    let options = Options {
        scale,
        prefectures: prefectures.map(|l| l.iter().map(|p| PrefectureCode::parse(p).unwrap()).collect()),
        seed: 1,
    };
    todoke_synth::synthesize(db, &AuditContext::cli(), &options, &mut |_| {})
        .await
        .unwrap();
}

async fn render(db: &Db, p: &Publication, file: OpenDataFile) -> String {
    let names = todoke_statistics::area_names(db).await.unwrap();
    let mut out = Vec::new();
    opendata::write(file, p, &names, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// The real file: `(date, ALL, 47 prefectures)` per row.
fn real_series() -> Vec<(NaiveDate, Vec<i64>)> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../synth/data/mhlw_newly_confirmed_cases_daily.csv"
    ))
    .unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let mut f = l.split(',');
            let date = f.next().unwrap().parse().unwrap();
            (date, f.map(|v| v.trim().parse().unwrap()).collect())
        })
        .collect()
}

/// Parses a daily open-data file into `(date text, cells)` rows, checking the BOM and header.
fn parse_daily(text: &str) -> Vec<(String, Vec<String>)> {
    let body = text.strip_prefix('\u{feff}').expect("UTF-8 BOM");
    let mut lines = body.split('\n');
    let header = lines.next().unwrap();
    assert!(header.starts_with("Date,ALL,Hokkaido,Aomori,"), "{header}");
    assert!(header.ends_with(",Kagoshima,Okinawa"));
    assert!(body.ends_with('\n') && !body.contains('\r'), "LF line endings");
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut f = l.split(',').map(str::to_owned);
            (f.next().unwrap(), f.collect())
        })
        .collect()
}

#[tokio::test]
async fn japan_scale_tottori_and_shimane_equal_the_real_series_in_every_daily_file() {
    let t = TestDb::sqlite().await.unwrap();
    load(&t.db, Scale::Japan, Some(&["31", "32"])).await;
    let published = todoke_statistics::publish(&t.db, &AuditContext::cli(), final_day())
        .await
        .unwrap();
    let (_, p) = todoke_statistics::load_publication(&t.db, Some(published.id))
        .await
        .unwrap();
    let real = real_series();
    assert_eq!(real.len(), 1209);

    let new = parse_daily(&render(&t.db, &p, OpenDataFile::NewlyConfirmedCasesDaily).await);
    let per100k = parse_daily(&render(&t.db, &p, OpenDataFile::NewlyConfirmedCasesPer100kDaily).await);
    let cumulative = parse_daily(&render(&t.db, &p, OpenDataFile::ConfirmedCasesCumulativeDaily).await);
    assert_eq!(new.len(), 1209, "one row per day from 2020/1/16 to 2023/5/8");
    assert_eq!(new[0].0, "2020/1/16");
    assert_eq!(new[1208].0, "2023/5/8");
    let prefectures = t.db.prefectures().await.unwrap();
    let population = |code: &str| prefectures.iter().find(|p| p.code == code).unwrap().population_2020;
    for (column, code) in [(31usize, "31"), (32, "32")] {
        let pop = population(code);
        let mut running = 0i64;
        for (i, (date, values)) in real.iter().enumerate() {
            let expected = values[column];
            running += expected;
            assert_eq!(new[i].1[column], expected.to_string(), "{code} new positives on {date}");
            assert_eq!(
                cumulative[i].1[column],
                running.to_string(),
                "{code} cumulative on {date}"
            );
            let week: i64 = real[i.saturating_sub(6)..=i].iter().map(|(_, v)| v[column]).sum();
            let hundredths = todoke_statistics::compute::per_100k_hundredths(week, pop);
            assert_eq!(
                per100k[i].1[column],
                todoke_statistics::compute::render_hundredths(hundredths),
                "{code} per 100,000 on {date}"
            );
        }
    }
    // ALL here is Tottori plus Shimane.
    for (i, (_, values)) in real.iter().enumerate() {
        assert_eq!(new[i].1[0], (values[31] + values[32]).to_string());
    }

    let report = todoke_statistics::audit::audit(&p.indicators);
    assert!(
        report.passed(),
        "unproven cells: {:?}",
        &report.unproven[..report.unproven.len().min(5)]
    );
    assert!(
        published.summary.primary_suppressed > 0,
        "small prefectures have small cells"
    );
    assert_eq!(
        report.hidden,
        published.summary.primary_suppressed + published.summary.secondary_suppressed
    );
    assert_eq!(published.summary.unprotected, 0);
}

/// Publishes tiny synthetic Japan, where a few hundred small cells of the weeks around the
/// staggered switches of ③/④ find no protecting block (docs/indicators.md): allowed for
/// synthetic data only.
async fn publish_synthetic(db: &Db) -> todoke_statistics::Published {
    todoke_statistics::publish_keeping(db, &AuditContext::cli(), final_day(), true)
        .await
        .unwrap()
        .0
}

async fn publications_are_reproducible_immutable_and_comparable(db: &Db) {
    load(db, Scale::Tiny, None).await;
    let ctx = AuditContext::cli();
    // Publishing is refused while a small count would be unprotected.
    let refused = todoke_statistics::publish(db, &ctx, final_day()).await.unwrap_err();
    assert!(refused.to_string().contains("could not be protected"), "{refused}");
    assert!(db.publications().await.unwrap().is_empty(), "nothing was stored");
    let first = publish_synthetic(db).await;
    assert!(first.summary.unprotected > 0);
    let again = publish_synthetic(db).await;
    assert_ne!(first.id, again.id);
    assert_eq!(first.content_sha256, again.content_sha256, "same data, same content");
    let (a, pa) = todoke_statistics::load_publication(db, Some(first.id)).await.unwrap();
    let (_, pb) = todoke_statistics::load_publication(db, Some(again.id)).await.unwrap();
    assert_eq!(pa, pb);
    assert!(compare(&pa, &pb).is_empty());
    assert_eq!(
        pa.encode(),
        db.publication(Some(first.id)).await.unwrap().1,
        "decode ∘ encode is the identity"
    );

    // Stored publications cannot be changed or deleted.
    let update = match db {
        Db::Sqlite(_, w) => sqlx::query("UPDATE publications SET as_of = '2020-01-01'")
            .execute(w)
            .await
            .err(),
        Db::Postgres(p) => sqlx::query("UPDATE publications SET as_of = '2020-01-01'")
            .execute(p)
            .await
            .err(),
    };
    assert!(update.is_some(), "publications are immutable");
    let delete = match db {
        Db::Sqlite(_, w) => sqlx::query("DELETE FROM publications").execute(w).await.err(),
        Db::Postgres(p) => sqlx::query("DELETE FROM publications").execute(p).await.err(),
    };
    assert!(delete.is_some(), "publications cannot be deleted");

    // A revised municipal figure before the switch shows as a revision in the next publication
    // and nowhere in the earlier one.
    let day = NaiveDate::from_ymd_opt(2020, 8, 3).unwrap();
    let before = db
        .municipal_figures(Some(PrefectureCode::parse("13").unwrap()))
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.report_date == day)
        .unwrap();
    let mut tx = db.begin_write_tx().await.unwrap();
    tx.upsert_municipal(&[MunicipalFigures {
        new_positives: before.new_positives.map(|v| v + 7),
        ..before.clone()
    }])
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let revised = publish_synthetic(db).await;
    assert_ne!(revised.content_sha256, first.content_sha256);
    let (_, pc) = todoke_statistics::load_publication(db, Some(revised.id)).await.unwrap();
    let revisions = compare(&pa, &pc);
    let on_day: Vec<_> = revisions
        .iter()
        .filter(|r| r.series == "newly_confirmed_cases_daily" && r.date == day)
        .collect();
    assert_eq!(on_day.len(), 2, "Tokyo and ALL: {revisions:?}");
    assert!(on_day.iter().any(|r| r.area == "13"
        && r.before == before.new_positives.unwrap().to_string()
        && r.after == (before.new_positives.unwrap() + 7).to_string()));
    assert!(
        revisions.iter().any(|r| r.series == "confirmed_cases_cumulative_daily"),
        "the cumulative follows"
    );
    let (info, unchanged) = todoke_statistics::load_publication(db, Some(first.id)).await.unwrap();
    assert_eq!(info.content_sha256, first.content_sha256);
    assert_eq!(unchanged, pa, "the earlier publication stays as it was published");
    assert_eq!(a.as_of, final_day());
    let listed = db.publications().await.unwrap();
    assert_eq!(
        listed.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![revised.id, again.id, first.id]
    );
}

todoke_storage::on_both_backends!(publications_are_reproducible_immutable_and_comparable);

#[tokio::test]
async fn the_first_lines_of_every_open_data_file() {
    let t = TestDb::sqlite().await.unwrap();
    load(&t.db, Scale::Tiny, None).await;
    let published = publish_synthetic(&t.db).await;
    let (_, p) = todoke_statistics::load_publication(&t.db, Some(published.id))
        .await
        .unwrap();
    for file in OpenDataFile::ALL {
        let text = render(&t.db, &p, file).await;
        let weekly = matches!(
            file,
            OpenDataFile::NewlyConfirmedCasesDetailWeekly
                | OpenDataFile::SevereCasesDetailWeekly
                | OpenDataFile::DeathsDetailCumulativeWeekly
        );
        // Headers, the first rows, and a row of the 2021 summer wave (daily: 2021-08-20; weekly:
        // the week of 2021-08-15), where the values are not all zero.
        let lines: Vec<&str> = text.split('\n').collect();
        let wave = if weekly { 2 + 66 } else { 1 + 582 };
        let mut pinned: Vec<&str> = lines.iter().take(if weekly { 4 } else { 3 }).copied().collect();
        pinned.push(lines[wave]);
        insta::assert_snapshot!(file.stem(), pinned.join("\n"));
    }
}
