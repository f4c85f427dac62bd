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
