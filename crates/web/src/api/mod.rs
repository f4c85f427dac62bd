//! The JSON API under `/api`, plus `/healthz`. One module per area; handlers check the policy
//! first, then touch storage, and answer with view types that document themselves in OpenAPI.

pub mod accounts;
pub mod audit;
pub mod clusters;
pub mod follow_up;
pub mod imports;
pub mod notifications;
pub mod orgs;
pub mod statistics;
pub mod system;

use todoke_domain::codes::CodeError;
use todoke_domain::policy::PlaceFilter;
use todoke_domain::{HealthCentreCode, Message, PrefectureCode};

use crate::error::AppError;

/// Keyset paging: `limit` rows (default 100, at most 1000) after the `after` cursor.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Return rows after this cursor (the `next` value of the previous page).
    pub after: Option<String>,
    /// Rows per page, 1 to 1000 (default 100).
    pub limit: Option<i64>,
}

impl PageQuery {
    pub fn limit(&self) -> Result<i64, AppError> {
        match self.limit {
            None => Ok(100),
            Some(n @ 1..=1000) => Ok(n),
            Some(_) => Err(AppError::invalid_field(
                "limit",
                Message::fixed("limit は1〜1000で指定してください", "limit must be between 1 and 1000"),
            )),
        }
    }

    /// The cursor of a list ordered by number (ids, sequence numbers); 0 when absent.
    pub fn after_number(&self) -> Result<i64, AppError> {
        match self.after.as_deref() {
            None => Ok(0),
            Some(a) => a.parse::<i64>().map_err(|_| {
                AppError::invalid_field(
                    "after",
                    Message::fixed("after は数値で指定してください", "after must be a number"),
                )
            }),
        }
    }

    /// The cursor of a list ordered by code, checked to be a code before it reaches a query.
    pub fn after_code<T>(&self, parse: fn(&str) -> Result<T, CodeError>) -> Result<Option<String>, AppError> {
        match self.after.as_deref() {
            None => Ok(None),
            Some(a) => parse(a)
                .map(|_| Some(a.to_owned()))
                .map_err(crate::error::field("after")),
        }
    }
}

/// One page of a list, with the cursor of the next page if there is one.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ListPage<T> {
    pub items: Vec<T>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub next: Option<String>,
}

impl<T> ListPage<T> {
    /// Builds a page from up to `limit + 1` fetched rows: the extra row only signals more.
    pub fn from_rows(mut rows: Vec<T>, limit: i64, cursor: impl Fn(&T) -> String) -> ListPage<T> {
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next = if more { rows.last().map(&cursor) } else { None };
        ListPage { items: rows, next }
    }
}

/// Narrows the caller's scope filter by what the query asks; a request outside the scope simply
/// matches nothing.
pub(crate) fn narrow(
    scope: PlaceFilter,
    prefecture: Option<PrefectureCode>,
    health_centre: Option<HealthCentreCode>,
) -> Option<PlaceFilter> {
    fn pick<T: PartialEq>(mine: Option<T>, asked: Option<T>) -> Result<Option<T>, ()> {
        match (mine, asked) {
            (Some(m), Some(a)) if m != a => Err(()),
            (m, a) => Ok(m.or(a)),
        }
    }
    Some(PlaceFilter {
        prefecture: pick(scope.prefecture, prefecture).ok()?,
        health_centre: pick(scope.health_centre, health_centre).ok()?,
        institution: scope.institution,
    })
}

/// Parses an optional query value with `parse`; a bad value names `name`.
pub(crate) fn optional<T>(
    value: Option<&str>,
    name: &str,
    parse: fn(&str) -> Result<T, CodeError>,
) -> Result<Option<T>, AppError> {
    value.map(parse).transpose().map_err(crate::error::field(name))
}
