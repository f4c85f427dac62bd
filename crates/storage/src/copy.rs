//! PostgreSQL's bulk path: `COPY ... FROM STDIN` in CSV form for new notifications, their persons
//! and status histories. Text is always quoted, so an unquoted empty field is NULL and a quoted
//! one an empty string.

use std::fmt::Display;

use chrono::{DateTime, Utc};
use todoke_domain::notification::{NotifiedGroup, Severity, Sex};

use crate::Result;
use crate::registry::{NewNotification, bulk_recorded_at, join_symptoms, phone_digits};

/// Notifications per COPY batch.
pub(crate) const COPY_ROWS: usize = 5_000;

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
            for c in v.chars() {
                if c == '"' {
                    self.0.push('"');
                }
                self.0.push(c);
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

    fn time(&mut self, t: DateTime<Utc>) -> &mut Self {
        self.value(Some(t.to_rfc3339()))
    }

    fn end(&mut self) {
        self.0.push('\n');
        self.1 = false;
    }
}

async fn copy(tx: &mut sqlx::PgConnection, statement: &str, data: String) -> Result<()> {
    let mut copy = tx.copy_in_raw(statement).await?;
    copy.send(data.into_bytes()).await?;
    copy.finish().await?;
    Ok(())
}

/// Writes `batch` (ids already reserved) by three COPYs.
pub(crate) async fn notifications(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    batch: &[&NewNotification<'_>],
    person_ids: &[i64],
    notification_ids: &[i64],
    t: DateTime<Utc>,
) -> Result<()> {
    let mut persons = String::with_capacity(batch.len() * 160);
    let mut notifications = String::with_capacity(batch.len() * 300);
    let mut history = String::with_capacity(batch.len() * 120);
    for ((row, person_id), id) in batch.iter().zip(person_ids).zip(notification_ids) {
        let p = &row.draft.person;
        let mut l = Line(&mut persons, false);
        l.value(Some(person_id))
            .text(p.name.as_deref())
            .text(p.name_kana.as_deref())
            .text(Some(p.sex.unwrap_or(Sex::Unknown).as_str()))
            .value(p.birth_date)
            .text(p.occupation.as_deref())
            .text(p.postal_code.as_deref())
            .text(p.address.as_deref())
            .text(p.phone.as_deref())
            .text(phone_digits(p.phone.as_deref()).as_deref())
            .time(t)
            .end();
        let d = row.draft;
        let mut l = Line(&mut notifications, false);
        l.value(Some(id))
            .text(d.external_id.as_deref())
            .text(Some(&d.disease))
            .text(Some(d.case_type.as_str()))
            .time(d.reported_at)
            .value(Some(d.report_day()))
            .text(Some(&row.placement.prefecture.to_string()))
            .text(row.health_centre.as_deref())
            .text(row.placement.institution.as_ref().map(|i| i.as_str()))
            .text(d.doctor_name.as_deref())
            .value(Some(person_id))
            .value(Some(d.age))
            .text(join_symptoms(&d.symptoms).as_deref())
            .value(d.spo2)
            .text(d.diagnosis_method.as_deref())
            .value(d.first_visit_date)
            .value(d.diagnosis_date)
            .value(d.infection_date)
            .value(d.onset_date)
            .value(d.death_date)
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
            .time(t)
            .time(t)
            .end();
        for e in row.history {
            let mut l = Line(&mut history, false);
            l.value(Some(id))
                .text(Some(e.status.as_str()))
                .text(e.severity.map(Severity::as_str))
                .value(Some(e.effective))
                .time(bulk_recorded_at(e.effective))
                .end();
        }
    }
    copy(
        tx,
        "COPY persons (id, name, name_kana, sex, birth_date, occupation, postal_code, address, phone, phone_digits, created_at) \
         FROM STDIN (FORMAT csv)",
        persons,
    )
    .await?;
    copy(
        tx,
        "COPY notifications (id, external_id, disease, case_type, reported_at, report_day, prefecture_code, health_centre_code, \
         institution_code, doctor_name, person_id, age, symptoms, spo2, diagnosis_method, first_visit_date, diagnosis_date, \
         infection_date, onset_date, death_date, infection_route, vaccinations, risk_factors, immunosuppressed, pregnant, severity, \
         needs_admission, notified_group, withdrawn, cluster_id, infection_place, updated_at, created_at) \
         FROM STDIN (FORMAT csv)",
        notifications,
    )
    .await?;
    if !history.is_empty() {
        copy(
            tx,
            "COPY status_history (notification_id, status, severity, effective_date, recorded_at) FROM STDIN (FORMAT csv)",
            history,
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
            .end();
        assert_eq!(s, "\"a \"\"b\"\", c\",,\"\",42,\n");
    }
}
