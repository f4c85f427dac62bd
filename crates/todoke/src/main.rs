//! The `todoke` command: server, demo and operator commands (CONTRACT.md). Each command lives
//! in [`commands`]; this file only parses arguments and sets up logging.

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "todoke",
    version,
    about = "届け — infectious-disease notification registry and public statistics platform"
)]
struct Cli {
    /// Database URL: sqlite://PATH (default sqlite://./todoke-data/todoke.db) or postgres://USER@HOST/DB.
    #[arg(long, global = true, env = "TODOKE_DATABASE_URL")]
    database: Option<String>,

    /// Database connections the process keeps open (default: 8 for SQLite, 16 for PostgreSQL).
    #[arg(long, global = true, env = "TODOKE_DB_MAX_CONNECTIONS")]
    max_connections: Option<u32>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve(commands::ServeArgs),
    /// Create a fresh demo database with synthetic data and one account per role, then serve it.
    Demo(commands::DemoArgs),
    /// Write synthetic Japan (a deterministic national dataset) into an empty database.
    Synth(commands::SynthArgs),
    /// Manage user accounts.
    #[command(subcommand)]
    User(commands::UserCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(commands::TokenCommand),
    /// Manage health centres and medical institutions.
    #[command(subcommand)]
    Org(commands::OrgCommand),
    /// Inspect the audit log.
    #[command(subcommand)]
    Audit(commands::AuditCommand),
    /// Import a CSV file (formats of CONTRACT.md); exits non-zero if any row was rejected.
    Import(commands::ImportArgs),
    /// Export in the import formats (an export re-imports to the same data).
    Export(commands::ExportArgs),
    /// Maintain the live counters the statistics read.
    #[command(subcommand)]
    Aggregates(commands::AggregatesCommand),
    /// Make a publication: every indicator as of a day, suppressed, stored as an immutable snapshot.
    Publish(commands::PublishArgs),
    /// Write the open-data CSV files (MHLW format) of a publication.
    Opendata(commands::OpendataArgs),
    /// List, compare and audit publications; the difference indicator's follow-up list.
    #[command(subcommand)]
    Publications(commands::PublicationsCommand),
    /// The source switch table: from which day each indicator is taken from the registry.
    #[command(subcommand)]
    Switch(commands::SwitchCommand),
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    // Colours only on a terminal: a log file or the journal would keep the escape codes.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if std::env::var("TODOKE_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(n) = cli.max_connections {
        commands::set_max_connections(n);
    }
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => commands::serve(cli.database, args).await,
            Command::Demo(args) => commands::demo(cli.database, args).await,
            Command::Synth(args) => commands::synth(cli.database, args).await,
            Command::User(cmd) => commands::user(cli.database, cmd).await,
            Command::Token(cmd) => commands::token(cli.database, cmd).await,
            Command::Org(cmd) => commands::org(cli.database, cmd).await,
            Command::Audit(cmd) => commands::audit(cli.database, cmd).await,
            Command::Import(args) => commands::import(cli.database, args).await,
            Command::Export(args) => commands::export(cli.database, args).await,
            Command::Aggregates(cmd) => commands::aggregates(cli.database, cmd).await,
            Command::Publish(args) => commands::publish(cli.database, args).await,
            Command::Opendata(args) => commands::opendata(cli.database, args).await,
            Command::Publications(cmd) => commands::publications(cli.database, cmd).await,
            Command::Switch(cmd) => commands::switch(cli.database, cmd).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            commands::report_error(&e);
            ExitCode::FAILURE
        }
    }
}
