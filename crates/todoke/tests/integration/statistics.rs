//! Published statistics over HTTP: municipal figures entered by a prefecture, a publication,
//! the open-data files and the JSON series, suppressed cells that never show their value, and
//! the difference indicator kept to the prefecture's analysts.

use reqwest::Method;
use serde_json::Value;

use crate::helpers::{TestApp, Who};

fn final_day() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2023, 5, 8).unwrap()
}

#[tokio::test]
async fn a_prefecture_enters_its_figures_and_the_public_reads_them_in_mhlw_format() {
    let app = TestApp::spawn().await;
    // Tokyo's analyst may not enter Osaka's figures: all or nothing, so nothing is kept.
    let both = "date,prefecture,new_positives,severe\n2020-08-01,13,123,4\n2020-08-01,27,55,1\n";
    let r = app
        .request(Who::Prefecture, Method::POST, "/api/imports/municipal")
        .header("content-type", "text/csv")
        .body(both)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let report: Value = r.json().await.unwrap();
    assert_eq!(report["rejected_rows"], 1, "{report}");
    assert!(
        app.db.municipal_figures(None).await.unwrap().is_empty(),
        "nothing half-written"
    );
    // Its own figures go in (令和 dates accepted).
    let own = "date,prefecture,new_positives,severe\nR2.8.1,13,123,4\n2020-08-02,13,99,\n";
    let r = app
        .request(Who::Prefecture, Method::POST, "/api/imports/municipal")
        .header("content-type", "text/csv")
        .body(own)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // Nothing is published yet: the open data answers 404, not an empty file.
    let r = app
        .request(Who::Public, Method::GET, "/opendata/newly_confirmed_cases_daily.csv")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let published = todoke_statistics::publish(&app.db, &todoke_storage::AuditContext::cli(), final_day())
        .await
        .unwrap();
    let r = app
        .request(Who::Public, Method::GET, "/opendata/newly_confirmed_cases_daily.csv")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(r.headers()["x-publication-id"], published.id.to_string().as_str());
    let text = r.text().await.unwrap();
    assert!(text.starts_with("\u{feff}Date,ALL,Hokkaido,"), "BOM and header");
    let row = text
        .lines()
        .find(|l| l.starts_with("2020/8/1,"))
        .expect("a row for 2020/8/1");
    let cells: Vec<&str> = row.split(',').collect();
    assert_eq!(cells[14], "123", "Tokyo is the 13th prefecture column: {row}");
    assert_eq!(cells[1], "123", "ALL sums the prefectures that published");
    assert_eq!(
        cells[2], "",
        "Hokkaido published nothing that day, so the cell is empty"
    );

    // The same value as JSON, with its source.
    let r = app
        .request(
            Who::Public,
            Method::GET,
            "/api/statistics/newly_confirmed_cases_daily?area=13&from=2020-08-01&to=2020-08-02",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let series: Value = r.json().await.unwrap();
    assert_eq!(series["points"][0]["value"], 123);
    assert_eq!(series["points"][0]["source"], "municipal");
    assert_eq!(series["points"][1]["value"], 99);
    assert_eq!(series["publication"]["id"], published.id);

    // The seeded notification (a woman in her 70s in Tokyo, filed 2023-05-01) is a count of 1
    // in the last week's sex/age table: shown as `*`, its value nowhere in the answer.
    let r = app
        .request(
            Who::Public,
            Method::GET,
            "/api/statistics/newly_confirmed_cases_detail_weekly?area=13&from=2023-04-30",
        )
        .send()
        .await
        .unwrap();
    let weekly: Value = r.json().await.unwrap();
    let cell = weekly["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["column"] == "Female 70s")
        .expect("the column is listed");
    assert_eq!(cell["suppressed"], true, "{cell}");
    assert!(cell["value"].is_null());
    let file = app
        .request(
            Who::Public,
            Method::GET,
            "/opendata/newly_confirmed_cases_detail_weekly.csv",
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let last = file.lines().last().unwrap();
    assert!(last.starts_with("2023/4/30~2023/5/6,"), "{}", &last[..40]);
    let tokyo_female_70s = last.split(',').nth(1 + 13 * 20 + 17).unwrap();
    assert_eq!(tokyo_female_70s, "*");

    // Bad requests are explained; unknown files are 404.
    let r = app
        .request(
            Who::Public,
            Method::GET,
            "/api/statistics/newly_confirmed_cases_daily?area=99",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("area"));
    let r = app
        .request(Who::Public, Method::GET, "/opendata/passwords.csv")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // The difference indicator: Tokyo's analyst reads Tokyo's, not Osaka's.
    let r = app
        .request(
            Who::Prefecture,
            Method::GET,
            "/api/statistics/difference?prefecture=13&from=2020-08-01&to=2020-08-01",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rows: Value = r.json().await.unwrap();
    assert_eq!(rows[0]["municipal"], 123);
    assert_eq!(rows[0]["registry"], 0);
    assert_eq!(rows[0]["gap"], -123);
    let r = app
        .request(Who::Prefecture, Method::GET, "/api/statistics/difference?prefecture=27")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Publications are listed; one compared with itself has no revisions.
    let list: Value = app
        .request(Who::Public, Method::GET, "/api/publications")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list[0]["id"], published.id);
    assert_eq!(list[0]["content_sha256"], published.content_sha256.as_str());
    let path = format!("/api/publications/{0}/revisions?against={0}", published.id);
    let rev: Value = app
        .request(Who::Public, Method::GET, &path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rev["total"], 0);
}
