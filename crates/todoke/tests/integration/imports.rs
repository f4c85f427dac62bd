//! CSV imports and exports through the binary, as an operator runs them.

use std::process::{Command, Stdio};

fn todoke(db: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_todoke"))
        .arg("--database")
        .arg(db)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Workspace {
        Workspace {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn db(&self, name: &str) -> String {
        format!("sqlite://{}/{name}.db", self.dir.path().display())
    }

    fn file(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap()
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

const HEADER: &str = "external_id,case_type,reported_at,prefecture,name,name_kana,sex,birth_date,age,symptoms,onset_date,diagnosis_date,withdrawn\n";

fn rows() -> String {
    [
        "T-1,confirmed,2021-05-01 23:30,13,山田 太郎,ヤマダ タロウ,male,昭和55年4月1日,,発熱;咳,R3.4.28,2021-04-30,false",
        "T-2,asymptomatic,2021-05-01T15:30:00Z,13,,,female,,34,,,,",
        "T-3,confirmed,2021-05-02T09:00:00+09:00,27,,,unknown,,81,,,,",
    ]
    .join("\n")
}

#[test]
fn a_file_imports_and_importing_it_again_updates_instead_of_duplicating() {
    let w = Workspace::new();
    let db = w.db("a");
    let mut bytes = vec![0xEF, 0xBB, 0xBF]; // Excel's UTF-8 byte-order mark
    bytes.extend(format!("{HEADER}{}\n", rows()).as_bytes());
    let file = w.file("n.csv", &bytes);
    let (code, out, err) = todoke(&db, &["import", "notifications", &file]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("imported 3 of 3 rows (3 created, 0 updated, 0 unchanged, 0 rejected)"),
        "{out}"
    );
    let (code, out, _) = todoke(&db, &["import", "notifications", &file]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("imported 3 of 3 rows (0 created, 0 updated, 3 unchanged, 0 rejected)"),
        "the same file again changes nothing: {out}"
    );
    let corrected = w.file(
        "fix.csv",
        format!("{HEADER}{}\n", rows().replace("山田 太郎", "山田 次郎")).as_bytes(),
    );
    let (code, out, _) = todoke(&db, &["import", "notifications", &corrected]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("imported 3 of 3 rows (0 created, 1 updated, 2 unchanged, 0 rejected)"),
        "only the corrected row is written: {out}"
    );
    let (code, out, _) = todoke(&db, &["import", "notifications", &file]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("imported 3 of 3 rows (0 created, 1 updated, 2 unchanged, 0 rejected)"),
        "and back: {out}"
    );
    // An export replaces a file already there, and leaves nothing else beside it (it is written
    // to a file of its own and renamed into place once whole).
    std::fs::write(w.path("out.csv"), "an older export").unwrap();
    // The files beside the export (the database's own come and go with its connections).
    let files = || {
        let mut names: Vec<String> = std::fs::read_dir(w.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| !name.starts_with("a.db"))
            .collect();
        names.sort();
        names
    };
    let before = files();
    let (_, out, _) = todoke(&db, &["export", "notifications", "--out", &w.path("out.csv")]);
    assert!(out.contains("wrote 3 rows"), "{out}");
    assert_eq!(files(), before, "no other file left");
    let exported = w.read("out.csv");
    assert!(
        exported.contains(
            "T-1,covid19,confirmed,2021-05-01T23:30:00+09:00,13,,,,山田 太郎,ヤマダ タロウ,male,1980-04-01,41,"
        ),
        "{exported}"
    );
    assert!(
        exported.contains("T-2,covid19,asymptomatic,2021-05-02T00:30:00+09:00"),
        "15:30Z is 00:30 JST the next day: {exported}"
    );
    let (code, out, _) = todoke(&db, &["import", "notifications", &w.path("out.csv")]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("imported 3 of 3 rows (0 created, 0 updated, 3 unchanged, 0 rejected)"),
        "the export is what is stored: {out}"
    );
    let (code, out, _) = todoke(&db, &["aggregates", "rebuild"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("no counter changed"),
        "importing kept the live counters exact: {out}"
    );
}

#[test]
fn one_bad_row_stops_everything_unless_partial() {
    let w = Workspace::new();
    let bad = "T-9,confirmed,2021-05-03,13,,,male,,,,2021-05-04,2021-05-03,"; // no age, onset after diagnosis
    let file = w.file("bad.csv", format!("{HEADER}{}\n{bad}\n", rows()).as_bytes());
    let db = w.db("b");
    let (code, out, err) = todoke(&db, &["import", "notifications", &file]);
    assert_eq!(code, 1, "a rejected row fails the command");
    assert!(out.contains("nothing imported: 1 of 4 rows rejected"), "{out}");
    assert!(
        err.contains("line 5 [age]: age or birth_date is required / age または birth_date のどちらかは必須です"),
        "{err}"
    );
    assert!(
        err.contains("line 5 [onset_date]: onset_date is after diagnosis_date"),
        "{err}"
    );
    let (_, out, _) = todoke(&db, &["export", "notifications", "--out", &w.path("none.csv")]);
    assert!(out.contains("wrote 0 rows"), "all or nothing: {out}");
    let (code, out, _) = todoke(&db, &["import", "notifications", "--partial", &file]);
    assert_eq!(code, 1, "still non-zero: a row was rejected");
    assert!(
        out.contains("imported 3 of 4 rows (3 created, 0 updated, 0 unchanged, 1 rejected)"),
        "{out}"
    );
}

#[test]
fn shift_jis_files_are_read_when_declared_and_explained_when_not() {
    let w = Workspace::new();
    // A fourth row with characters only Windows' CP932 has beyond JIS X 0208: IBM extensions
    // (髙, 﨑) and NEC specials (①, ㈱), as names and addresses in older Japanese systems have.
    let text = format!(
        "external_id,case_type,reported_at,prefecture,name,name_kana,sex,age,address\n{}\n",
        [
            "T-1,confirmed,2021-05-01 23:30,13,山田 太郎,ヤマダ タロウ,male,41,",
            "T-2,asymptomatic,2021-05-01T15:30:00Z,13,,,female,34,",
            "T-3,confirmed,2021-05-02T09:00:00+09:00,27,,,unknown,81,",
            "T-4,confirmed,2021-05-02,13,髙﨑 花子,タカサキ ハナコ,female,52,千代田区①番地 ㈱神田ビル",
        ]
        .join("\n")
    );
    let (sjis, _, unmappable) = encoding_rs::SHIFT_JIS.encode(&text);
    assert!(!unmappable);
    for ch in ["髙", "﨑", "①", "㈱"] {
        // Lead bytes of CP932's additions: NEC row 13 (0x87), NEC-selected IBM (0xED, 0xEE),
        // IBM (0xFA-0xFC); plain Shift_JIS (JIS X 0208) has none of them.
        let (code, _, unmappable) = encoding_rs::SHIFT_JIS.encode(ch);
        assert!(
            !unmappable && [0x87, 0xED, 0xEE, 0xFA, 0xFB, 0xFC].contains(&code[0]),
            "{ch}: {code:02X?}"
        );
        assert!(sjis.windows(2).any(|w| w == &code[..]));
    }
    let file = w.file("sjis.csv", &sjis);
    let db = w.db("c");
    let (code, _, err) = todoke(&db, &["import", "notifications", &file]);
    assert_eq!(code, 1);
    assert!(
        err.contains("for a Shift_JIS file, give the encoding cp932"),
        "a hint, not mojibake: {err}"
    );
    let (code, out, err) = todoke(&db, &["import", "notifications", "--encoding", "cp932", &file]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("imported 4 of 4 rows"), "{out}");
    todoke(&db, &["export", "notifications", "--out", &w.path("out.csv")]);
    let exported = w.read("out.csv");
    assert!(
        exported.contains("山田 太郎,ヤマダ タロウ"),
        "Japanese text survives the transcoding"
    );
    assert!(
        exported.contains("髙﨑 花子,タカサキ ハナコ") && exported.contains("千代田区①番地 ㈱神田ビル"),
        "and so do CP932's own characters: {exported}"
    );
}

#[test]
fn a_header_that_does_not_fit_is_refused_whole() {
    let w = Workspace::new();
    let file = w.file(
        "h.csv",
        b"external_id,case_type,reported_at,prefecture,sex,age,colour\nX,confirmed,2021-05-01,13,male,40,red\n",
    );
    let (code, out, err) = todoke(&w.db("d"), &["import", "notifications", &file]);
    assert_eq!(code, 1);
    assert!(out.contains("nothing imported"), "{out}");
    assert!(
        err.contains("line 1 [colour]: \"colour\" is not a column of the notifications format"),
        "{err}"
    );
}

#[test]
fn exports_re_import_to_the_same_data_statuses_included() {
    let w = Workspace::new();
    let (a, b) = (w.db("one"), w.db("two"));
    let file = w.file("n.csv", format!("{HEADER}{}\n", rows()).as_bytes());
    assert_eq!(todoke(&a, &["import", "notifications", &file]).0, 0);
    let statuses = w.file(
        "s.csv",
        "external_id,status,severity,effective_date,recorded_at\nT-1,home,mild,2021-05-02,2021-05-02T10:00:00+09:00\nT-1,hospitalized,severe,R3.5.4,\nT-3,released,,2021-05-12,\nT-404,home,,2021-05-02,\n".as_bytes(),
    );
    let (code, out, err) = todoke(&a, &["import", "status", "--partial", &statuses]);
    assert_eq!(code, 1, "one unknown external id");
    assert!(
        out.contains("imported 3 of 4 rows (3 created, 0 updated, 0 unchanged, 1 rejected)"),
        "{out}"
    );
    assert!(
        err.contains("line 5 [external_id]: no notification has external_id \"T-404\""),
        "{err}"
    );
    // The same file again records nothing twice: the row with its instant is already there,
    // and those without one say what already stands for their day.
    let (_, out, _) = todoke(&a, &["import", "status", "--partial", &statuses]);
    assert!(
        out.contains("imported 3 of 4 rows (0 created, 0 updated, 3 unchanged, 1 rejected)"),
        "{out}"
    );
    // A status before the notification was reported, or recorded in the future, is refused
    // with the column named; the file's good row is not written either (all or nothing).
    let early = w.file(
        "early.csv",
        "external_id,status,effective_date,recorded_at\nT-3,home,2021-05-01,\nT-3,home,2021-05-03,2999-01-01T00:00:00Z\nT-3,hotel,2021-05-03,\n"
            .as_bytes(),
    );
    let (code, out, err) = todoke(&a, &["import", "status", &early]);
    assert_eq!(code, 1);
    assert!(out.contains("nothing imported"), "{out}");
    assert!(
        err.contains("line 2 [effective_date]: effective_date 2021-05-01 is before the report day 2021-05-02"),
        "{err}"
    );
    assert!(
        err.contains("line 3 [recorded_at]: recorded_at is in the future"),
        "{err}"
    );
    // A withdrawal reason is kept only for a withdrawn notification (T-2 is not).
    let decided = w.file("d.csv", "external_id,withdrawn_reason\nT-2,誤届出\n".as_bytes());
    let (code, out, err) = todoke(&a, &["import", "decisions", &decided]);
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("line 2: withdrawn_reason is for a withdrawn notification; this one is not"),
        "{err}"
    );
    for (kind, name) in [
        ("notifications", "n1.csv"),
        ("status", "s1.csv"),
        ("decisions", "d1.csv"),
    ] {
        assert_eq!(todoke(&a, &["export", kind, "--out", &w.path(name)]).0, 0);
    }
    assert_eq!(todoke(&b, &["import", "notifications", &w.path("n1.csv")]).0, 0);
    assert_eq!(todoke(&b, &["import", "status", &w.path("s1.csv")]).0, 0);
    let (code, out, _) = todoke(&b, &["import", "decisions", &w.path("d1.csv")]);
    assert_eq!(code, 0);
    assert!(
        out.contains("imported 3 of 3 rows (0 created, 0 updated, 3 unchanged, 0 rejected)"),
        "nothing decided yet, one row per notification: {out}"
    );
    let (code, out, _) = todoke(&b, &["import", "status", &w.path("s1.csv")]);
    assert_eq!(code, 0);
    assert!(
        out.contains("imported 3 of 3 rows (0 created, 0 updated, 3 unchanged, 0 rejected)"),
        "an export imported twice: {out}"
    );
    for (kind, name) in [
        ("notifications", "n2.csv"),
        ("status", "s2.csv"),
        ("decisions", "d2.csv"),
    ] {
        assert_eq!(todoke(&b, &["export", kind, "--out", &w.path(name)]).0, 0);
    }
    assert_eq!(w.read("n1.csv"), w.read("n2.csv"), "notifications round-trip exactly");
    assert_eq!(w.read("s1.csv"), w.read("s2.csv"), "statuses round-trip exactly");
    assert_eq!(w.read("d1.csv"), w.read("d2.csv"), "and so do decisions");
    assert_eq!(w.read("s1.csv").lines().count(), 4, "header and three changes");
    let (_, out, _) = todoke(
        &b,
        &[
            "export",
            "notifications",
            "--prefecture",
            "27",
            "--out",
            &w.path("osaka.csv"),
        ],
    );
    assert!(out.contains("wrote 1 rows"), "{out}");
}

#[test]
fn daily_total_count_reports_import_replace_and_round_trip() {
    let w = Workspace::new();
    let (a, b) = (w.db("ta"), w.db("tb"));
    for db in [&a, &b] {
        assert_eq!(
            todoke(
                db,
                &[
                    "org",
                    "add",
                    "health-centre",
                    "--code",
                    "H13",
                    "--prefecture",
                    "13",
                    "--name",
                    "千代田"
                ]
            )
            .0,
            0
        );
        assert_eq!(
            todoke(
                db,
                &[
                    "org",
                    "add",
                    "institution",
                    "--code",
                    "I1",
                    "--health-centre",
                    "H13",
                    "--name",
                    "神田"
                ]
            )
            .0,
            0
        );
    }
    let day1 = w.file(
        "t1.csv",
        "date,prefecture,institution,age_band,count\n2022-09-26,13,I1,65-69,12\n2022-09-26,13,I1,unknown,3\nR4.9.27,13,I1,90+,4\n2022-09-27,13,I1,65+,1\n".as_bytes(),
    );
    let (code, out, err) = todoke(&a, &["import", "totals", "--partial", &day1]);
    assert_eq!(code, 1);
    assert!(
        out.contains("imported 3 of 4 rows (3 created, 0 updated, 0 unchanged, 1 rejected)"),
        "{out}"
    );
    assert!(
        err.contains("line 5 [age_band]: age_band \"65+\" must be one of: 0, 1-4"),
        "{err}"
    );
    let resent = w.file(
        "t2.csv",
        "date,prefecture,health_centre,institution,age_band,count\n2022-09-26,13,H13,I1,65-69,15\n".as_bytes(),
    );
    let (code, out, _) = todoke(&a, &["import", "totals", &resent]);
    assert_eq!(code, 0);
    assert!(
        out.contains("(0 created, 1 updated, 0 unchanged, 0 rejected)"),
        "a re-sent report replaces the count: {out}"
    );
    let (code, out, _) = todoke(&a, &["import", "totals", &resent]);
    assert_eq!(code, 0);
    assert!(
        out.contains("(0 created, 0 updated, 1 unchanged, 0 rejected)"),
        "the same report again changes nothing: {out}"
    );
    let (_, out, _) = todoke(&a, &["aggregates", "rebuild"]);
    assert!(out.contains("no counter changed"), "{out}");
    let wrong_place = w.file(
        "t3.csv",
        "date,prefecture,institution,age_band,count\n2022-09-26,27,I1,0,1\n".as_bytes(),
    );
    let (code, _, err) = todoke(&a, &["import", "totals", &wrong_place]);
    assert_eq!(code, 1);
    assert!(err.contains("does not belong to prefecture \"27\""), "{err}");
    assert_eq!(todoke(&a, &["export", "totals", "--out", &w.path("x1.csv")]).0, 0);
    assert_eq!(todoke(&b, &["import", "totals", &w.path("x1.csv")]).0, 0);
    assert_eq!(todoke(&b, &["export", "totals", "--out", &w.path("x2.csv")]).0, 0);
    assert_eq!(w.read("x1.csv"), w.read("x2.csv"));
    assert!(
        w.read("x1.csv").contains("2022-09-26,13,H13,I1,65-69,15"),
        "{}",
        w.read("x1.csv")
    );
}
