//! Clusters (集団感染等) and the investigation links of notifications to them.

use chrono::{DateTime, NaiveDate, Utc};
use todoke_domain::notification::ClusterSetting;
use todoke_domain::{HealthCentreCode, Message, PrefectureCode};

use crate::audit::{AuditContext, AuditEvent, AuditTx};
use crate::{Backend, Db, Result, StorageError, dispatch, dispatch_write, now};

#[derive(Debug, Clone)]
pub struct NewCluster {
    pub health_centre: HealthCentreCode,
    pub setting: ClusterSetting,
    pub name: String,
    pub first_case_date: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Cluster {
    pub id: i64,
    pub prefecture_code: String,
    pub health_centre_code: String,
    pub setting: String,
    pub name: String,
    pub first_case_date: NaiveDate,
    pub created_at: DateTime<Utc>,
    /// Notifications linked to it (not withdrawn, not merged).
    pub cases: i64,
}

macro_rules! cluster_select {
    () => {
        "SELECT c.id, c.prefecture_code, c.health_centre_code, c.setting, c.name, c.first_case_date, c.created_at, \
         (SELECT COUNT(*) FROM notifications n WHERE n.cluster_id = c.id AND NOT n.withdrawn AND n.merged_into IS NULL) AS cases \
         FROM clusters c"
    };
}

impl Db {
    /// Registers a cluster found by a health centre; its prefecture is the health centre's.
    pub async fn create_cluster(&self, ctx: &AuditContext, new: &NewCluster) -> Result<i64> {
        let name = crate::clean_text(&new.name, 1, 200, ("名称", "name"))?;
        dispatch_write!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let pref: Option<String> = sqlx::query_scalar("SELECT prefecture_code FROM health_centres WHERE code = $1")
                .bind(new.health_centre.as_str()).fetch_optional(&mut *tx).await?;
            let Some(pref) = pref else {
                return Err(StorageError::Invalid(Message::new(
                    format!("保健所「{}」は登録されていません", new.health_centre),
                    format!("health centre \"{}\" does not exist", new.health_centre),
                )));
            };
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO clusters (prefecture_code, health_centre_code, setting, name, first_case_date, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id")
                .bind(&pref).bind(new.health_centre.as_str()).bind(new.setting.as_str()).bind(&name).bind(new.first_case_date).bind(now())
                .fetch_one(&mut *tx).await?;
            tx.append_audit(ctx, AuditEvent::new("cluster.create", "cluster", id)
                .with_detail(serde_json::json!({"setting": new.setting.as_str(), "health_centre": new.health_centre.as_str()}))).await?;
            tx.commit().await?;
            Ok(id)
        })
    }

    pub async fn cluster(&self, id: i64) -> Result<Cluster> {
        let row: Option<Cluster> = dispatch!(self, pool => sqlx::query_as(concat!(cluster_select!(), " WHERE c.id = $1")).bind(id).fetch_optional(pool).await?);
        row.ok_or(StorageError::NotFound)
    }

    /// Clusters of one prefecture (or all), by id.
    pub async fn clusters(
        &self,
        prefecture: Option<PrefectureCode>,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<Cluster>> {
        Ok(dispatch!(self, pool => {
            sqlx::query_as(concat!(cluster_select!(), " WHERE c.id > $1 AND (CAST($2 AS TEXT) IS NULL OR c.prefecture_code = $2) ORDER BY c.id LIMIT $3"))
                .bind(after_id)
                .bind(prefecture.map(|p| p.to_string()))
                .bind(limit)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Records what the investigation found for a notification: its cluster (or none) and the
    /// place of infection.
    pub async fn record_investigation(
        &self,
        ctx: &AuditContext,
        notification: i64,
        cluster: Option<i64>,
        infection_place: Option<&str>,
    ) -> Result<()> {
        let place = infection_place
            .map(|p| crate::clean_text(p, 1, 200, ("感染場所", "infection_place")))
            .transpose()?;
        dispatch_write!(self, pool => {
            let mut tx = pool.begin_write().await?;
            if let Some(c) = cluster {
                let found: Option<i64> = sqlx::query_scalar("SELECT id FROM clusters WHERE id = $1").bind(c).fetch_optional(&mut *tx).await?;
                if found.is_none() {
                    return Err(StorageError::Invalid(Message::new(format!("クラスター {c} は登録されていません"), format!("cluster {c} does not exist"))));
                }
            }
            let done = sqlx::query("UPDATE notifications SET cluster_id = $2, infection_place = $3, updated_at = $4 WHERE id = $1")
                .bind(notification).bind(cluster).bind(&place).bind(now()).execute(&mut *tx).await?;
            if done.rows_affected() == 0 {
                return Err(StorageError::NotFound);
            }
            tx.append_audit(ctx, AuditEvent::new("notification.investigation", "notification", notification)
                .with_detail(serde_json::json!({"cluster": cluster}))).await?;
            tx.commit().await?;
        });
        Ok(())
    }
}
