//! Synthetic Japan against the real curve, on both backends: the municipal-published new
//! positives equal the (scaled) MHLW series every day and prefecture; the registry equals it
//! from 2021-05-17 and falls short before; the live counters equal a rebuild; the same seed
//! gives the same data.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use sha2::{Digest, Sha256};
use todoke_domain::PrefectureCode;
use todoke_domain::counting::Measure;
use todoke_exchange::import::ImportKind;
use todoke_storage::testing::TestDb;
use todoke_storage::{AuditContext, Db};
use todoke_synth::series::Series;
use todoke_synth::{Options, Scale, model};

async fn load(db: &Db, scale: Scale, prefectures: Option<&[&str]>, seed: u64) -> todoke_synth::Summary {
    let options = Options {
        scale,
        prefectures: prefectures.map(|l| l.iter().map(|p| PrefectureCode::parse(p).unwrap()).collect()),
        seed,
    };
    todoke_synth::synthesize(db, &AuditContext::cli(), &options, &mut |_| {})
        .await
        .unwrap()
}

/// The registry's daily new positives per (day, prefecture): notifications until 2022-09-25,
/// total-count reports from 2022-09-26.
async fn registry_daily(db: &Db) -> BTreeMap<(NaiveDate, String), i64> {
    let regime = model::total_count_regime_from();
    let mut out = BTreeMap::new();
    for (key, n) in db.counters().await.unwrap() {
        let counts = match key.measure {
            Measure::NewPositive => key.day < regime,
            Measure::ReportedPositives => key.day >= regime,
            _ => false,
        };
        if counts {
            *out.entry((key.day, key.prefecture.to_string())).or_insert(0) += n;
        }
    }
    out
}

/// Checks the municipal figures against `expected` and the registry against them; returns the
/// registry's and the municipal totals before 2021-05-17.
async fn check_against_curve(db: &Db, expected: &Series, prefectures: &[usize]) -> (i64, i64) {
    let municipal = db.municipal_figures(None).await.unwrap();
    assert_eq!(
        municipal.len(),
        prefectures.len() * expected.days(),
        "one row per prefecture and day"
    );
    let registry = registry_daily(db).await;
    let switch = model::registry_complete_from();
    let (mut registry_before, mut municipal_before) = (0, 0);
    let mut cumulative = BTreeMap::new();
    for m in &municipal {
        let p: usize = m.prefecture_code.parse::<usize>().unwrap() - 1;
        assert!(
            prefectures.contains(&p),
            "only the chosen prefectures: {}",
            m.prefecture_code
        );
        let day_index = (m.report_date - expected.first_day).num_days() as usize;
        let real = i64::from(expected.count(day_index, p));
        assert_eq!(m.new_positives, Some(real), "{} {}", m.report_date, m.prefecture_code);
        let c = cumulative.entry(p).or_insert(0i64);
        *c += real;
        assert_eq!(
            m.cumulative_positives,
            Some(*c),
            "{} {}",
            m.report_date,
            m.prefecture_code
        );
        let reg = registry
            .get(&(m.report_date, m.prefecture_code.clone()))
            .copied()
            .unwrap_or(0);
        if m.report_date >= switch {
            assert_eq!(reg, real, "registry on {} in {}", m.report_date, m.prefecture_code);
        } else {
            registry_before += reg;
            municipal_before += real;
        }
    }
    (registry_before, municipal_before)
}

async fn tiny_follows_the_curve(db: &Db) {
    let summary = load(db, Scale::Tiny, None, 1).await;
    let expected = Series::real().scaled(Scale::Tiny);
    assert_eq!(summary.positives, expected.total());
    let (registry_before, municipal_before) = check_against_curve(db, &expected, &(0..47).collect::<Vec<_>>()).await;
    // Before the switch the registry is incomplete: coverage rose from about 40% to all.
    assert!(
        registry_before < municipal_before && registry_before * 2 > municipal_before,
        "registry {registry_before} of municipal {municipal_before} before 2021-05-17"
    );
    assert_eq!(summary.health_centres, 469);
    assert!(summary.withdrawn > 0 && summary.merged > 0, "{summary:?}");
    // Deaths of the real order: about 74,000 at full scale, so tens at 1/1000.
    assert!(
        (40..120).contains(&summary.deaths_announced),
        "{}",
        summary.deaths_announced
    );
    // The live counters written in bulk (and moved by merges and withdrawals) equal a rebuild.
    let live = db.counters().await.unwrap();
    db.rebuild_counters(&AuditContext::cli()).await.unwrap();
    assert_eq!(db.counters().await.unwrap(), live);
    // The audit chain holds the load, the merges and the withdrawals.
    // The organisations, the investigations, each merge and withdrawal, the load, the rebuild.
    let entries = 4 + (summary.merged + summary.withdrawn) as i64;
    assert_eq!(
        db.verify_audit().await.unwrap(),
        todoke_storage::audit::AuditVerdict::Intact { entries }
    );
    // A second load into the same database is refused and changes nothing.
    let before = db.notification_count().await.unwrap();
    let options = Options {
        scale: Scale::Tiny,
        prefectures: None,
        seed: 2,
    };
    let refused = todoke_synth::synthesize(db, &AuditContext::cli(), &options, &mut |_| {}).await;
    assert!(
        matches!(&refused, Err(todoke_storage::StorageError::Invalid(m)) if m.en.contains("without notifications")),
        "{refused:?}"
    );
    assert_eq!(db.notification_count().await.unwrap(), before);
}

todoke_storage::on_both_backends!(tiny_follows_the_curve);

#[tokio::test]
async fn japan_scale_tottori_and_shimane_equal_the_real_file() {
    let t = TestDb::sqlite().await.unwrap();
    let summary = load(&t.db, Scale::Japan, Some(&["31", "32"]), 1).await;
    let real = Series::real();
    assert_eq!(summary.positives, 143_971 + 169_951);
    check_against_curve(&t.db, &real, &[30, 31]).await;
    // Only those prefectures' health centres (a share of the 469 by population) exist.
    assert!((2..20).contains(&summary.health_centres), "{}", summary.health_centres);
    assert_eq!(summary.institutions, summary.health_centres * 8);
    // Investigations: clusters of at least five cases, contacts and observations for a sample.
    assert!(
        summary.clusters > 0 && summary.clustered_cases >= 5 * summary.clusters,
        "{summary:?}"
    );
    assert!(summary.contacts > 0 && summary.observations > 0, "{summary:?}");
    // Stored clusters carry their cases: every clustered case is linked (withdrawn and merged
    // ones are not counted), and each cluster is in a loaded prefecture.
    let clusters = t.db.clusters(None, 0, 100_000).await.unwrap();
    assert_eq!(clusters.len() as u64, summary.clusters);
    let linked: i64 = clusters.iter().map(|c| c.cases).sum();
    assert!(
        linked as u64 <= summary.clustered_cases && linked as u64 >= summary.clustered_cases * 99 / 100,
        "{linked} linked of {}",
        summary.clustered_cases
    );
    assert!(
        clusters
            .iter()
            .all(|c| ["31", "32"].contains(&c.prefecture_code.as_str()) && c.cases > 0)
    );
}

/// A checksum of everything a user could export, in id order.
async fn checksum(db: &Db) -> String {
    let mut hash = Sha256::new();
    for kind in [ImportKind::Notifications, ImportKind::Status, ImportKind::Totals] {
        let mut out = Vec::new();
        todoke_exchange::export::export(db, kind, None, &mut out).await.unwrap();
        hash.update(&out);
    }
    hash.update(format!("{:?}", db.municipal_figures(None).await.unwrap()));
    hash.update(format!("{:?}", db.counters().await.unwrap()));
    hex::encode(hash.finalize())
}

#[tokio::test]
async fn the_same_seed_gives_the_same_data() {
    let (a, b, c) = (
        TestDb::sqlite().await.unwrap(),
        TestDb::sqlite().await.unwrap(),
        TestDb::sqlite().await.unwrap(),
    );
    load(&a.db, Scale::Small, Some(&["32"]), 7).await;
    load(&b.db, Scale::Small, Some(&["32"]), 7).await;
    load(&c.db, Scale::Small, Some(&["32"]), 8).await;
    let (ha, hb, hc) = (checksum(&a.db).await, checksum(&b.db).await, checksum(&c.db).await);
    assert_eq!(ha, hb, "same seed, same data");
    assert_ne!(ha, hc, "another seed, other people (the curve stays the same)");
}

#[tokio::test]
async fn a_database_with_notifications_is_refused() {
    let t = TestDb::sqlite().await.unwrap();
    load(&t.db, Scale::Tiny, Some(&["31"]), 1).await;
    let options = Options {
        scale: Scale::Tiny,
        prefectures: None,
        seed: 1,
    };
    let err = todoke_synth::synthesize(&t.db, &AuditContext::cli(), &options, &mut |_| {})
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("without notifications") || format!("{err:?}").contains("without notifications"),
        "{err:?}"
    );
}

#[tokio::test]
async fn both_backends_hold_the_same_data() {
    let Some(pg) = TestDb::postgres().await.unwrap() else {
        eprintln!("TODOKE_TEST_POSTGRES_URL not set: skipped");
        return;
    };
    let lite = TestDb::sqlite().await.unwrap();
    // PostgreSQL loads by COPY, SQLite by multi-row statements: the exports must not differ.
    load(&pg.db, Scale::Small, Some(&["31"]), 3).await;
    load(&lite.db, Scale::Small, Some(&["31"]), 3).await;
    assert_eq!(checksum(&pg.db).await, checksum(&lite.db).await);
}
