//! Statistics and publication: the 11 indicators of DOMAIN.md section 4 computed from the live
//! counters and the municipal-published figures ([`inputs`], [`compute`]), the source switch
//! table ([`switch`]), the minimum publication rule with secondary suppression ([`suppress`])
//! and its independent auditor ([`audit`]), the difference indicator ([`difference`]), immutable
//! publications ([`publication`]) and the MHLW open-data files rendered from them
//! ([`opendata`]). The counting rules are written out in docs/indicators.md.

pub mod audit;
pub mod compute;
pub mod difference;
pub mod inputs;
pub mod model;
pub mod opendata;
pub mod publication;
pub mod suppress;
pub mod switch;

use chrono::NaiveDate;
use todoke_storage::Db;
use todoke_storage::audit::AuditContext;
use todoke_storage::publications::{NewPublication, PublicationInfo};

use crate::inputs::Inputs;
use crate::publication::{Publication, Summary};

/// The version of the counting, switching and suppression rules, recorded in every publication.
/// Change it whenever a rule changes what is published.
pub const RULES_VERSION: &str = "todoke-rules-2026-12-01";

/// Computes a publication from inputs: every series, then suppression.
pub fn build(inputs: &Inputs) -> (Publication, suppress::Outcome) {
    let mut indicators = compute::compute(inputs);
    let outcome = suppress::suppress(&mut indicators);
    (
        Publication {
            as_of: inputs.calendar.as_of,
            rules_version: RULES_VERSION.to_owned(),
            indicators,
        },
        outcome,
    )
}

/// What `publish` did, with its timings in milliseconds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Published {
    pub id: i64,
    pub content_sha256: String,
    pub summary: Summary,
    pub load_ms: u128,
    pub compute_ms: u128,
    pub store_ms: u128,
}

/// Makes and stores a publication from the data as of the end of the JST day `as_of`; refuses
/// (stores nothing) if suppression left a small count unprotected.
pub async fn publish(db: &Db, ctx: &AuditContext, as_of: NaiveDate) -> todoke_storage::Result<Published> {
    Ok(publish_keeping(db, ctx, as_of, false).await?.0)
}

/// [`publish`], also returning the publication (to render open data without reading it back).
/// `allow_unprotected` publishes even when suppression left small counts unprotected (their
/// number is recorded in the summary): for synthetic data only, such as the demo's.
pub async fn publish_keeping(
    db: &Db,
    ctx: &AuditContext,
    as_of: NaiveDate,
    allow_unprotected: bool,
) -> todoke_storage::Result<(Published, Publication)> {
    let t0 = std::time::Instant::now();
    let inputs = Inputs::load(db, as_of).await?;
    let t1 = std::time::Instant::now();
    let (publication, outcome) = build(&inputs);
    // Never store (and so never serve) a publication in which a small count could be derived.
    if outcome.unprotected > 0 && !allow_unprotected {
        tracing::error!(unprotected = outcome.unprotected, %as_of, "suppression left cells unprotected; nothing published");
        return Err(todoke_storage::StorageError::Invalid(
            todoke_domain::i18n::Message::new(
                format!(
                    "{}個の小さい値を秘匿で保護できなかったため、公表しませんでした",
                    outcome.unprotected
                ),
                format!(
                    "{} small counts could not be protected by suppression; nothing was published",
                    outcome.unprotected
                ),
            ),
        ));
    }
    let bytes = publication.encode();
    let sha = publication::content_sha256(&bytes);
    let mut summary = publication.summary();
    summary.unprotected = outcome.unprotected;
    let summary_json = serde_json::to_string(&summary).expect("a summary serialises");
    let t2 = std::time::Instant::now();
    let id = db
        .insert_publication(
            ctx,
            &NewPublication {
                as_of,
                rules_version: RULES_VERSION,
                content_sha256: &sha,
                summary: &summary_json,
                content: &bytes,
            },
        )
        .await?;
    let t3 = std::time::Instant::now();
    Ok((
        Published {
            id,
            content_sha256: sha,
            summary,
            load_ms: (t1 - t0).as_millis(),
            compute_ms: (t2 - t1).as_millis(),
            store_ms: (t3 - t2).as_millis(),
        },
        publication,
    ))
}

/// Reads a stored publication (the latest when `id` is `None`).
pub async fn load_publication(db: &Db, id: Option<i64>) -> todoke_storage::Result<(PublicationInfo, Publication)> {
    let (info, bytes) = db.publication(id).await?;
    let publication = Publication::decode(&bytes).map_err(|e| {
        tracing::error!(id = info.id, error = %e, "stored publication does not decode");
        todoke_storage::StorageError::Invalid(todoke_domain::i18n::Message::fixed(
            "公表データを読み込めません",
            "the publication cannot be read",
        ))
    })?;
    Ok((info, publication))
}

/// `ALL` and the 47 English prefecture names, in code order, as the open-data headers use them.
pub async fn area_names(db: &Db) -> todoke_storage::Result<Vec<String>> {
    let mut names = vec!["ALL".to_owned()];
    let mut prefs = db.prefectures().await?;
    prefs.sort_by(|a, b| a.code.cmp(&b.code));
    names.extend(prefs.into_iter().map(|p| p.name_en));
    Ok(names)
}
