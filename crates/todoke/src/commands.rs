//! The commands of the `todoke` binary. Each opens the database (running migrations), does one
//! job through the storage layer, prints a short report and returns the exit code. Operator
//! commands are audited as `cli:$USER`.

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use todoke_domain::{HealthCentreCode, InstitutionCode, Login, PrefectureCode, Role};
use todoke_storage::accounts::NewUser;
use todoke_storage::audit::AuditVerdict;
use todoke_storage::orgs::{NewHealthCentre, NewInstitution};
use todoke_storage::{AuditContext, DEFAULT_DATABASE_URL, Db, StorageError, redact_url};
use todoke_web::auth;
use todoke_web::{AppState, ServerConfig};

static MAX_CONNECTIONS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Set once from the command line before any command runs.
pub fn set_max_connections(n: u32) {
    MAX_CONNECTIONS.store(n.max(1), std::sync::atomic::Ordering::Relaxed);
}

async fn connect(url: &str) -> anyhow::Result<Db> {
    let mut options = todoke_storage::ConnectOptions::default();
    let n = MAX_CONNECTIONS.load(std::sync::atomic::Ordering::Relaxed);
    if n > 0 {
        options.max_connections = Some(n);
    }
    Db::connect_with(url, &options)
        .await
        .with_context(|| format!("opening {}", redact_url(url)))
}

async fn open(database: Option<String>) -> anyhow::Result<Db> {
    connect(&database.unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned())).await
}

/// Prints an error; storage refusals carry a message in both languages.
pub fn report_error(e: &anyhow::Error) {
    match e.downcast_ref::<StorageError>() {
        Some(StorageError::Conflict(m) | StorageError::Invalid(m)) => {
            eprintln!("エラー: {}\nerror: {}", m.ja, m.en);
        }
        _ => eprintln!("error: {e:#}"),
    }
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Mark cookies Secure (when served over HTTPS).
    #[arg(long, env = "TODOKE_SECURE_COOKIES")]
    secure_cookies: bool,
    /// Trust X-Forwarded-For for client addresses (only behind a proxy that overwrites it).
    #[arg(long, env = "TODOKE_TRUST_FORWARDED_FOR")]
    trust_forwarded_for: bool,
    /// The most, in MiB, that uploads being received or imported may hold on disk together
    /// (temporary files in TMPDIR); an upload past it is refused (503 while others hold their
    /// share, 413 when larger than the whole).
    #[arg(long, env = "TODOKE_UPLOAD_SPOOL_MIB", default_value_t = ServerConfig::default().upload_spool_mib,
          value_parser = clap::value_parser!(u32).range(1..))]
    upload_spool_mib: u32,
}

impl ServeArgs {
    fn config(&self) -> ServerConfig {
        ServerConfig {
            secure_cookies: self.secure_cookies,
            trust_forwarded_for: self.trust_forwarded_for,
            upload_spool_mib: self.upload_spool_mib,
            ..ServerConfig::default()
        }
    }
}

async fn run_server(db: Db, args: &ServeArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("binding {}", args.bind))?;
    let addr = listener.local_addr()?;
    println!("todoke listening on http://{addr}  (database: {})", db.backend_name());
    tracing::info!(%addr, database = db.backend_name(), "serving");
    let state = AppState::new(db.clone(), args.config());
    todoke_web::serve(listener, state.clone(), todoke_web::shutdown_signal()).await?;
    state.stop_background_tasks().await;
    db.close().await;
    println!("todoke stopped");
    Ok(())
}

pub async fn serve(database: Option<String>, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let db = open(database).await?;
    run_server(db, &args).await?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    #[command(flatten)]
    serve: ServeArgs,
    /// How much synthetic data: tiny (1/1000), small (1/100) or japan (full scale).
    #[arg(long, default_value = "small", value_parser = parse_scale)]
    scale: todoke_synth::Scale,
}

fn parse_scale(s: &str) -> Result<todoke_synth::Scale, String> {
    todoke_synth::Scale::parse(s).ok_or_else(|| format!("\"{s}\": use tiny, small or japan"))
}

/// A comma-separated list of prefecture codes (one clap value).
#[derive(Debug, Clone)]
pub struct PrefectureList(Vec<PrefectureCode>);

fn parse_prefectures(s: &str) -> Result<PrefectureList, String> {
    s.split(',')
        .map(|code| PrefectureCode::parse(code).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()
        .map(PrefectureList)
}

#[derive(Debug, clap::Args)]
pub struct SynthArgs {
    /// tiny (1/1000 of the real counts), small (1/100) or japan (full scale).
    #[arg(long, value_parser = parse_scale)]
    scale: todoke_synth::Scale,
    /// Only these prefectures (JIS codes, comma-separated), e.g. 31,32.
    #[arg(long, value_parser = parse_prefectures)]
    prefectures: Option<PrefectureList>,
    /// The random seed: the same arguments give the same data.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// No progress line on standard error.
    #[arg(long)]
    quiet: bool,
}

pub async fn synth(database: Option<String>, args: SynthArgs) -> anyhow::Result<ExitCode> {
    let db = open(database).await?;
    let options = todoke_synth::Options {
        scale: args.scale,
        prefectures: args.prefectures.map(|l| l.0),
        seed: args.seed,
    };
    let summary = load_synthetic(&db, &options, !args.quiet).await?;
    print_synth_summary(&summary);
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Loads synthetic data with a progress line (rows/s and ETA) on standard error.
async fn load_synthetic(
    db: &Db,
    options: &todoke_synth::Options,
    show_progress: bool,
) -> anyhow::Result<todoke_synth::Summary> {
    let mut last_shown = std::time::Instant::now();
    let mut progress = move |p: todoke_synth::Progress| {
        if !show_progress || (last_shown.elapsed().as_millis() < 500 && p.done < p.total) {
            return;
        }
        last_shown = std::time::Instant::now();
        let secs = p.elapsed.as_secs_f64().max(0.001);
        let share = p.done as f64 / p.total.max(1) as f64;
        let eta = if share > 0.0 { secs / share - secs } else { 0.0 };
        eprint!(
            "\r{:>5.1}%  {} of {} positives  {:.0} rows/s  ETA {:.0} s   ",
            share * 100.0,
            p.done,
            p.total,
            p.rows as f64 / secs,
            eta
        );
        if p.done >= p.total {
            eprintln!();
        }
    };
    Ok(todoke_synth::synthesize(db, &AuditContext::cli(), options, &mut progress).await?)
}

fn print_synth_summary(s: &todoke_synth::Summary) {
    let secs = s.elapsed.as_secs_f64().max(0.001);
    let per_second = |rows: u64, t: std::time::Duration| rows as f64 / t.as_secs_f64().max(0.001);
    println!("synthetic data written in {secs:.1} s:");
    println!("  positives (municipal-published)  {}", s.positives);
    println!(
        "  health centres / institutions    {} / {}",
        s.health_centres, s.institutions
    );
    println!(
        "  notifications                    {} ({:.0} rows/s of writing, with persons and status entries)",
        s.notifications,
        per_second(s.notifications, s.notification_write_time)
    );
    println!("  status entries                   {}", s.status_entries);
    println!(
        "  total-count report lines         {} ({:.0} rows/s of writing)",
        s.total_report_lines,
        per_second(s.total_report_lines, s.totals_write_time)
    );
    println!("  municipal-published rows         {}", s.municipal_rows);
    println!(
        "  commits while loading            {:.1} s",
        s.commit_time.as_secs_f64()
    );
    println!(
        "  indexes (and keys) put back in   {:.1} s",
        s.index_build_time.as_secs_f64()
    );
    println!(
        "  withdrawn / merged duplicates    {} / {} ({:.1} s)",
        s.withdrawn,
        s.merged,
        s.follow_up_time.as_secs_f64()
    );
    println!(
        "  clusters (cases) / contacts / observations  {} ({}) / {} / {}",
        s.clusters, s.clustered_cases, s.contacts, s.observations
    );
    println!("  deaths announced (cumulative)    {}", s.deaths_announced);
    println!(
        "  overall                          {:.0} rows/s",
        (s.notifications + s.status_entries + s.total_report_lines + s.municipal_rows) as f64 / secs
    );
}

/// The demo database, kept apart from the default database so a demo never replaces real data.
const DEMO_DATABASE_URL: &str = "sqlite://./todoke-data/demo.db";

/// Removes a previous demo database file. Refuses a file that is not marked as a demo.
async fn reset_demo_file(url: &str) -> anyhow::Result<()> {
    let Some(path) = url.strip_prefix("sqlite://") else {
        return Ok(());
    };
    if !std::path::Path::new(path).exists() {
        return Ok(());
    }
    let db = Db::connect(url).await?;
    let is_demo = db.meta("demo").await?.as_deref() == Some("1");
    db.close().await;
    anyhow::ensure!(
        is_demo,
        "{path} exists and is not a demo database; refusing to replace it (choose another --database)"
    );
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{path}{suffix}");
        if std::path::Path::new(&file).exists() {
            std::fs::remove_file(&file).with_context(|| format!("removing {file}"))?;
        }
    }
    Ok(())
}

struct DemoAccount {
    login: &'static str,
    role: Role,
    scope: Option<&'static str>,
}

const DEMO_ACCOUNTS: [DemoAccount; 5] = [
    DemoAccount {
        login: "demo.doctor",
        role: Role::Doctor,
        scope: Some("MI1300101"),
    },
    DemoAccount {
        login: "demo.hc",
        role: Role::HealthCentre,
        scope: Some("HC13001"),
    },
    DemoAccount {
        login: "demo.pref",
        role: Role::Prefecture,
        scope: Some("13"),
    },
    DemoAccount {
        login: "demo.national",
        role: Role::National,
        scope: None,
    },
    DemoAccount {
        login: "demo.admin",
        role: Role::Admin,
        scope: None,
    },
];

pub async fn demo(database: Option<String>, args: DemoArgs) -> anyhow::Result<ExitCode> {
    let url = database.unwrap_or_else(|| DEMO_DATABASE_URL.to_owned());
    reset_demo_file(&url).await?;
    let db = connect(&url).await?;
    anyhow::ensure!(
        db.users(0, 1).await?.is_empty() || db.meta("demo").await?.as_deref() == Some("1"),
        "{} already holds accounts; a demo needs a fresh database",
        redact_url(&url)
    );
    db.set_meta("demo", "1").await?;
    let ctx = AuditContext::cli();
    // Every prefecture; the demo users' own scope is Tokyo (13), its first health centre and
    // that centre's first institution.
    let options = todoke_synth::Options {
        scale: args.scale,
        prefectures: None,
        seed: 1,
    };
    let summary = load_synthetic(&db, &options, true).await?;
    let mut lines = Vec::new();
    for account in &DEMO_ACCOUNTS {
        let password = auth::new_password();
        let hash = tokio::task::spawn_blocking({
            let p = password.clone();
            move || auth::hash_password(&p)
        })
        .await??;
        let new = NewUser {
            login: Login::parse(account.login)?,
            role: account.role,
            scope_code: account.scope.map(Into::into),
            password_hash: hash,
        };
        let id = db.create_user(&ctx, &new).await?;
        let totp = if account.role.requires_second_factor() {
            let secret = auth::totp::new_secret();
            db.set_totp_secret(&ctx, id, Some(&secret), None).await?;
            format!("TOTP key {secret}")
        } else {
            String::new()
        };
        lines.push(format!(
            "  {:<14} {:<14} {:<13} {password}  {totp}",
            account.login,
            account.role.as_str(),
            account.scope.unwrap_or("-")
        ));
    }
    println!("todoke demo database: {}", redact_url(&url));
    println!(
        "Synthetic Japan at scale {}: {} positives, {} notifications, {} total-count report lines.",
        args.scale.as_str(),
        summary.positives,
        summary.notifications,
        summary.total_report_lines
    );
    // The synthetic period ends on 2023-05-08, the last day of national daily reporting.
    let as_of = chrono::NaiveDate::from_ymd_opt(2023, 5, 8).expect("valid date");
    // Synthetic data: publish even where suppression leaves a cell unprotected, and say so.
    let (published, _) = todoke_statistics::publish_keeping(&db, &ctx, as_of, true).await?;
    println!(
        "Published as of {as_of} (publication {}, {} cells, {} suppressed, {} small cells left unprotected); open data at /opendata/newly_confirmed_cases_daily.csv",
        published.id,
        published.summary.cells,
        published.summary.primary_suppressed + published.summary.secondary_suppressed,
        published.summary.unprotected
    );
    println!("Demo accounts (login, role, scope, password):");
    for l in &lines {
        println!("{l}");
    }
    println!("National and admin accounts need a one-time code: add the TOTP key to an authenticator app");
    println!("(or run `oathtool --totp -b KEY`).");
    run_server(db, &args.serve).await?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Create an account; the password is read from the first line of standard input.
    Add {
        #[arg(long)]
        login: String,
        /// doctor, health_centre, prefecture, national or admin.
        #[arg(long)]
        role: String,
        /// Institution code (doctor), health-centre code (health_centre) or prefecture code (prefecture).
        #[arg(long)]
        scope: Option<String>,
        /// Read the password from standard input (required: passwords never go on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

fn cli_error(m: todoke_domain::Message) -> anyhow::Error {
    StorageError::Invalid(m).into()
}

pub async fn user(database: Option<String>, cmd: UserCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        UserCommand::Add {
            login,
            role,
            scope,
            password_stdin: _,
        } => {
            let login = Login::parse(&login).map_err(|e| cli_error(e.0))?;
            let role = Role::parse(&role).map_err(|e| cli_error(e.0))?;
            let mut password = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut password)
                .context("reading the password from standard input")?;
            let password = password.trim_end_matches(['\n', '\r']).to_owned();
            auth::check_password_strength(&password).map_err(cli_error)?;
            let db = open(database).await?;
            let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password)).await??;
            let id = db
                .create_user(
                    &AuditContext::cli(),
                    &NewUser {
                        login: login.clone(),
                        role,
                        scope_code: scope,
                        password_hash: hash,
                    },
                )
                .await?;
            println!("created user {login} (id {id}, role {role})");
            if role.requires_second_factor() {
                println!("{role} accounts must set up a second factor (TOTP) at their first browser login.");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a user and print it (only this once).
    Create {
        #[arg(long)]
        login: String,
        /// What the token is for.
        #[arg(long, default_value = "")]
        label: String,
    },
}

pub async fn token(database: Option<String>, cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TokenCommand::Create { login, label } => {
            let login = Login::parse(&login).map_err(|e| cli_error(e.0))?;
            let db = open(database).await?;
            let user = db.user_id_by_login(&login).await.map_err(|e| match e {
                StorageError::NotFound => cli_error(todoke_domain::Message::new(
                    format!("利用者「{login}」は存在しません"),
                    format!("no user \"{login}\""),
                )),
                other => other.into(),
            })?;
            let token = auth::new_api_token();
            db.create_api_token(&AuditContext::cli(), user, &auth::token_hash(&token), &label)
                .await?;
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum OrgCommand {
    /// Register an organisation.
    #[command(subcommand)]
    Add(OrgAdd),
}

#[derive(Debug, clap::Subcommand)]
pub enum OrgAdd {
    /// A health centre (保健所) of a prefecture.
    HealthCentre {
        #[arg(long)]
        code: String,
        /// JIS code of the prefecture, 01..47.
        #[arg(long)]
        prefecture: String,
        #[arg(long)]
        name: String,
    },
    /// A medical institution (医療機関) under a health centre.
    Institution {
        #[arg(long)]
        code: String,
        #[arg(long)]
        health_centre: String,
        #[arg(long)]
        name: String,
    },
}

pub async fn org(database: Option<String>, cmd: OrgCommand) -> anyhow::Result<ExitCode> {
    let OrgCommand::Add(add) = cmd;
    match add {
        OrgAdd::HealthCentre { code, prefecture, name } => {
            let new = NewHealthCentre {
                code: HealthCentreCode::parse(&code).map_err(|e| cli_error(e.0))?,
                prefecture: PrefectureCode::parse(&prefecture).map_err(|e| cli_error(e.0))?,
                name,
            };
            let db = open(database).await?;
            let hc = db.create_health_centre(&AuditContext::cli(), &new).await?;
            println!(
                "registered health centre {} ({}) in prefecture {}",
                hc.code, hc.name, hc.prefecture
            );
        }
        OrgAdd::Institution {
            code,
            health_centre,
            name,
        } => {
            let new = NewInstitution {
                code: InstitutionCode::parse(&code).map_err(|e| cli_error(e.0))?,
                health_centre: HealthCentreCode::parse(&health_centre).map_err(|e| cli_error(e.0))?,
                name,
            };
            let db = open(database).await?;
            let inst = db.create_institution(&AuditContext::cli(), &new).await?;
            println!(
                "registered institution {} ({}) under health centre {}",
                inst.code, inst.name, inst.health_centre
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain; exit 1 and name the first bad entry if it was tampered with.
    Verify,
}

pub async fn audit(database: Option<String>, cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    let AuditCommand::Verify = cmd;
    let db = open(database).await?;
    Ok(match db.verify_audit().await? {
        AuditVerdict::Intact { entries } => {
            println!("audit log intact: {entries} entries verified");
            ExitCode::SUCCESS
        }
        AuditVerdict::Broken(b) => {
            println!("audit log TAMPERED at entry {}: {b}", b.seq());
            ExitCode::FAILURE
        }
        AuditVerdict::Truncated { last_seq, head_seq } => {
            println!(
                "audit log TRUNCATED: entries {}..={head_seq} are missing (last entry present: {last_seq})",
                last_seq + 1
            );
            ExitCode::FAILURE
        }
    })
}

/// The formats that can be imported and exported so far.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FileKind {
    /// Notifications (発生届), one row per notification.
    Notifications,
    /// Status changes (療養状況), one row per change.
    Status,
    /// Daily total-count reports (全数届出), one row per date, institution and age band.
    Totals,
    /// Municipal-published figures (自治体公表), one row per date and prefecture.
    Municipal,
    /// The health centre's decisions (確認, 取り下げ理由, 統合, 重複の疑い), one row per
    /// notification; import after the notifications they name.
    Decisions,
}

impl FileKind {
    fn kind(self) -> todoke_exchange::import::ImportKind {
        match self {
            FileKind::Notifications => todoke_exchange::import::ImportKind::Notifications,
            FileKind::Status => todoke_exchange::import::ImportKind::Status,
            FileKind::Totals => todoke_exchange::import::ImportKind::Totals,
            FileKind::Municipal => todoke_exchange::import::ImportKind::Municipal,
            FileKind::Decisions => todoke_exchange::import::ImportKind::Decisions,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    #[arg(value_enum)]
    kind: FileKind,
    /// The CSV file.
    file: std::path::PathBuf,
    /// Keep the good rows when some are rejected (default: all or nothing).
    #[arg(long)]
    partial: bool,
    /// Text encoding of the file: utf-8 (default; a BOM is accepted) or cp932 (Shift_JIS).
    #[arg(long, default_value = "utf-8")]
    encoding: String,
}

pub async fn import(database: Option<String>, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let encoding = todoke_exchange::Encoding::parse(&args.encoding).map_err(cli_error)?;
    let file = std::fs::File::open(&args.file).with_context(|| format!("opening {}", args.file.display()))?;
    let db = open(database).await?;
    let options = todoke_exchange::import::ImportOptions {
        partial: args.partial,
        encoding,
        row_scope: None,
        withdraw_scope: None,
    };
    let started = std::time::Instant::now();
    let input = Box::new(std::io::BufReader::with_capacity(1 << 20, file));
    let report = todoke_exchange::import::import(&db, &AuditContext::cli(), args.kind.kind(), input, options).await?;
    let secs = started.elapsed().as_secs_f64();
    for line in todoke_exchange::import::report_lines(&report) {
        eprintln!("{line}");
    }
    if report.committed {
        println!(
            "imported {} of {} rows ({} created, {} updated, {} unchanged, {} rejected) in {secs:.1} s",
            report.accepted, report.rows, report.created, report.updated, report.unchanged, report.rejected_rows
        );
    } else {
        println!(
            "nothing imported: {} of {} rows rejected (all or nothing; --partial keeps the good rows)",
            report.rejected_rows, report.rows
        );
    }
    Ok(if report.rejected_rows == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[arg(value_enum)]
    kind: FileKind,
    /// Where to write the CSV file.
    #[arg(long)]
    out: std::path::PathBuf,
    /// Only this prefecture (JIS code).
    #[arg(long)]
    prefecture: Option<String>,
}

pub async fn export(database: Option<String>, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let prefecture = args
        .prefecture
        .as_deref()
        .map(PrefectureCode::parse)
        .transpose()
        .map_err(|e| cli_error(e.0))?;
    let db = open(database).await?;
    let kind = args.kind.kind();
    let out = &args.out;
    let regular = std::fs::metadata(out).map(|m| m.is_file()).unwrap_or(true);
    let rows = if regular {
        // Written beside the destination and renamed into place once whole: an export refused
        // or failing halfway (the database lost, the disk full) leaves no file that looks
        // complete, and --out as it was.
        let dir = out
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let partial =
            tempfile::NamedTempFile::new_in(dir).with_context(|| format!("creating a file in {}", dir.display()))?;
        let rows =
            todoke_exchange::export::export(&db, kind, prefecture, std::io::BufWriter::new(partial.as_file())).await?;
        partial
            .persist(out)
            .with_context(|| format!("writing {}", out.display()))?;
        rows
    } else {
        // A pipe or a device (/dev/stdout): written as it goes.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(out)
            .with_context(|| format!("opening {}", out.display()))?;
        todoke_exchange::export::export(&db, kind, prefecture, std::io::BufWriter::new(file)).await?
    };
    println!("wrote {rows} rows to {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Subcommand)]
pub enum AggregatesCommand {
    /// Recompute every live counter from the notifications and their status histories.
    Rebuild,
}

pub async fn aggregates(database: Option<String>, cmd: AggregatesCommand) -> anyhow::Result<ExitCode> {
    let AggregatesCommand::Rebuild = cmd;
    let db = open(database).await?;
    let before = db.counters().await?;
    let started = std::time::Instant::now();
    let counters = db.rebuild_counters(&AuditContext::cli()).await?;
    let after = db.counters().await?;
    let changed = if before == after {
        "no counter changed"
    } else {
        "counters changed: the live aggregates had drifted"
    };
    println!(
        "rebuilt {counters} counters in {:.1} s; {changed}",
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

fn parse_day(s: &str) -> anyhow::Result<chrono::NaiveDate> {
    todoke_domain::dates::parse_date(s).map_err(cli_error)
}

#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    /// Publish the data as of the end of this JST day (default: yesterday). 和暦 accepted.
    #[arg(long)]
    as_of: Option<String>,
    /// Also write the publication's open-data files into this directory.
    #[arg(long)]
    opendata: Option<std::path::PathBuf>,
    /// Publish even if secondary suppression leaves small counts unprotected (synthetic data
    /// only; the number is recorded in the publication's summary).
    #[arg(long)]
    allow_unprotected: bool,
}

/// Writes every open-data file of a publication into `dir`.
async fn write_opendata(
    db: &Db,
    publication: &todoke_statistics::publication::Publication,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    let names = todoke_statistics::area_names(db).await?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for file in todoke_statistics::opendata::OpenDataFile::ALL {
        let path = dir.join(file.file_name());
        let f = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut w = std::io::BufWriter::new(f);
        todoke_statistics::opendata::write(file, publication, &names, &mut w)
            .and_then(|()| std::io::Write::flush(&mut w))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// `todoke publish`: computes every indicator from the live counters, suppresses, stores an
/// immutable snapshot and prints what it holds.
pub async fn publish(database: Option<String>, args: PublishArgs) -> anyhow::Result<ExitCode> {
    let as_of = match &args.as_of {
        Some(s) => parse_day(s)?,
        None => todoke_domain::dates::jst_day(todoke_storage::now()) - chrono::Days::new(1),
    };
    let db = open(database).await?;
    let started = std::time::Instant::now();
    let (p, publication) =
        todoke_statistics::publish_keeping(&db, &AuditContext::cli(), as_of, args.allow_unprotected).await?;
    let rendering = std::time::Instant::now();
    if let Some(dir) = &args.opendata {
        write_opendata(&db, &publication, dir).await?;
    }
    let render_ms = rendering.elapsed().as_millis();
    println!(
        "publication {} as of {as_of}: {} days, {} weeks, {} cells; suppressed {} primary + {} secondary; sha256 {}",
        p.id,
        p.summary.days,
        p.summary.weeks,
        p.summary.cells,
        p.summary.primary_suppressed,
        p.summary.secondary_suppressed,
        p.content_sha256
    );
    if p.summary.unprotected > 0 {
        eprintln!(
            "warning: {} small cells are published without secondary protection (--allow-unprotected)",
            p.summary.unprotected
        );
    }
    if let Some(dir) = &args.opendata {
        println!("wrote the open-data files to {}", dir.display());
    }
    println!(
        "took {:.3} s (read aggregates {} ms, compute and suppress {} ms, store {} ms, open data {render_ms} ms)",
        started.elapsed().as_secs_f64(),
        p.load_ms,
        p.compute_ms,
        p.store_ms
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub struct OpendataArgs {
    /// Directory to write the files into (created if missing).
    #[arg(long)]
    out: std::path::PathBuf,
    /// The publication (default: the latest).
    #[arg(long)]
    publication: Option<i64>,
}

/// `todoke opendata`: writes every open-data file of a publication.
pub async fn opendata(database: Option<String>, args: OpendataArgs) -> anyhow::Result<ExitCode> {
    let db = open(database).await?;
    let started = std::time::Instant::now();
    let (info, publication) = todoke_statistics::load_publication(&db, args.publication)
        .await
        .map_err(|e| match e {
            StorageError::NotFound => anyhow::anyhow!("no such publication; run `todoke publish` first"),
            other => other.into(),
        })?;
    write_opendata(&db, &publication, &args.out).await?;
    println!(
        "wrote {} files of publication {} (as of {}) to {} in {:.3} s",
        todoke_statistics::opendata::OpenDataFile::ALL.len(),
        info.id,
        info.as_of,
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Subcommand)]
pub enum PublicationsCommand {
    /// List publications, newest first.
    List,
    /// Show the public cells that differ between two publications (what was revised).
    Compare {
        old: i64,
        new: i64,
        /// Print at most this many revisions (all are counted).
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Run the suppression auditor on a publication (default: the latest).
    Audit { id: Option<i64> },
    /// The difference indicator: prefectures whose registry count differs from the
    /// municipal-published count by more than the threshold over 7 days.
    Difference {
        /// The publication (default: the latest).
        #[arg(long)]
        publication: Option<i64>,
        /// The day (default: the publication's as-of day).
        #[arg(long)]
        date: Option<String>,
        /// Relative gap of the 7-day sums above which a prefecture is listed.
        #[arg(long, default_value_t = 0.05)]
        threshold: f64,
    },
}

pub async fn publications(database: Option<String>, cmd: PublicationsCommand) -> anyhow::Result<ExitCode> {
    let db = open(database).await?;
    match cmd {
        PublicationsCommand::List => {
            for p in db.publications().await? {
                println!(
                    "{}\tas of {}\tpublished {}\t{}\tsha256 {}\t{}",
                    p.id,
                    p.as_of,
                    p.published_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    p.rules_version,
                    p.content_sha256,
                    p.summary
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        PublicationsCommand::Compare { old, new, limit } => {
            let (_, a) = todoke_statistics::load_publication(&db, Some(old)).await?;
            let (_, b) = todoke_statistics::load_publication(&db, Some(new)).await?;
            let revisions = todoke_statistics::publication::compare(&a, &b);
            for r in revisions.iter().take(limit) {
                println!(
                    "{}\t{}\t{}\t{}\t{} -> {}",
                    r.series, r.area, r.date, r.column, r.before, r.after
                );
            }
            println!("{} cells revised between publications {old} and {new}", revisions.len());
            Ok(ExitCode::SUCCESS)
        }
        PublicationsCommand::Audit { id } => {
            let (info, p) = todoke_statistics::load_publication(&db, id).await?;
            let started = std::time::Instant::now();
            let report = todoke_statistics::audit::audit(&p.indicators);
            let summary = p.summary();
            println!(
                "publication {}: {} hidden cells ({} primary, {} secondary); {} proven to keep a range of values; {} not proven ({:.1} s)",
                info.id,
                report.hidden,
                summary.primary_suppressed,
                summary.secondary_suppressed,
                report.proven,
                report.unproven.len(),
                started.elapsed().as_secs_f64()
            );
            for (series, w, area, col) in report.unproven.iter().take(20) {
                println!("  not proven: {series} week {w} area {area} column {col}");
            }
            Ok(if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        PublicationsCommand::Difference {
            publication,
            date,
            threshold,
        } => {
            let (info, p) = todoke_statistics::load_publication(&db, publication).await?;
            let day = match date {
                Some(d) => parse_day(&d)?,
                None => info.as_of,
            };
            let rows = todoke_statistics::difference::follow_up(&p, day, threshold);
            println!("prefecture\tregistry_7d\tmunicipal_7d\tgap_7d\tinput_rate_7d\tsevere_gap\tdeaths_gap");
            for r in &rows {
                let n = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    r.area,
                    n(r.registry_7d),
                    n(r.municipal_7d),
                    n(r.gap_7d),
                    r.input_rate_7d.map(|v| format!("{v:.4}")).unwrap_or_default(),
                    n(r.severe_gap),
                    n(r.deaths_gap)
                );
            }
            println!(
                "{} prefectures above a 7-day gap of {:.1}% on {day}",
                rows.len(),
                threshold * 100.0
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum SwitchCommand {
    /// Show the effective switch dates (stored rows and defaults) of every prefecture.
    List,
    /// Set the first day on which the registry is the source of an indicator.
    Set {
        /// new_positives, new_by_sex_age, severe, severe_by_sex_age, deaths, deaths_by_sex_age, inpatient.
        #[arg(long)]
        indicator: String,
        /// Prefecture code, or `all`.
        #[arg(long)]
        prefecture: String,
        /// The day (YYYY-MM-DD or 和暦).
        #[arg(long)]
        from: String,
    },
}

pub async fn switch(database: Option<String>, cmd: SwitchCommand) -> anyhow::Result<ExitCode> {
    use todoke_statistics::switch::{SwitchKey, Switches};
    let db = open(database).await?;
    match cmd {
        SwitchCommand::List => {
            let switches = Switches::from_rows(&db.source_switches().await?);
            print!("prefecture");
            for k in SwitchKey::ALL {
                print!("\t{}", k.as_str());
            }
            println!();
            for p in PrefectureCode::all() {
                print!("{p}");
                for k in SwitchKey::ALL {
                    print!("\t{}", switches.registry_from(k, p.number()));
                }
                println!();
            }
        }
        SwitchCommand::Set {
            indicator,
            prefecture,
            from,
        } => {
            let key = SwitchKey::parse(&indicator).map_err(cli_error)?;
            let from = parse_day(&from)?;
            let prefectures: Vec<PrefectureCode> = if prefecture == "all" {
                PrefectureCode::all().collect()
            } else {
                vec![PrefectureCode::parse(&prefecture).map_err(|e| cli_error(e.0))?]
            };
            for p in &prefectures {
                db.set_source_switch(
                    &AuditContext::cli(),
                    &todoke_storage::publications::SourceSwitch {
                        indicator: key.as_str().to_owned(),
                        prefecture_code: p.to_string(),
                        registry_from: from,
                    },
                )
                .await?;
            }
            println!(
                "{} is taken from the registry from {from} in {} prefecture(s); publish again to apply",
                key.as_str(),
                prefectures.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
