//! The binary as an operator uses it: accounts, tokens, organisations, serving and stopping.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

fn todoke(db_url: &str, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_todoke"))
        .arg("--database")
        .arg(db_url)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp_db() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/cli.db", dir.path().display());
    (dir, url)
}

#[test]
fn an_operator_sets_up_organisations_accounts_and_tokens() {
    let (_dir, db) = temp_db();
    let (code, out, err) = todoke(
        &db,
        &[
            "org",
            "add",
            "health-centre",
            "--code",
            "H13",
            "--prefecture",
            "13",
            "--name",
            "千代田保健所",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("registered health centre H13"), "{out}");
    let (code, _, err) = todoke(
        &db,
        &[
            "org",
            "add",
            "institution",
            "--code",
            "I1",
            "--health-centre",
            "H13",
            "--name",
            "神田クリニック",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = todoke(
        &db,
        &[
            "user",
            "add",
            "--login",
            "dr.kanda",
            "--role",
            "doctor",
            "--scope",
            "I1",
            "--password-stdin",
        ],
        Some("a long enough password\n"),
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("created user dr.kanda"), "{out}");
    let (code, token, err) = todoke(&db, &["token", "create", "--login", "dr.kanda"], None);
    assert_eq!(code, 0, "{err}");
    assert!(
        token.trim().starts_with("tdk_") && token.trim().len() == 47,
        "only the token is printed: {token}"
    );
}

#[test]
fn operator_mistakes_are_explained_in_both_languages() {
    let (_dir, db) = temp_db();
    let (code, _, err) = todoke(
        &db,
        &[
            "org",
            "add",
            "health-centre",
            "--code",
            "H1",
            "--prefecture",
            "99",
            "--name",
            "x",
        ],
        None,
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("都道府県コード「99」") && err.contains("prefecture code \"99\""),
        "{err}"
    );
    let (code, _, err) = todoke(
        &db,
        &[
            "user",
            "add",
            "--login",
            "dr.x",
            "--role",
            "doctor",
            "--scope",
            "NOPE",
            "--password-stdin",
        ],
        Some("a long enough password\n"),
    );
    assert_eq!(code, 1);
    assert!(err.contains("NOPE") && err.contains("エラー"), "{err}");
    let (code, _, err) = todoke(
        &db,
        &[
            "user",
            "add",
            "--login",
            "nat",
            "--role",
            "national",
            "--password-stdin",
        ],
        Some("short\n"),
    );
    assert_eq!(code, 1);
    assert!(err.contains("12"), "{err}");
    let (code, _, err) = todoke(&db, &["token", "create", "--login", "nobody"], None);
    assert_eq!(code, 1);
    assert!(err.contains("no user \"nobody\""), "{err}");
    let (code, _, err) = todoke("mysql://localhost/x", &["audit", "verify"], None);
    assert_eq!(code, 1);
    assert!(err.contains("sqlite://PATH or postgres://"), "{err}");
}

#[test]
fn the_server_stops_cleanly_on_sigterm() {
    let (_dir, db) = temp_db();
    let mut child = Command::new(env!("CARGO_BIN_EXE_todoke"))
        .args(["--database", &db, "serve", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("the address is printed")
        .to_owned();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async { reqwest::get(format!("http://{addr}/healthz")).await.unwrap().status() });
    assert_eq!(status, 200);
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(rest.contains("todoke stopped"), "{rest}");
}

#[test]
fn an_analyst_publishes_renders_open_data_audits_and_compares() {
    let (dir, db) = temp_db();
    let (code, _, err) = todoke(
        &db,
        &["synth", "--scale", "tiny", "--prefectures", "31,32", "--quiet"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = todoke(&db, &["publish", "--as-of", "2023-05-08"], None);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("publication 1 as of 2023-05-08: 1209 days, 156 weeks"),
        "{out}"
    );
    let files = dir.path().join("opendata");
    let (code, out, err) = todoke(&db, &["opendata", "--out", files.to_str().unwrap()], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("wrote 10 files of publication 1"), "{out}");
    for name in [
        "newly_confirmed_cases_daily.csv",
        "newly_confirmed_cases_per_100_thousand_population_daily.csv",
        "confirmed_cases_cumulative_daily.csv",
        "severe_cases_daily.csv",
        "deaths_cumulative_daily.csv",
        "number_of_deaths_daily.csv",
        "requiring_inpatient_care_etc_daily.csv",
        "newly_confirmed_cases_detail_weekly.csv",
        "severe_cases_detail_weekly.csv",
        "deaths_detail_cumulative_weekly.csv",
    ] {
        let bytes = std::fs::read(files.join(name)).unwrap();
        assert!(bytes.starts_with("\u{feff}".as_bytes()), "{name} starts with a BOM");
    }
    let (code, out, _) = todoke(&db, &["publications", "audit"], None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 not proven"), "{out}");

    // A prefecture's corrected figure, imported and exported in the municipal format, shows up
    // as a revision of the next publication.
    let csv = dir.path().join("municipal.csv");
    std::fs::write(&csv, "date,prefecture,new_positives\n2020-04-10,31,5\n").unwrap();
    let (code, out, err) = todoke(&db, &["import", "municipal", csv.to_str().unwrap()], None);
    assert_eq!(code, 0, "{out}{err}");
    let exported = dir.path().join("municipal-out.csv");
    let (code, _, err) = todoke(
        &db,
        &[
            "export",
            "municipal",
            "--out",
            exported.to_str().unwrap(),
            "--prefecture",
            "31",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&exported).unwrap();
    assert!(
        text.starts_with("date,prefecture,new_positives,cumulative_positives,severe,"),
        "{text:.80}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("2020-04-10,31,5,")),
        "the corrected figure is exported"
    );
    let (code, _, err) = todoke(&db, &["publish", "--as-of", "2023-05-08"], None);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = todoke(&db, &["publications", "compare", "1", "2"], None);
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .any(|l| l.starts_with("newly_confirmed_cases_daily\t31\t2020-04-10\t\t") && l.ends_with("-> 5")),
        "{out}"
    );
    let (code, out, _) = todoke(&db, &["publications", "list"], None);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2, "{out}");

    // The switch table: a later switch for Tottori's severe cases is stored and listed.
    let (code, _, err) = todoke(
        &db,
        &[
            "switch",
            "set",
            "--indicator",
            "severe",
            "--prefecture",
            "31",
            "--from",
            "2022-01-01",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = todoke(&db, &["switch", "list"], None);
    let tottori = out.lines().find(|l| l.starts_with("31\t")).unwrap();
    assert_eq!(tottori.split('\t').nth(3), Some("2022-01-01"), "{tottori}");
    let (code, _, err) = todoke(
        &db,
        &[
            "switch",
            "set",
            "--indicator",
            "clusters",
            "--prefecture",
            "31",
            "--from",
            "2022-01-01",
        ],
        None,
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("切替の対象ではありません") && err.contains("not a switchable indicator"),
        "{err}"
    );
}
