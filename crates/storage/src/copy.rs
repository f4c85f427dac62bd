//! PostgreSQL's bulk path: `COPY ... FROM STDIN` in CSV form for new notifications, their persons
//! and status histories. Text is always quoted, so an unquoted empty field is NULL and a quoted
//! one an empty string.
//!
//! Each COPY is streamed in pieces of about [`PIECE`] bytes, each sent as soon as it is full:
//! PostgreSQL parses one piece while this side formats the next, so the two sides work at once.
//! Formatting a whole batch before sending it left the server idle while the batch was
//! formatted and this side idle while the server parsed it (together under one core of two in a
//! national load, BENCHMARKS.md).

use std::fmt::Display;

use chrono::{DateTime, NaiveDate, Utc};
use todoke_domain::notification::{NotifiedGroup, Severity, Sex};

use crate::Result;
use crate::formatted::{Formatted, date_text, instant};
use crate::registry::{NewNotification, bulk_recorded_at, join_symptoms, phone_digits};

/// Notifications per COPY batch.
pub(crate) const COPY_ROWS: usize = 5_000;

/// Bytes formatted before they are sent: large enough that a send is one write, small enough
/// that the server starts on a batch long before all of it is formatted.
const PIECE: usize = 64 * 1024;

/// One CSV line being built.
struct Line<'a>(&'a mut String, bool);

impl Line<'_> {
    fn sep(&mut self) {
        if self.1 {
            self.0.push(',');
        }
        self.1 = true;
    }

    fn text(&mut self, v: Option<&str>) -> &mut Self {
        self.sep();
        if let Some(v) = v {
            self.0.push('"');
            let mut parts = v.split('"');
            self.0.push_str(parts.next().unwrap_or_default());
            for part in parts {
                self.0.push_str("\"\"");
                self.0.push_str(part);
            }
            self.0.push('"');
        }
        self
    }

    fn value(&mut self, v: Option<impl Display>) -> &mut Self {
        use std::fmt::Write;
        self.sep();
        if let Some(v) = v {
            write!(self.0, "{v}").expect("writing to a String");
        }
        self
    }

    /// A value already formatted (dates and instants; see [`crate::formatted`]).
    fn formatted<const N: usize>(&mut self, v: Option<&Formatted<N>>) -> &mut Self {
        self.sep();
        if let Some(v) = v {
            self.0.push_str(v.as_str());
        }
        self
    }

    fn date(&mut self, v: Option<NaiveDate>) -> &mut Self {
        self.formatted(v.map(date_text).as_ref())
    }

    fn time(&mut self, t: DateTime<Utc>) -> &mut Self {
        self.formatted(Some(&instant(t)))
    }

    fn end(&mut self) {
        self.0.push('\n');
        self.1 = false;
    }
}

/// Runs one COPY of `rows` rows, the `i`th written as a line by `line(i, …)`, streamed in
/// pieces (see the module's documentation). Rows go by position, not by iterator: an iterator
/// of borrowed rows held across the sends makes the future of every caller up to the web
/// routes fail to be `Send` (the compiler cannot prove its closures general over lifetimes).
async fn copy_streamed(
    conn: &mut sqlx::PgConnection,
    statement: &str,
    rows: usize,
    mut line: impl FnMut(usize, &mut Line<'_>),
) -> Result<()> {
    let mut copy = conn.copy_in_raw(statement).await?;
    let mut piece = String::with_capacity(PIECE + 4 * 1024);
    for i in 0..rows {
        line(i, &mut Line(&mut piece, false));
        if piece.len() >= PIECE {
            copy.send(piece.as_bytes()).await?;
            piece.clear();
        }
    }
    if !piece.is_empty() {
        copy.send(piece.as_bytes()).await?;
    }
    copy.finish().await?;
    Ok(())
}

/// Writes `batch` (ids already reserved) by three COPYs, calling `written` for each
/// notification while the server parses the lines before it (the caller counts it there, so
/// after an error here the transaction must be dropped: it holds counts of rows not written).
pub(crate) async fn notifications<'r>(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    batch: &[&'r NewNotification<'r>],
    person_ids: &[i64],
    notification_ids: &[i64],
    t: DateTime<Utc>,
    mut written: impl FnMut(&'r NewNotification<'r>),
) -> Result<()> {
    // Every row of a batch is stamped with the same instant: formatted once.
    let now = instant(t);
    copy_streamed(
        tx,
        "COPY persons (id, name, name_kana, sex, birth_date, occupation, postal_code, address, phone, phone_digits, created_at) \
         FROM STDIN (FORMAT csv)",
        batch.len(),
        |i, l| {
            let (row, person_id) = (batch[i], person_ids[i]);
            let p = &row.draft.person;
            l.value(Some(person_id))
                .text(p.name.as_deref())
                .text(p.name_kana.as_deref())
                .text(Some(p.sex.unwrap_or(Sex::Unknown).as_str()))
                .date(p.birth_date)
                .text(p.occupation.as_deref())
                .text(p.postal_code.as_deref())
                .text(p.address.as_deref())
                .text(p.phone.as_deref())
                .text(phone_digits(p.phone.as_deref()).as_deref())
                .formatted(Some(&now))
                .end();
        },
    )
    .await?;
    copy_streamed(
        tx,
        "COPY notifications (id, external_id, disease, case_type, reported_at, report_day, prefecture_code, health_centre_code, \
         institution_code, doctor_name, person_id, age, symptoms, spo2, diagnosis_method, first_visit_date, diagnosis_date, \
         infection_date, onset_date, death_date, infection_route, vaccinations, risk_factors, immunosuppressed, pregnant, severity, \
         needs_admission, notified_group, withdrawn, cluster_id, infection_place, updated_at, created_at) \
         FROM STDIN (FORMAT csv)",
        batch.len(),
        |i, l| {
            let (row, person_id, id) = (batch[i], person_ids[i], notification_ids[i]);
            let d = row.draft;
            l.value(Some(id))
                .text(d.external_id.as_deref())
                .text(Some(&d.disease))
                .text(Some(d.case_type.as_str()))
                .time(d.reported_at)
                .date(Some(d.report_day()))
                .text(Some(&row.placement.prefecture.to_string()))
                .text(row.health_centre.as_deref())
                .text(row.placement.institution.as_ref().map(|i| i.as_str()))
                .text(d.doctor_name.as_deref())
                .value(Some(person_id))
                .value(Some(d.age))
                .text(join_symptoms(&d.symptoms).as_deref())
                .value(d.spo2)
                .text(d.diagnosis_method.as_deref())
                .date(d.first_visit_date)
                .date(d.diagnosis_date)
                .date(d.infection_date)
                .date(d.onset_date)
                .date(d.death_date)
                .text(d.infection_route.as_deref())
                .text(d.vaccinations.as_deref())
                .text(d.risk_factors.as_deref())
                .value(d.immunosuppressed)
                .value(d.pregnant)
                .text(d.severity.map(Severity::as_str))
                .value(d.needs_admission)
                .text(d.notified_group.map(NotifiedGroup::as_str))
                .value(Some(d.withdrawn))
                .value(row.investigation.map(|i| i.cluster_id))
                .text(row.investigation.map(|i| i.infection_place))
                .formatted(Some(&now))
                .formatted(Some(&now))
                .end();
            written(row);
        },
    )
    .await?;
    // (notification, entry) positions of the status entries, in order.
    let entries: Vec<(usize, usize)> = batch
        .iter()
        .enumerate()
        .flat_map(|(n, row)| (0..row.history.len()).map(move |e| (n, e)))
        .collect();
    if !entries.is_empty() {
        copy_streamed(
            tx,
            "COPY status_history (notification_id, status, severity, effective_date, recorded_at) FROM STDIN (FORMAT csv)",
            entries.len(),
            |i, l| {
                let (n, e) = entries[i];
                let (id, e) = (notification_ids[n], &batch[n].history[e]);
                l.value(Some(id))
                    .text(Some(e.status.as_str()))
                    .text(e.severity.map(Severity::as_str))
                    .date(Some(e.effective))
                    .time(bulk_recorded_at(e.effective))
                    .end();
            },
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_quoted_and_missing_values_are_empty() {
        let mut s = String::new();
        Line(&mut s, false)
            .text(Some("a \"b\", c"))
            .text(None)
            .text(Some(""))
            .value(Some(42))
            .value(None::<i32>)
            .date(NaiveDate::from_ymd_opt(2021, 5, 17))
            .date(None)
            .end();
        assert_eq!(s, "\"a \"\"b\"\", c\",,\"\",42,,2021-05-17,\n");
    }
}
