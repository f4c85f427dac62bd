//! A running server with seeded organisations and one account (and token) per role.

use std::collections::HashMap;
use std::net::SocketAddr;

use reqwest::header::HeaderMap;
use todoke_domain::{HealthCentreCode, InstitutionCode, Login, PrefectureCode, Role};
use todoke_storage::accounts::NewUser;
use todoke_storage::orgs::{NewHealthCentre, NewInstitution};
use todoke_storage::testing::TestDb;
use todoke_storage::{AuditContext, Db};
use todoke_web::{AppState, ServerConfig, auth};

pub const PASSWORD: &str = "correct horse battery staple";

/// Which backend a test app runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The seeded callers: the public and one account per role. Own scope is Tokyo (13), health
/// centre H13, institution I13; "other" is Osaka (27), H27, I27.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Who {
    Public,
    Doctor,
    HealthCentre,
    Prefecture,
    National,
    Admin,
}

impl Who {
    pub const ALL: [Who; 6] = [
        Who::Public,
        Who::Doctor,
        Who::HealthCentre,
        Who::Prefecture,
        Who::National,
        Who::Admin,
    ];

    pub fn login(self) -> &'static str {
        match self {
            Who::Public => "",
            Who::Doctor => "doc.tokyo",
            Who::HealthCentre => "hc.tokyo",
            Who::Prefecture => "pref.tokyo",
            Who::National => "mhlw.analyst",
            Who::Admin => "ops.admin",
        }
    }

    fn role_scope(self) -> Option<(Role, Option<&'static str>)> {
        match self {
            Who::Public => None,
            Who::Doctor => Some((Role::Doctor, Some("I13"))),
            Who::HealthCentre => Some((Role::HealthCentre, Some("H13"))),
            Who::Prefecture => Some((Role::Prefecture, Some("13"))),
            Who::National => Some((Role::National, None)),
            Who::Admin => Some((Role::Admin, None)),
        }
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub db: Db,
    pub db_url: String,
    /// API token of each role (not of the public).
    pub tokens: HashMap<Who, String>,
    pub user_ids: HashMap<Who, i64>,
    /// A notification in the seeded users' own scope (Tokyo, H13, I13) and one outside (Osaka).
    pub own_notification: i64,
    pub other_notification: i64,
    pub client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _test_db: TestDb,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_on(Backend::Sqlite).await.expect("sqlite always runs")
    }

    /// A seeded app on `backend`; None when PostgreSQL is not configured.
    pub async fn spawn_on(backend: Backend) -> Option<TestApp> {
        TestApp::spawn_with(backend, ServerConfig::default()).await
    }

    pub async fn spawn_with(backend: Backend, config: ServerConfig) -> Option<TestApp> {
        let test_db = match backend {
            Backend::Sqlite => TestDb::sqlite().await.expect("sqlite test database"),
            Backend::Postgres => TestDb::postgres().await.expect("postgres test database")?,
        };
        let db = test_db.db.clone();
        seed_orgs(&db).await;
        let mut tokens = HashMap::new();
        let mut user_ids = HashMap::new();
        let password_hash = auth::hash_password(PASSWORD).unwrap();
        for who in Who::ALL {
            let Some((role, scope)) = who.role_scope() else {
                continue;
            };
            let new = NewUser {
                login: Login::parse(who.login()).unwrap(),
                role,
                scope_code: scope.map(Into::into),
                password_hash: password_hash.clone(),
            };
            let id = db.create_user(&AuditContext::cli(), &new).await.unwrap();
            let token = auth::new_api_token();
            db.create_api_token(&AuditContext::cli(), id, &auth::token_hash(&token), "test")
                .await
                .unwrap();
            tokens.insert(who, token);
            user_ids.insert(who, id.0);
        }
        let own_notification = file_notification(&db, true).await;
        let other_notification = file_notification(&db, false).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let state = AppState::new(db.clone(), config);
        if backend == Backend::Postgres {
            // As in production once started: token owners held in memory, so that every
            // PostgreSQL test also runs through the cache and its invalidation.
            todoke_storage::testing::until_caching(&state.token_owners).await;
        }
        let server = tokio::spawn(todoke_web::serve(listener, state, async {
            let _ = rx.await;
        }));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Some(TestApp {
            addr,
            db,
            db_url: test_db.url.clone(),
            tokens,
            user_ids,
            own_notification,
            other_notification,
            client,
            shutdown: Some(tx),
            server: Some(server),
            _test_db: test_db,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A request as `who` (bearer token for accounts, nothing for the public).
    pub fn request(&self, who: Who, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.client.request(method, self.url(path));
        match self.tokens.get(&who) {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    pub fn get(&self, who: Who, path: &str) -> reqwest::RequestBuilder {
        self.request(who, reqwest::Method::GET, path)
    }

    pub fn post(&self, who: Who, path: &str) -> reqwest::RequestBuilder {
        self.request(who, reqwest::Method::POST, path)
    }

    /// The JSON body of a GET (any status: callers that care about it use [`TestApp::get`]).
    pub async fn get_json(&self, who: Who, path: &str) -> serde_json::Value {
        self.get(who, path).send().await.unwrap().json().await.unwrap()
    }

    /// A client that keeps cookies, as a browser does (without following redirects).
    pub fn browser(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            h.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Files a notification straight into storage: in Tokyo at I13 (own) or in Osaka at I27.
pub async fn file_notification(db: &Db, own: bool) -> i64 {
    if own {
        file_notification_at(db, ("13", "H13", "I13")).await
    } else {
        file_notification_at(db, ("27", "H27", "I27")).await
    }
}

/// Files a notification straight into storage at (prefecture, health centre, institution).
pub async fn file_notification_at(db: &Db, (pref, hc, inst): (&str, &str, &str)) -> i64 {
    use todoke_domain::notification::{Intake, parse_notification};
    use todoke_storage::registry::{FileMode, Placement};
    static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let external_id = format!("seed-{pref}-{}", SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let fields: HashMap<String, String> = [
        ("external_id", external_id.as_str()),
        ("case_type", "confirmed"),
        ("reported_at", "2023-05-01T10:00:00+09:00"),
        ("prefecture", pref),
        ("health_centre", hc),
        ("institution", inst),
        ("name", "山田 花子"),
        ("name_kana", "ヤマダ ハナコ"),
        ("sex", "female"),
        ("birth_date", "1950-04-01"),
        ("phone", "03-1234-5678"),
        ("address", "東京都千代田区1-1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let now = todoke_storage::now();
    let intake = Intake {
        today: todoke_domain::dates::jst_day(now),
        now,
        require_external_id: false,
        require_prefecture: true,
    };
    let draft = parse_notification(&fields, &intake).unwrap();
    let placement = Placement {
        prefecture: draft.prefecture.unwrap(),
        health_centre: draft.health_centre.clone(),
        institution: draft.institution.clone(),
    };
    db.file_notification(&AuditContext::cli(), &draft, &placement, FileMode::CreateOnly)
        .await
        .unwrap()
        .id
}

async fn seed_orgs(db: &Db) {
    let ctx = AuditContext::cli();
    for (code, pref) in [("H13", "13"), ("H27", "27")] {
        let hc = NewHealthCentre {
            code: HealthCentreCode::parse(code).unwrap(),
            prefecture: PrefectureCode::parse(pref).unwrap(),
            name: format!("{code} 保健所"),
        };
        db.create_health_centre(&ctx, &hc).await.unwrap();
    }
    for (code, hc) in [("I13", "H13"), ("I13X", "H13"), ("I27", "H27")] {
        let inst = NewInstitution {
            code: InstitutionCode::parse(code).unwrap(),
            health_centre: HealthCentreCode::parse(hc).unwrap(),
            name: format!("{code} 医院"),
        };
        db.create_institution(&ctx, &inst).await.unwrap();
    }
}

/// The JSON error body's fields.
pub async fn error_of(resp: reqwest::Response) -> (u16, String, String, serde_json::Value) {
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.expect("error bodies are JSON");
    let e = &body["error"];
    (
        status,
        e["code"].as_str().unwrap_or_default().to_owned(),
        e["message"].as_str().unwrap_or_default().to_owned(),
        e["fields"].clone(),
    )
}

pub fn set_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}
