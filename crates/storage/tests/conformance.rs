//! The storage conformance suite: every storage operation, exercised identically on SQLite and,
//! when `TODOKE_TEST_POSTGRES_URL` is set, on PostgreSQL. A behaviour that differs between the
//! backends fails here.

use chrono::Duration;
use todoke_domain::audit::ChainBreak;
use todoke_domain::policy::PlaceFilter;
use todoke_domain::{HealthCentreCode, InstitutionCode, Login, PrefectureCode, Role, Scope, UserId};
use todoke_storage::accounts::{NewSession, NewUser, Throttle};
use todoke_storage::audit::{AuditEvent, AuditVerdict};
use todoke_storage::orgs::{NewHealthCentre, NewInstitution, Page};
use todoke_storage::{AuditContext, Db, StorageError, now};

// One test per backend from each `async fn(&Db)`.
todoke_storage::on_both_backends!(
    reference_data_is_migrated,
    meta_values_round_trip,
    organisations_form_a_tree,
    organisation_lists_follow_the_filter_and_pages,
    users_are_bound_to_existing_scopes,
    principals_resolve_scope_down_the_tree,
    sessions_live_expire_upgrade_and_end,
    api_tokens_authenticate_until_revoked,
    totp_steps_cannot_be_replayed,
    login_throttle_round_trips,
    codes_sort_by_bytes_on_both_backends,
    every_write_is_audited_and_chained,
    an_edited_audit_entry_is_detected,
    a_truncated_audit_log_is_detected,
    concurrent_audit_appends_keep_one_chain,
);

fn cli() -> AuditContext {
    AuditContext::cli()
}

fn pc(s: &str) -> PrefectureCode {
    PrefectureCode::parse(s).unwrap()
}
fn hc(s: &str) -> HealthCentreCode {
    HealthCentreCode::parse(s).unwrap()
}
fn ic(s: &str) -> InstitutionCode {
    InstitutionCode::parse(s).unwrap()
}

async fn seed_tree(db: &Db) {
    for (code, pref) in [("H13A", "13"), ("H13B", "13"), ("H27A", "27")] {
        db.create_health_centre(
            &cli(),
            &NewHealthCentre {
                code: hc(code),
                prefecture: pc(pref),
                name: format!("{code} 保健所"),
            },
        )
        .await
        .unwrap();
    }
    for (code, h) in [("I1", "H13A"), ("I2", "H13A"), ("I3", "H13B"), ("I4", "H27A")] {
        db.create_institution(
            &cli(),
            &NewInstitution {
                code: ic(code),
                health_centre: hc(h),
                name: format!("{code} クリニック"),
            },
        )
        .await
        .unwrap();
    }
}

async fn add_user(db: &Db, login: &str, role: Role, scope: Option<&str>) -> UserId {
    db.create_user(
        &cli(),
        &NewUser {
            login: Login::parse(login).unwrap(),
            role,
            scope_code: scope.map(str::to_owned),
            password_hash: "x".into(),
        },
    )
    .await
    .unwrap()
}

async fn reference_data_is_migrated(db: &Db) {
    let prefs = db.prefectures().await.unwrap();
    assert_eq!(prefs.len(), 47);
    assert_eq!(
        (
            prefs[0].code.as_str(),
            prefs[0].name_ja.as_str(),
            prefs[0].name_en.as_str()
        ),
        ("01", "北海道", "Hokkaido")
    );
    assert_eq!(prefs[46].name_en, "Okinawa");
    assert_eq!(
        prefs.iter().map(|p| p.population_2020).sum::<i64>(),
        126_146_099,
        "2020 census total"
    );
    assert_eq!(
        prefs.iter().map(|p| p.population_2019).sum::<i64>(),
        126_167_000,
        "2019 estimate total"
    );
    assert!(db.ping().await);
}

async fn meta_values_round_trip(db: &Db) {
    assert_eq!(db.meta("demo").await.unwrap(), None);
    db.set_meta("demo", "1").await.unwrap();
    db.set_meta("demo", "2").await.unwrap();
    assert_eq!(db.meta("demo").await.unwrap().as_deref(), Some("2"));
}

async fn organisations_form_a_tree(db: &Db) {
    seed_tree(db).await;
    let inst = db.institution(&ic("I3")).await.unwrap();
    assert_eq!((inst.health_centre.as_str(), inst.prefecture.as_str()), ("H13B", "13"));
    let dup = db
        .create_health_centre(
            &cli(),
            &NewHealthCentre {
                code: hc("H13A"),
                prefecture: pc("13"),
                name: "again".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&dup, StorageError::Conflict(m) if m.en.contains("already exists")),
        "{dup:?}"
    );
    let orphan = db
        .create_institution(
            &cli(),
            &NewInstitution {
                code: ic("I9"),
                health_centre: hc("NOPE"),
                name: "x".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&orphan, StorageError::Invalid(m) if m.ja.contains("NOPE")),
        "{orphan:?}"
    );
    let blank = db
        .create_health_centre(
            &cli(),
            &NewHealthCentre {
                code: hc("H01"),
                prefecture: pc("01"),
                name: "  ".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(blank, StorageError::Invalid(_)));
    assert!(
        matches!(db.institution(&ic("I9")).await, Err(StorageError::NotFound)),
        "a refused write leaves nothing behind"
    );
    assert!(matches!(
        db.health_centre(&hc("H01")).await,
        Err(StorageError::NotFound)
    ));
}

async fn organisation_lists_follow_the_filter_and_pages(db: &Db) {
    seed_tree(db).await;
    let all = Page {
        after: None,
        limit: 100,
    };
    let codes = |v: Vec<String>| v.join(",");
    let tokyo = PlaceFilter {
        prefecture: Some(pc("13")),
        ..Default::default()
    };
    let hcs = db.health_centres(&tokyo, &all).await.unwrap();
    assert_eq!(codes(hcs.into_iter().map(|h| h.code).collect()), "H13A,H13B");
    let insts = db.institutions(&tokyo, &all).await.unwrap();
    assert_eq!(codes(insts.into_iter().map(|i| i.code).collect()), "I1,I2,I3");
    let doctor = PlaceFilter {
        prefecture: Some(pc("13")),
        health_centre: Some(hc("H13A")),
        institution: Some(ic("I2")),
    };
    assert_eq!(
        codes(
            db.institutions(&doctor, &all)
                .await
                .unwrap()
                .into_iter()
                .map(|i| i.code)
                .collect()
        ),
        "I2"
    );
    assert_eq!(
        codes(
            db.health_centres(&doctor, &all)
                .await
                .unwrap()
                .into_iter()
                .map(|h| h.code)
                .collect()
        ),
        "H13A"
    );
    let first = db
        .institutions(&PlaceFilter::default(), &Page { after: None, limit: 2 })
        .await
        .unwrap();
    let next = db
        .institutions(
            &PlaceFilter::default(),
            &Page {
                after: Some(first[1].code.clone()),
                limit: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        codes(first.into_iter().chain(next).map(|i| i.code).collect()),
        "I1,I2,I3,I4"
    );
}

async fn users_are_bound_to_existing_scopes(db: &Db) {
    seed_tree(db).await;
    add_user(db, "doc1", Role::Doctor, Some("I1")).await;
    let try_add = |login: &'static str, role, scope: Option<&'static str>| async move {
        db.create_user(
            &cli(),
            &NewUser {
                login: Login::parse(login).unwrap(),
                role,
                scope_code: scope.map(Into::into),
                password_hash: "x".into(),
            },
        )
        .await
    };
    assert!(
        matches!(
            try_add("doc1", Role::Doctor, Some("I1")).await,
            Err(StorageError::Conflict(_))
        ),
        "login taken"
    );
    assert!(
        matches!(
            try_add("doc2", Role::Doctor, Some("I99")).await,
            Err(StorageError::Invalid(_))
        ),
        "unknown institution"
    );
    assert!(
        matches!(try_add("doc3", Role::Doctor, None).await, Err(StorageError::Invalid(_))),
        "doctor without scope"
    );
    assert!(
        matches!(
            try_add("nat1", Role::National, Some("13")).await,
            Err(StorageError::Invalid(_))
        ),
        "national with scope"
    );
    assert!(
        matches!(
            try_add("pref1", Role::Prefecture, Some("48")).await,
            Err(StorageError::Invalid(_))
        ),
        "no prefecture 48"
    );
    assert!(
        matches!(
            try_add("hc1", Role::HealthCentre, Some("I1")).await,
            Err(StorageError::Invalid(_))
        ),
        "an institution is not a health centre"
    );
    let users = db.users(0, 100).await.unwrap();
    assert_eq!(users.len(), 1, "refused accounts were not half-created");
    assert_eq!(
        (users[0].login.as_str(), users[0].scope.as_deref()),
        ("doc1", Some("I1"))
    );
}

async fn principals_resolve_scope_down_the_tree(db: &Db) {
    seed_tree(db).await;
    let doc = add_user(db, "doc1", Role::Doctor, Some("I3")).await;
    let hcu = add_user(db, "hc1", Role::HealthCentre, Some("H27A")).await;
    let pref = add_user(db, "pref1", Role::Prefecture, Some("13")).await;
    let nat = add_user(db, "nat1", Role::National, None).await;
    let adm = add_user(db, "adm1", Role::Admin, None).await;
    assert_eq!(
        db.principal(doc).await.unwrap().scope,
        Scope::Institution {
            institution: ic("I3"),
            health_centre: hc("H13B"),
            prefecture: pc("13")
        }
    );
    assert_eq!(
        db.principal(hcu).await.unwrap().scope,
        Scope::HealthCentre {
            health_centre: hc("H27A"),
            prefecture: pc("27")
        }
    );
    assert_eq!(
        db.principal(pref).await.unwrap().scope,
        Scope::Prefecture { prefecture: pc("13") }
    );
    assert_eq!(db.principal(nat).await.unwrap().scope, Scope::Nation);
    assert_eq!(db.principal(adm).await.unwrap().role, Role::Admin);
    db.set_user_disabled(&cli(), doc, true).await.unwrap();
    assert!(
        matches!(db.principal(doc).await, Err(StorageError::NotFound)),
        "a disabled account has no principal"
    );
    assert_eq!(db.user_id_by_login(&Login::parse("hc1").unwrap()).await.unwrap(), hcu);
    let creds = db.credentials(&Login::parse("doc1").unwrap()).await.unwrap().unwrap();
    assert!(creds.disabled);
}

fn new_session(user: UserId, token: &str, second: bool) -> NewSession {
    let t = now();
    NewSession {
        token_hash: token.into(),
        user_id: user,
        csrf_token: format!("csrf-{token}"),
        second_factor_done: second,
        idle_expires_at: t + Duration::minutes(30),
        absolute_expires_at: t + Duration::hours(12),
        client_addr: Some("127.0.0.1".into()),
    }
}

async fn sessions_live_expire_upgrade_and_end(db: &Db) {
    let user = add_user(db, "nat1", Role::National, None).await;
    db.create_session(&cli(), &new_session(user, "s1", false))
        .await
        .unwrap();
    let s = db.session("s1").await.unwrap().unwrap();
    assert_eq!(
        (s.principal.user_id, s.second_factor_done, s.csrf_token.as_str()),
        (user, false, "csrf-s1")
    );
    assert!(!s.user_has_totp);
    let later = now() + Duration::minutes(45);
    db.touch_session("s1", later).await.unwrap();
    assert_eq!(db.session("s1").await.unwrap().unwrap().idle_expires_at, later);
    db.upgrade_session(&cli(), "s1", &new_session(user, "s2", true))
        .await
        .unwrap();
    assert!(
        db.session("s1").await.unwrap().is_none(),
        "the pre-second-factor cookie is dead"
    );
    assert!(db.session("s2").await.unwrap().unwrap().second_factor_done);
    assert!(matches!(
        db.upgrade_session(&cli(), "s1", &new_session(user, "s3", true)).await,
        Err(StorageError::NotFound)
    ));
    db.delete_session(&cli(), "s2", user).await.unwrap();
    assert!(db.session("s2").await.unwrap().is_none());
    // Expiry sweep: one past its idle deadline, one live.
    let mut stale = new_session(user, "old", true);
    stale.idle_expires_at = now() - Duration::seconds(1);
    db.create_session(&cli(), &stale).await.unwrap();
    db.create_session(&cli(), &new_session(user, "live", true))
        .await
        .unwrap();
    assert_eq!(db.delete_expired_sessions(now()).await.unwrap(), 1);
    assert!(db.session("live").await.unwrap().is_some());
    // Disabling the account ends its sessions; so does a new password.
    db.set_password_hash(&cli(), user, "new").await.unwrap();
    assert!(db.session("live").await.unwrap().is_none());
}

async fn api_tokens_authenticate_until_revoked(db: &Db) {
    let a = add_user(db, "adm1", Role::Admin, None).await;
    let b = add_user(db, "nat1", Role::National, None).await;
    let id = db.create_api_token(&cli(), a, "hash-a", "ci").await.unwrap();
    let owner = db.token_owner("hash-a").await.unwrap().unwrap();
    assert_eq!(
        (owner.token_id, owner.principal.user_id, owner.last_used_at),
        (id, a, None)
    );
    let used = now();
    db.mark_token_used(id, used).await.unwrap();
    assert_eq!(
        db.token_owner("hash-a").await.unwrap().unwrap().last_used_at,
        Some(used)
    );
    assert!(db.token_owner("hash-x").await.unwrap().is_none());
    assert!(
        matches!(db.revoke_api_token(&cli(), b, id).await, Err(StorageError::NotFound)),
        "not someone else's token"
    );
    db.revoke_api_token(&cli(), a, id).await.unwrap();
    assert!(db.token_owner("hash-a").await.unwrap().is_none());
    let listed = db.api_tokens(a).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(
        listed[0].revoked_at.is_some(),
        "revoked tokens stay listed for the record"
    );
    let id2 = db.create_api_token(&cli(), b, "hash-b", "").await.unwrap();
    db.set_user_disabled(&cli(), b, true).await.unwrap();
    assert!(
        db.token_owner("hash-b").await.unwrap().is_none(),
        "a disabled account's token {id2} stops working"
    );
    db.set_user_disabled(&cli(), b, false).await.unwrap();
    assert!(
        db.token_owner("hash-b").await.unwrap().is_none(),
        "re-enabling does not revive old tokens"
    );
    assert!(db.principal(b).await.is_ok(), "the account itself is back");
    let bad = db.create_api_token(&cli(), a, "hash-c", "tab\there").await.unwrap_err();
    assert!(matches!(bad, StorageError::Invalid(m) if m.en.contains("control characters")));
}

async fn totp_steps_cannot_be_replayed(db: &Db) {
    let u = add_user(db, "nat1", Role::National, None).await;
    db.set_totp_secret(&cli(), u, Some("JBSWY3DPEHPK3PXP"), Some(3))
        .await
        .unwrap();
    assert!(
        db.credentials(&Login::parse("nat1").unwrap())
            .await
            .unwrap()
            .unwrap()
            .totp_secret
            .is_some()
    );
    assert!(
        !db.accept_totp_step(u, 3).await.unwrap(),
        "the enrolment code was consumed with the secret"
    );
    assert!(db.accept_totp_step(u, 5).await.unwrap());
    assert!(!db.accept_totp_step(u, 5).await.unwrap(), "same step twice");
    assert!(!db.accept_totp_step(u, 4).await.unwrap(), "an older step");
    assert!(db.accept_totp_step(u, 6).await.unwrap());
    db.set_totp_secret(&cli(), u, None, None).await.unwrap();
    assert!(
        db.accept_totp_step(u, 1).await.unwrap(),
        "removing the secret resets replay protection"
    );
}

async fn login_throttle_round_trips(db: &Db) {
    assert_eq!(db.throttle("login:x").await.unwrap(), None);
    let t = Throttle {
        failures: 3,
        window_started_at: now(),
        locked_until: Some(now() + Duration::minutes(5)),
    };
    let (before, after) = db
        .bump_throttle("login:x", now(), |prev| {
            assert_eq!(prev, None, "a new key starts from nothing");
            t.clone()
        })
        .await
        .unwrap();
    assert_eq!((before, after), (None, t.clone()));
    assert_eq!(db.throttle("login:x").await.unwrap(), Some(t.clone()));
    let (before, _) = db
        .bump_throttle("login:x", now(), |prev| Throttle {
            failures: 4,
            locked_until: None,
            ..prev.unwrap()
        })
        .await
        .unwrap();
    assert_eq!(before, Some(t));
    assert_eq!(db.throttle("login:x").await.unwrap().unwrap().failures, 4);
    db.clear_throttle("login:x").await.unwrap();
    assert_eq!(db.throttle("login:x").await.unwrap(), None);
    // Concurrent bumps are all counted: none reads a value another is about to overwrite.
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                let t = now();
                db.bump_throttle("addr:1", t, move |prev| {
                    let n = prev.map_or(0, |p| p.failures);
                    Throttle {
                        failures: n + 1,
                        window_started_at: t,
                        locked_until: None,
                    }
                })
                .await
                .unwrap()
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(db.throttle("addr:1").await.unwrap().unwrap().failures, 16);
}

async fn codes_sort_by_bytes_on_both_backends(db: &Db) {
    for code in ["hb", "HA", "H-1", "H_2", "h1"] {
        db.create_health_centre(
            &cli(),
            &NewHealthCentre {
                code: hc(code),
                prefecture: pc("01"),
                name: "x".into(),
            },
        )
        .await
        .unwrap();
    }
    let all = db
        .health_centres(&PlaceFilter::default(), &Page { after: None, limit: 10 })
        .await
        .unwrap();
    let order: Vec<String> = all.into_iter().map(|h| h.code).collect();
    assert_eq!(
        order,
        ["H-1", "HA", "H_2", "h1", "hb"],
        "byte order, as keyset paging assumes"
    );
    let after: Vec<String> = db
        .health_centres(
            &PlaceFilter::default(),
            &Page {
                after: Some("HA".into()),
                limit: 10,
            },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.code)
        .collect();
    assert_eq!(after, ["H_2", "h1", "hb"]);
    let bad = db
        .create_health_centre(
            &cli(),
            &NewHealthCentre {
                code: hc("H9"),
                prefecture: pc("01"),
                name: "a\u{0}b".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(bad, StorageError::Invalid(_)),
        "NUL refused on both backends, not a database error: {bad:?}"
    );
}

async fn every_write_is_audited_and_chained(db: &Db) {
    seed_tree(db).await; // 3 health centres + 4 institutions
    let u = add_user(db, "adm1", Role::Admin, None).await;
    db.create_api_token(&cli(), u, "h", "x").await.unwrap();
    let entries = db.audit_entries(0, 100).await.unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions.iter().filter(|a| **a == "health_centre.create").count(), 3);
    assert_eq!(actions.iter().filter(|a| **a == "institution.create").count(), 4);
    assert_eq!(&actions[7..], &["user.create", "api_token.create"]);
    assert!(entries.iter().all(|e| e.actor_role.as_deref() == Some("operator")));
    assert_eq!(entries[7].record_id.as_deref(), Some(u.to_string().as_str()));
    let seq = db
        .record_audit(&cli(), AuditEvent::new("notification.read", "notification", "42"))
        .await
        .unwrap();
    assert_eq!(seq, 10);
    assert_eq!(db.verify_audit().await.unwrap(), AuditVerdict::Intact { entries: 10 });
    assert_eq!(db.audit_entries(8, 100).await.unwrap().len(), 2, "paging by sequence");
}

/// Edits one stored entry the way an attacker with database access would: around the
/// append-only triggers.
async fn tamper(db: &Db, sql: &'static str) {
    match db {
        Db::Sqlite(pool, _) => {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("DROP TRIGGER IF EXISTS audit_log_no_update")
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query("DROP TRIGGER IF EXISTS audit_log_no_delete")
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query(sql).execute(&mut *tx).await.unwrap();
            tx.commit().await.unwrap();
        }
        Db::Postgres(pool) => {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("ALTER TABLE audit_log DISABLE TRIGGER USER")
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query(sql).execute(&mut *tx).await.unwrap();
            tx.commit().await.unwrap();
        }
    }
}

async fn an_edited_audit_entry_is_detected(db: &Db) {
    seed_tree(db).await;
    // The triggers refuse a plain edit.
    let refused = match db {
        Db::Sqlite(pool, _) => sqlx::query("UPDATE audit_log SET action = 'x' WHERE seq = 2")
            .execute(pool)
            .await
            .is_err(),
        Db::Postgres(pool) => sqlx::query("UPDATE audit_log SET action = 'x' WHERE seq = 2")
            .execute(pool)
            .await
            .is_err(),
    };
    assert!(refused, "the audit log is append-only");
    tamper(db, "UPDATE audit_log SET record_id = 'H99' WHERE seq = 4").await;
    assert_eq!(
        db.verify_audit().await.unwrap(),
        AuditVerdict::Broken(ChainBreak::ContentChanged { seq: 4 })
    );
}

async fn a_truncated_audit_log_is_detected(db: &Db) {
    seed_tree(db).await;
    tamper(db, "DELETE FROM audit_log WHERE seq = 7").await;
    assert_eq!(
        db.verify_audit().await.unwrap(),
        AuditVerdict::Truncated {
            last_seq: 6,
            head_seq: 7
        }
    );
    tamper(db, "DELETE FROM audit_log WHERE seq = 3").await;
    assert_eq!(
        db.verify_audit().await.unwrap(),
        AuditVerdict::Broken(ChainBreak::Gap { seq: 4, expected: 3 })
    );
}

async fn concurrent_audit_appends_keep_one_chain(db: &Db) {
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                db.record_audit(&cli(), AuditEvent::new("notification.read", "notification", i))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort();
    assert_eq!(seqs, (1..=24).collect::<Vec<i64>>());
    assert_eq!(db.verify_audit().await.unwrap(), AuditVerdict::Intact { entries: 24 });
}

/// A bulk load puts back at its end what it left out (the name and phone indexes; on
/// PostgreSQL also the other secondary indexes and the foreign keys of the tables written in
/// bulk); a load that stopped before that gets them back when the database is next opened.
/// Put back, each is defined exactly as its migration defined it, and a foreign key put back
/// still refuses a dangling reference.
async fn bulk_load_indexes_come_back(t: &todoke_storage::testing::TestDb) {
    let names: Vec<&str> = t.db.load_deferred().map(|d| d.name).collect();
    assert!(names.contains(&"persons_by_kana") && names.contains(&"persons_by_phone"));
    if t.db.backend_name() == "postgres" {
        assert!(names.contains(&"notifications_person_id_fkey"));
        assert!(names.contains(&"status_history_notification_id_fkey"));
    }
    let mut migrated = Vec::new();
    for name in &names {
        let definition = t.db.schema_definition(name).await.unwrap();
        assert!(definition.is_some(), "{name} after migrations");
        migrated.push(definition);
    }
    t.db.set_bulk_load(true).await.unwrap();
    for name in &names {
        assert!(
            t.db.schema_definition(name).await.unwrap().is_none(),
            "{name} is left out during a load"
        );
    }
    // The load stops here (a crash): opening the database again puts everything back, also
    // through a pool allowed one connection (PostgreSQL otherwise puts back on two at once).
    let one_connection = todoke_storage::ConnectOptions {
        max_connections: Some(1),
        acquire_timeout: std::time::Duration::from_secs(30),
    };
    let reopened = Db::connect_with(&t.url, &one_connection).await.unwrap();
    for (name, migrated) in names.iter().zip(&migrated) {
        assert_eq!(
            &reopened.schema_definition(name).await.unwrap(),
            migrated,
            "{name} after reopening"
        );
    }
    reopened.close().await;
    t.db.set_bulk_load(true).await.unwrap();
    t.db.set_bulk_load(false).await.unwrap();
    t.db.set_bulk_load(false).await.unwrap();
    for (name, migrated) in names.iter().zip(&migrated) {
        assert_eq!(
            &t.db.schema_definition(name).await.unwrap(),
            migrated,
            "{name} after the load ends"
        );
    }
    // Put back, the foreign keys hold: a status entry of a notification that does not exist
    // is refused.
    const DANGLING: &str = "INSERT INTO status_history (notification_id, status, effective_date, recorded_at) \
         VALUES (999999999, 'home', '2022-01-01', '2022-01-01T00:00:00Z')";
    let refused = match &t.db {
        Db::Sqlite(_, writer) => sqlx::query(DANGLING).execute(writer).await.map(|_| ()),
        Db::Postgres(pool) => sqlx::query(DANGLING).execute(pool).await.map(|_| ()),
    };
    let error = refused.expect_err("a dangling status entry was kept").to_string();
    assert!(error.to_lowercase().contains("foreign key"), "{error}");
}

#[tokio::test]
async fn bulk_load_indexes_come_back_on_sqlite() {
    let t = todoke_storage::testing::TestDb::sqlite().await.unwrap();
    bulk_load_indexes_come_back(&t).await;
}

#[tokio::test]
async fn bulk_load_indexes_come_back_on_postgres() {
    let Some(t) = todoke_storage::testing::TestDb::postgres().await.unwrap() else {
        eprintln!("TODOKE_TEST_POSTGRES_URL not set: PostgreSQL half skipped");
        return;
    };
    bulk_load_indexes_come_back(&t).await;
}
