//! The follow-up of a case: close contacts (濃厚接触者) and daily health observations (健康観察).

use chrono::{DateTime, NaiveDate, Utc};
use todoke_domain::Message;

use crate::audit::{AuditContext, AuditEvent, AuditTx};
use crate::{Backend, Db, Result, StorageError, dispatch, dispatch_write, now};

#[derive(Debug, Clone)]
pub struct NewContact {
    pub name: String,
    pub name_kana: Option<String>,
    pub phone: Option<String>,
    pub relationship: Option<String>,
    pub last_exposure: NaiveDate,
    pub monitored_until: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Contact {
    pub id: i64,
    pub name: String,
    pub name_kana: Option<String>,
    pub phone: Option<String>,
    pub relationship: Option<String>,
    pub last_exposure: NaiveDate,
    pub monitored_until: NaiveDate,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewObservation {
    pub observed_on: NaiveDate,
    pub temperature: Option<f64>,
    pub spo2: Option<i64>,
    pub symptoms: Option<String>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Observation {
    pub id: i64,
    pub observed_on: NaiveDate,
    pub temperature: Option<f64>,
    pub spo2: Option<i64>,
    pub symptoms: Option<String>,
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
}

fn missing() -> StorageError {
    StorageError::NotFound
}

impl Db {
    pub async fn add_contact(&self, ctx: &AuditContext, notification: i64, new: &NewContact) -> Result<i64> {
        let name = crate::clean_text(&new.name, 1, 100, ("氏名", "name"))?;
        let relationship = new
            .relationship
            .as_deref()
            .map(|r| crate::clean_text(r, 1, 100, ("関係", "relationship")))
            .transpose()?;
        if new.monitored_until < new.last_exposure {
            return Err(StorageError::Invalid(Message::fixed(
                "健康観察の終了日が最終接触日より前です",
                "monitored_until is before last_exposure",
            )));
        }
        dispatch_write!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO contacts (notification_id, name, name_kana, phone, relationship, last_exposure, monitored_until, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id")
                .bind(notification).bind(&name).bind(&new.name_kana).bind(&new.phone).bind(&relationship)
                .bind(new.last_exposure).bind(new.monitored_until).bind(now())
                .fetch_one(&mut *tx).await
                .map_err(|e| StorageError::from_constraint(e, Message::fixed("重複しています", "duplicate"), Message::fixed("発生届がありません", "no such notification")))?;
            tx.append_audit(ctx, AuditEvent::new("contact.create", "notification", notification)
                .with_detail(serde_json::json!({"contact": id}))).await?;
            tx.commit().await?;
            Ok(id)
        })
    }

    pub async fn contacts(&self, notification: i64) -> Result<Vec<Contact>> {
        Ok(dispatch!(self, pool => {
            sqlx::query_as("SELECT id, name, name_kana, phone, relationship, last_exposure, monitored_until, created_at \
                            FROM contacts WHERE notification_id = $1 ORDER BY id")
                .bind(notification).fetch_all(pool).await?
        }))
    }

    pub async fn add_observation(
        &self,
        ctx: &AuditContext,
        notification: i64,
        new: &NewObservation,
        recorded_by: &str,
    ) -> Result<i64> {
        let symptoms = new
            .symptoms
            .as_deref()
            .map(|s| crate::clean_text(s, 1, 500, ("症状", "symptoms")))
            .transpose()?;
        dispatch_write!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM notifications WHERE id = $1").bind(notification).fetch_optional(&mut *tx).await?;
            exists.ok_or_else(missing)?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO observations (notification_id, observed_on, temperature, spo2, symptoms, recorded_by, recorded_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id")
                .bind(notification).bind(new.observed_on).bind(new.temperature).bind(new.spo2).bind(&symptoms).bind(recorded_by).bind(now())
                .fetch_one(&mut *tx).await?;
            tx.append_audit(ctx, AuditEvent::new("observation.create", "notification", notification)
                .with_detail(serde_json::json!({"observation": id}))).await?;
            tx.commit().await?;
            Ok(id)
        })
    }

    pub async fn observations(&self, notification: i64) -> Result<Vec<Observation>> {
        Ok(dispatch!(self, pool => {
            sqlx::query_as("SELECT id, observed_on, temperature, spo2, symptoms, recorded_by, recorded_at \
                            FROM observations WHERE notification_id = $1 ORDER BY observed_on, id")
                .bind(notification).fetch_all(pool).await?
        }))
    }
}

impl Db {
    /// Issues (or replaces) the patient's self-report code of a notification; stores its hash.
    pub async fn issue_self_report_code(
        &self,
        ctx: &AuditContext,
        notification: i64,
        code_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        dispatch_write!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM notifications WHERE id = $1").bind(notification).fetch_optional(&mut *tx).await?;
            exists.ok_or_else(missing)?;
            sqlx::query(
                "INSERT INTO self_report_codes (notification_id, code_hash, expires_at, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (notification_id) DO UPDATE SET code_hash = excluded.code_hash, expires_at = excluded.expires_at, created_at = excluded.created_at")
                .bind(notification).bind(code_hash).bind(expires_at).bind(now())
                .execute(&mut *tx).await?;
            tx.append_audit(ctx, AuditEvent::new("self_report.code_issue", "notification", notification)).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The notification (and its report day) a live self-report code belongs to.
    pub async fn self_report_target(&self, code_hash: &str, at: DateTime<Utc>) -> Result<Option<(i64, NaiveDate)>> {
        let row: Option<(i64, NaiveDate, DateTime<Utc>)> = dispatch!(self, pool => {
            sqlx::query_as("SELECT c.notification_id, n.report_day, c.expires_at FROM self_report_codes c \
                            JOIN notifications n ON n.id = c.notification_id WHERE c.code_hash = $1 AND NOT n.withdrawn AND n.merged_into IS NULL")
                .bind(code_hash).fetch_optional(pool).await?
        });
        Ok(row
            .filter(|(_, _, expires)| *expires > at)
            .map(|(id, day, _)| (id, day)))
    }
}
