//! Reference data and the organisation tree: prefectures (fixed, by migration), health centres
//! (保健所) and medical institutions (医療機関), managed by administrators.

use chrono::{DateTime, Utc};
use todoke_domain::policy::PlaceFilter;
use todoke_domain::{HealthCentreCode, InstitutionCode, Message, PrefectureCode};

use crate::audit::{AuditContext, AuditEvent, AuditTx};
use crate::{Backend, Db, Result, StorageError, dispatch, dispatch_write, now};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct Prefecture {
    pub code: String,
    pub name_ja: String,
    pub name_en: String,
    /// 2020 census population, the default denominator of "per 100,000" indicators.
    pub population_2020: i64,
    /// 2019-10-01 estimate, for reproducing 2020-21 figures.
    pub population_2019: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct HealthCentre {
    pub code: String,
    pub prefecture: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct Institution {
    pub code: String,
    pub health_centre: String,
    pub prefecture: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewHealthCentre {
    pub code: HealthCentreCode,
    pub prefecture: PrefectureCode,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct NewInstitution {
    pub code: InstitutionCode,
    pub health_centre: HealthCentreCode,
    pub name: String,
}

/// A keyset page request: rows whose code sorts after `after`, at most `limit` of them.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub after: Option<String>,
    pub limit: i64,
}

fn check_name(name: &str) -> Result<String> {
    crate::clean_text(name, 1, 200, ("名称", "name"))
}

// Optional filters are written `CAST($n AS TEXT) IS NULL OR ...` so that PostgreSQL can type an
// unbound-looking parameter and SQLite accepts the same text.
macro_rules! health_centre_select {
    () => {
        "SELECT h.code, h.prefecture_code AS prefecture, h.name, h.created_at FROM health_centres h"
    };
}
macro_rules! institution_select {
    () => {
        "SELECT i.code, i.health_centre_code AS health_centre, h.prefecture_code AS prefecture, \
         i.name, i.created_at FROM institutions i JOIN health_centres h ON h.code = i.health_centre_code"
    };
}

impl Db {
    pub async fn prefectures(&self) -> Result<Vec<Prefecture>> {
        Ok(dispatch!(self, pool => {
            sqlx::query_as("SELECT code, name_ja, name_en, population_2020, population_2019 FROM prefectures ORDER BY code")
                .fetch_all(pool)
                .await?
        }))
    }

    pub async fn create_health_centre(&self, ctx: &AuditContext, new: &NewHealthCentre) -> Result<HealthCentre> {
        let name = check_name(&new.name)?;
        let created_at = now();
        dispatch_write!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query("INSERT INTO health_centres (code, prefecture_code, name, created_at) VALUES ($1, $2, $3, $4)")
                .bind(new.code.as_str())
                .bind(new.prefecture.to_string())
                .bind(&name)
                .bind(created_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| StorageError::from_constraint(
                    e,
                    Message::new(format!("保健所コード「{}」は既に登録されています", new.code), format!("health-centre code \"{}\" already exists", new.code)),
                    Message::new(format!("都道府県コード「{}」は存在しません", new.prefecture), format!("prefecture \"{}\" does not exist", new.prefecture)),
                ))?;
            tx.append_audit(ctx, AuditEvent::new("health_centre.create", "health_centre", &new.code)
                .with_detail(serde_json::json!({"prefecture": new.prefecture.to_string()}))).await?;
            tx.commit().await?;
        });
        Ok(HealthCentre {
            code: new.code.to_string(),
            prefecture: new.prefecture.to_string(),
            name,
            created_at,
        })
    }

    pub async fn health_centre(&self, code: &HealthCentreCode) -> Result<HealthCentre> {
        let sql = concat!(health_centre_select!(), " WHERE h.code = $1");
        let found: Option<HealthCentre> =
            dispatch!(self, pool => sqlx::query_as(sql).bind(code.as_str()).fetch_optional(pool).await?);
        found.ok_or(StorageError::NotFound)
    }

    /// Health centres matching the filter, in code order.
    pub async fn health_centres(&self, filter: &PlaceFilter, page: &Page) -> Result<Vec<HealthCentre>> {
        let sql = concat!(
            health_centre_select!(),
            " WHERE (CAST($1 AS TEXT) IS NULL OR h.prefecture_code = $1) \
             AND (CAST($2 AS TEXT) IS NULL OR h.code = $2) AND (CAST($3 AS TEXT) IS NULL OR h.code > $3) \
             ORDER BY h.code LIMIT $4"
        );
        Ok(dispatch!(self, pool => {
            sqlx::query_as(sql)
                .bind(filter.prefecture.map(|p| p.to_string()))
                .bind(filter.health_centre.as_ref().map(|c| c.as_str()))
                .bind(page.after.as_deref())
                .bind(page.limit)
                .fetch_all(pool)
                .await?
        }))
    }

    pub async fn create_institution(&self, ctx: &AuditContext, new: &NewInstitution) -> Result<Institution> {
        let name = check_name(&new.name)?;
        let created_at = now();
        let missing_hc = || {
            StorageError::Invalid(Message::new(
                format!("保健所「{}」は登録されていません", new.health_centre),
                format!("health centre \"{}\" does not exist", new.health_centre),
            ))
        };
        let prefecture: String = dispatch_write!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let prefecture: Option<String> = sqlx::query_scalar("SELECT prefecture_code FROM health_centres WHERE code = $1")
                .bind(new.health_centre.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            let prefecture = prefecture.ok_or_else(missing_hc)?;
            sqlx::query("INSERT INTO institutions (code, health_centre_code, name, created_at) VALUES ($1, $2, $3, $4)")
                .bind(new.code.as_str())
                .bind(new.health_centre.as_str())
                .bind(&name)
                .bind(created_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| StorageError::from_constraint(
                    e,
                    Message::new(format!("医療機関コード「{}」は既に登録されています", new.code), format!("institution code \"{}\" already exists", new.code)),
                    Message::new(format!("保健所「{}」は登録されていません", new.health_centre), format!("health centre \"{}\" does not exist", new.health_centre)),
                ))?;
            tx.append_audit(ctx, AuditEvent::new("institution.create", "institution", &new.code)
                .with_detail(serde_json::json!({"health_centre": new.health_centre.to_string()}))).await?;
            tx.commit().await?;
            prefecture
        });
        Ok(Institution {
            code: new.code.to_string(),
            health_centre: new.health_centre.to_string(),
            prefecture,
            name,
            created_at,
        })
    }

    pub async fn institution(&self, code: &InstitutionCode) -> Result<Institution> {
        let sql = concat!(institution_select!(), " WHERE i.code = $1");
        let found: Option<Institution> =
            dispatch!(self, pool => sqlx::query_as(sql).bind(code.as_str()).fetch_optional(pool).await?);
        found.ok_or(StorageError::NotFound)
    }

    /// Institutions matching the filter (and, if given, of one health centre), in code order.
    pub async fn institutions(&self, filter: &PlaceFilter, page: &Page) -> Result<Vec<Institution>> {
        let sql = concat!(
            institution_select!(),
            " WHERE (CAST($1 AS TEXT) IS NULL OR h.prefecture_code = $1) \
             AND (CAST($2 AS TEXT) IS NULL OR i.health_centre_code = $2) \
             AND (CAST($3 AS TEXT) IS NULL OR i.code = $3) AND (CAST($4 AS TEXT) IS NULL OR i.code > $4) \
             ORDER BY i.code LIMIT $5"
        );
        Ok(dispatch!(self, pool => {
            sqlx::query_as(sql)
                .bind(filter.prefecture.map(|p| p.to_string()))
                .bind(filter.health_centre.as_ref().map(|c| c.as_str()))
                .bind(filter.institution.as_ref().map(|c| c.as_str()))
                .bind(page.after.as_deref())
                .bind(page.limit)
                .fetch_all(pool)
                .await?
        }))
    }
}
