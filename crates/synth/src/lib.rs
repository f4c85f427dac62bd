//! Synthetic Japan (`todoke synth`): a deterministic national dataset that reproduces the real
//! epidemic. The municipal-published new positives equal MHLW's published series for every day
//! and prefecture (scaled for `small` and `tiny`); the registry's daily new positives equal it
//! from 2021-05-17 and are realistically incomplete and late before; from 2022-09-26 only the
//! notified groups are notifications and every positive is in the total-count reports.
//!
//! [`series`] holds the curve, [`model`] the epidemiological assumptions, [`generate`] turns
//! them into rows (pure), and [`synthesize`] loads them through the storage layer's bulk paths.
//! Every assumption is written down in docs/synthetic-data.md.

pub mod generate;
pub mod model;
pub mod names;
pub mod rng;
pub mod series;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Datelike;

use todoke_domain::PrefectureCode;
use todoke_storage::audit::AuditEvent;
use todoke_storage::bulk::{FollowUpOf, MunicipalFigures, NewTotal};
use todoke_storage::orgs::{NewHealthCentre, NewInstitution};
use todoke_storage::registry::{CaseChange, Investigation, NewNotification, WriteTx};
use todoke_storage::{AuditContext, Db, StorageError};

use crate::generate::{Aftermath, Announced, ClusterKey, Synthesized};

/// How much of Japan: `japan` is every positive, `small` one in a hundred, `tiny` one in a
/// thousand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Tiny,
    Small,
    Japan,
}

impl Scale {
    pub fn parse(s: &str) -> Option<Scale> {
        match s {
            "tiny" => Some(Scale::Tiny),
            "small" => Some(Scale::Small),
            "japan" => Some(Scale::Japan),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scale::Tiny => "tiny",
            Scale::Small => "small",
            Scale::Japan => "japan",
        }
    }

    /// Counts are divided by this (and rounded; see [`series::Series::scaled`]).
    pub fn denominator(self) -> u32 {
        match self {
            Scale::Tiny => 1000,
            Scale::Small => 100,
            Scale::Japan => 1,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub scale: Scale,
    /// Only these prefectures (all when `None`).
    pub prefectures: Option<Vec<PrefectureCode>>,
    pub seed: u64,
}

/// What was written, and how fast.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub positives: u64,
    pub notifications: u64,
    pub status_entries: u64,
    pub total_report_lines: u64,
    pub municipal_rows: u64,
    pub health_centres: u64,
    pub institutions: u64,
    pub withdrawn: u64,
    pub merged: u64,
    pub clusters: u64,
    pub clustered_cases: u64,
    pub contacts: u64,
    pub observations: u64,
    pub deaths_announced: i64,
    pub elapsed: Duration,
    /// Time spent writing each kind of row (generation excluded).
    pub notification_write_time: Duration,
    pub totals_write_time: Duration,
    /// Time of putting back what the load left out (indexes; foreign keys on PostgreSQL), with
    /// SQLite's closing checkpoint.
    pub index_build_time: Duration,
    /// Time spent committing during the load (on SQLite, each commit writes the WAL back).
    pub commit_time: Duration,
    /// Time of the duplicate merges and withdrawals (each audited, many per transaction).
    pub follow_up_time: Duration,
}

/// Progress of a load, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Positives generated so far and in all.
    pub done: u64,
    pub total: u64,
    /// Rows written so far (notifications, status entries, report lines).
    pub rows: u64,
    pub elapsed: Duration,
}

/// Notifications written per statement batch, and per transaction (commits keep the
/// write-ahead log small and let readers see progress).
const WRITE_BATCH: usize = 20_000;
const COMMIT_EVERY: u64 = 250_000;
/// Prefecture-days generated ahead of the writer: generating is much faster than writing, so
/// a few keep the writer busy, and each one waiting holds up to a day of a prefecture in memory.
const GENERATED_AHEAD: usize = 2;
/// Withdrawals and merges per transaction after the load.
const AFTERMATHS_PER_COMMIT: usize = 10_000;

/// Writes synthetic Japan into `db`, which must hold no notifications yet.
pub async fn synthesize(
    db: &Db,
    ctx: &AuditContext,
    options: &Options,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Summary, StorageError> {
    // Checked before the bulk-load mode, which takes indexes away for a while.
    if db.notification_count().await? > 0 {
        return Err(StorageError::Invalid(todoke_domain::Message::fixed(
            "合成データは発生届のないデータベースにだけ書き込めます",
            "synthetic data can only be written into a database without notifications",
        )));
    }
    db.set_bulk_load(true).await?;
    let result = load(db, ctx, options, progress).await;
    // A failed load reports its own error, not a later one from the reset.
    let reset = db.set_bulk_load(false).await;
    let summary = result?;
    reset?;
    Ok(summary)
}

async fn load(
    db: &Db,
    ctx: &AuditContext,
    options: &Options,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Summary, StorageError> {
    let started = Instant::now();
    let prefectures = db.prefectures().await?;
    let mut populations = [0i64; 47];
    for (i, p) in prefectures.iter().enumerate().take(47) {
        populations[i] = p.population_2020;
    }
    let centres = generate::centres_per_prefecture(&populations);
    let selected: Vec<usize> = match &options.prefectures {
        Some(list) => {
            let mut v: Vec<usize> = list.iter().map(|p| usize::from(p.number()) - 1).collect();
            v.sort_unstable();
            v.dedup();
            v
        }
        None => (0..47).collect(),
    };
    let orgs: Vec<generate::PrefectureOrgs> = selected
        .iter()
        .map(|&i| {
            let code = PrefectureCode::from_number(i as u8 + 1).expect("01..47");
            generate::prefecture_orgs(options.seed, code, &prefectures[i].name_ja, centres[i])
        })
        .collect();
    let mut summary = Summary::default();

    let mut tx = db.begin_write_tx().await?;
    let hcs: Vec<NewHealthCentre> = orgs
        .iter()
        .flat_map(|o| {
            o.health_centres.iter().map(|(code, name)| NewHealthCentre {
                code: code.clone(),
                prefecture: o.code,
                name: name.clone(),
            })
        })
        .collect();
    let institutions: Vec<NewInstitution> = orgs
        .iter()
        .flat_map(|o| {
            o.institutions.iter().map(|(code, hc, name)| NewInstitution {
                code: code.clone(),
                health_centre: o.health_centres[*hc].0.clone(),
                name: name.clone(),
            })
        })
        .collect();
    tx.insert_health_centres(&hcs).await?;
    tx.insert_institutions(&institutions).await?;
    summary.health_centres = hcs.len() as u64;
    summary.institutions = institutions.len() as u64;
    tx.audit(
        ctx,
        AuditEvent {
            action: "synth.organisations",
            record_type: "synth",
            record_id: None,
            detail: Some(serde_json::json!({"health_centres": hcs.len(), "institutions": institutions.len()})),
        },
    )
    .await?;
    tx.commit().await?;

    let series = series::Series::real().scaled(options.scale);
    let total: u64 = selected
        .iter()
        .map(|&p| series.counts.iter().map(|r| u64::from(r[p])).sum::<u64>())
        .sum();
    let quirks: Vec<generate::Quirks> = orgs.iter().map(|o| generate::quirks(options.seed, o.code)).collect();
    let mut pending: Vec<Synthesized> = Vec::with_capacity(WRITE_BATCH + 1000);
    let mut pending_totals: Vec<NewTotal> = Vec::new();
    let mut aftermaths: Vec<(String, Aftermath)> = Vec::new();
    let mut investigated: BTreeMap<ClusterKey, Vec<Synthesized>> = BTreeMap::new();
    let mut since_commit = 0u64;
    // Rows are generated on a thread of their own while this task writes the previous ones: on
    // two cores, generating and writing take about as long as the larger of the two.
    let (sender, mut generated) = tokio::sync::mpsc::channel(GENERATED_AHEAD);
    let generator = {
        let (orgs, quirks, series, seed) = (orgs.clone(), quirks.clone(), series.clone(), options.seed);
        tokio::task::spawn_blocking(move || generate_all(seed, &orgs, &quirks, &series, &sender))
    };
    // Bulk transactions: on PostgreSQL each writes on two connections at once.
    let written: Result<WriteTx, StorageError> = async {
        let mut tx = db.begin_bulk_write_tx().await?;
        while let Some(next) = generated.recv().await {
            let last_day = match next {
                Generated::PrefectureDay(count, out) => {
                    summary.positives += u64::from(count);
                    for s in out.notifications {
                        match s.cluster {
                            Some(key) => investigated.entry(key).or_default().push(s),
                            None => pending.push(s),
                        }
                    }
                    pending_totals.extend(out.totals);
                    false
                }
                Generated::DayEnd(day) => {
                    // A week's cases are all generated by its Saturday: the settings it linked
                    // cases to are then known to be clusters or not, and the held cases are
                    // written with their link.
                    let last = day + 1 == series.days();
                    if series.day(day).weekday() == chrono::Weekday::Sat || last {
                        form_clusters(&mut tx, &orgs, &mut investigated, &mut pending, &mut summary).await?;
                    }
                    progress(Progress {
                        done: summary.positives,
                        total,
                        rows: summary.notifications + summary.status_entries + summary.total_report_lines,
                        elapsed: started.elapsed(),
                    });
                    last
                }
            };
            if pending.len() >= WRITE_BATCH || (last_day && !pending.is_empty()) {
                since_commit += write_notifications(&mut tx, &mut pending, &mut aftermaths, &mut summary).await?;
            }
            if pending_totals.len() >= WRITE_BATCH || (last_day && !pending_totals.is_empty()) {
                let t = Instant::now();
                tx.insert_new_totals(&pending_totals).await?;
                summary.totals_write_time += t.elapsed();
                summary.total_report_lines += pending_totals.len() as u64;
                since_commit += pending_totals.len() as u64;
                pending_totals.clear();
            }
            if since_commit >= COMMIT_EVERY {
                let t = Instant::now();
                tx.commit().await?;
                summary.commit_time += t.elapsed();
                tx = db.begin_bulk_write_tx().await?;
                since_commit = 0;
            }
        }
        Ok(tx)
    }
    .await;
    // A failed write stops the generator at its next row (its channel is closed).
    drop(generated);
    let announced = match generator.await {
        Ok(announced) => announced,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("the generator was cancelled: {e}"),
    };
    let mut tx = written?;
    let mut municipal: Vec<MunicipalFigures> = Vec::new();
    for (k, o) in orgs.iter().enumerate() {
        let p = usize::from(o.code.number()) - 1;
        let days: Vec<(chrono::NaiveDate, u32)> = (0..series.days())
            .map(|d| (series.day(d), series.count(d, p)))
            .collect();
        let rows = announced[k].figures(o.code, &quirks[k], &days);
        summary.deaths_announced += rows.last().and_then(|r| r.deaths_cumulative).unwrap_or(0);
        municipal.extend(rows);
    }
    tx.upsert_municipal(&municipal).await?;
    summary.municipal_rows = municipal.len() as u64;
    tx.commit().await?;
    // Searches by name and phone (the duplicate check below among them) need their indexes.
    // The large page cache goes first: SQLite sorts an index's keys in as much memory as the
    // cache may take, and both at once came close to 2 GB at national scale.
    let t = Instant::now();
    db.set_bulk_load(false).await?;
    summary.index_build_time = t.elapsed();
    db.refresh_statistics().await?;

    // What investigations found (written with the cases): clusters, and for a sample contacts
    // and daily observations.
    let mut tx = db.begin_write_tx().await?;
    tx.audit(
        ctx,
        AuditEvent {
            action: "synth.investigations",
            record_type: "synth",
            record_id: None,
            detail: Some(serde_json::json!({
                "clusters": summary.clusters, "clustered_cases": summary.clustered_cases,
                "contacts": summary.contacts, "observations": summary.observations,
            })),
        },
    )
    .await?;
    tx.commit().await?;

    // What health centres did afterwards: merge the duplicates, withdraw the false positives.
    let t = Instant::now();
    let mut tx = db.begin_write_tx().await?;
    let duplicates: Vec<&str> = aftermaths
        .iter()
        .filter(|(_, a)| matches!(a, Aftermath::MergedInto(_)))
        .map(|(ext, _)| ext.as_str())
        .collect();
    tx.flag_possible_duplicates(&duplicates).await?;
    // Each withdrawal and merge is the one a health centre makes (checked, counted and audited
    // alike); many share a commit, and within it their counter changes and audit entries are
    // written together.
    for (n, chunk) in aftermaths.chunks(AFTERMATHS_PER_COMMIT).enumerate() {
        if n > 0 {
            tx.commit().await?;
            tx = db.begin_write_tx().await?;
        }
        let mut named: Vec<&str> = Vec::with_capacity(chunk.len() * 2);
        for (external_id, aftermath) in chunk {
            named.push(external_id);
            if let Aftermath::MergedInto(original) = aftermath {
                named.push(original);
            }
        }
        let ids = tx.notification_ids_by_external_id(&named).await?;
        let id_of = |external_id: &str| ids.get(external_id).copied().ok_or(StorageError::NotFound);
        let mut changes = Vec::with_capacity(chunk.len());
        for (external_id, aftermath) in chunk {
            match aftermath {
                Aftermath::Stays => {}
                Aftermath::Withdrawn(reason) => {
                    changes.push(CaseChange::Withdraw {
                        id: id_of(external_id)?,
                        reason,
                    });
                    summary.withdrawn += 1;
                }
                Aftermath::MergedInto(original) => {
                    changes.push(CaseChange::Merge {
                        id: id_of(external_id)?,
                        into: id_of(original)?,
                    });
                    summary.merged += 1;
                }
            }
        }
        tx.withdraw_and_merge(ctx, &changes).await?;
    }
    tx.commit().await?;
    summary.follow_up_time = t.elapsed();
    summary.elapsed = started.elapsed();
    let mut tx = db.begin_write_tx().await?;
    tx.audit(
        ctx,
        AuditEvent {
            action: "synth.load",
            record_type: "synth",
            record_id: None,
            detail: Some(serde_json::json!({
                "scale": options.scale.as_str(),
                "seed": options.seed,
                "prefectures": orgs.iter().map(|o| o.code.to_string()).collect::<Vec<_>>(),
                "positives": summary.positives,
                "notifications": summary.notifications,
                "status_entries": summary.status_entries,
                "total_report_lines": summary.total_report_lines,
                "municipal_rows": summary.municipal_rows,
            })),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(summary)
}

/// What the generator hands the writer: a prefecture's day (its positives and rows), then the
/// end of each day.
enum Generated {
    PrefectureDay(u32, generate::DayOutput),
    DayEnd(usize),
}

/// Generates every day of every prefecture in order, sending each as it is made; returns what
/// each prefecture announced. Stops early when the writer has stopped listening.
fn generate_all(
    seed: u64,
    orgs: &[generate::PrefectureOrgs],
    quirks: &[generate::Quirks],
    series: &series::Series,
    sender: &tokio::sync::mpsc::Sender<Generated>,
) -> Vec<Announced> {
    let mut announced: Vec<Announced> = orgs.iter().map(|_| Announced::new(series.days())).collect();
    for day in 0..series.days() {
        for (k, o) in orgs.iter().enumerate() {
            let count = series.count(day, usize::from(o.code.number()) - 1);
            let out = generate::prefecture_day(seed, o, series.first_day, day, count, &mut announced[k], &quirks[k]);
            if sender.blocking_send(Generated::PrefectureDay(count, out)).is_err() {
                return announced;
            }
        }
        if sender.blocking_send(Generated::DayEnd(day)).is_err() {
            return announced;
        }
    }
    announced
}

/// Creates a cluster for every held setting with at least [`generate::CLUSTER_MIN_CASES`] cases
/// in its week (registered by the health centre of its first case) and moves all held cases
/// to `pending`, linked to their cluster or, below the threshold, to none.
async fn form_clusters(
    tx: &mut WriteTx,
    orgs: &[generate::PrefectureOrgs],
    investigated: &mut BTreeMap<ClusterKey, Vec<Synthesized>>,
    pending: &mut Vec<Synthesized>,
    summary: &mut Summary,
) -> Result<(), StorageError> {
    for (key, mut cases) in std::mem::take(investigated) {
        if cases.len() >= generate::CLUSTER_MIN_CASES {
            let o = orgs
                .iter()
                .find(|o| o.code.number() == key.prefecture)
                .expect("a generated prefecture");
            let first = &cases[0].health_centre;
            let (hc_code, hc_name) = o
                .health_centres
                .iter()
                .find(|(code, _)| code.as_str() == first)
                .expect("a generated health centre");
            let first_case_date = cases
                .iter()
                .map(|s| s.draft.diagnosis_date.unwrap_or_else(|| s.draft.report_day()))
                .min()
                .expect("at least one case");
            let setting = todoke_domain::notification::ClusterSetting::ALL[key.setting];
            let label = setting.label().ja;
            let cluster = todoke_storage::clusters::NewCluster {
                health_centre: hc_code.clone(),
                setting,
                name: format!("{hc_name}管内 {label} {}", first_case_date.format("%Y年%-m月%-d日")),
                first_case_date,
            };
            let id = tx.insert_cluster(o.code, &cluster).await?;
            for s in &mut cases {
                s.investigation = Some((id, label.to_string()));
            }
            summary.clusters += 1;
            summary.clustered_cases += cases.len() as u64;
        }
        pending.extend(cases);
    }
    Ok(())
}

/// Writes the waiting notifications with their histories, contacts and observations; returns
/// the rows written.
async fn write_notifications(
    tx: &mut WriteTx,
    pending: &mut Vec<Synthesized>,
    aftermaths: &mut Vec<(String, Aftermath)>,
    summary: &mut Summary,
) -> Result<u64, StorageError> {
    let t = Instant::now();
    let rows: Vec<NewNotification> = pending
        .iter()
        .map(|s| NewNotification {
            draft: &s.draft,
            placement: &s.placement,
            health_centre: Some(s.health_centre.clone()),
            history: &s.history,
            investigation: s.investigation.as_ref().map(|(cluster_id, place)| Investigation {
                cluster_id: *cluster_id,
                infection_place: place,
            }),
        })
        .collect();
    // Synthetic external ids are unique by construction: a taken one fails the load.
    tx.insert_new_notifications(&rows).await?;
    drop(rows);
    let entries: u64 = pending.iter().map(|s| s.history.len() as u64).sum();
    let written = pending.len() as u64;
    summary.notifications += written;
    summary.status_entries += entries;
    let mut follow_ups = Vec::new();
    for s in pending.drain(..) {
        let external_id = s.draft.external_id.clone().expect("synthetic rows have ids");
        if let Some((contacts, observations)) = s.follow_up {
            follow_ups.push(FollowUpOf {
                external_id: external_id.clone(),
                contacts,
                observations,
                // Daily observations were mostly entered by the patients themselves (My HER-SYS).
                recorded_by: "patient".to_owned(),
            });
        }
        if s.aftermath != Aftermath::Stays {
            aftermaths.push((external_id, s.aftermath));
        }
    }
    // Written while the batch's pages are still in the cache.
    tx.insert_follow_ups(&follow_ups).await?;
    let contacts: u64 = follow_ups.iter().map(|f| f.contacts.len() as u64).sum();
    let observations: u64 = follow_ups.iter().map(|f| f.observations.len() as u64).sum();
    summary.contacts += contacts;
    summary.observations += observations;
    let extra = contacts + observations;
    summary.notification_write_time += t.elapsed();
    Ok(written + entries + extra)
}
