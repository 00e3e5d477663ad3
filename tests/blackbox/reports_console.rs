//! The supervisors' reports in the console, in a real Chromium: the charts' numbers are
//! the reports API's for the range the page chose (the last 7 days, in the browser's time
//! zone), a bar lists the conversations behind it, and the CSV link downloads the same
//! report. Screenshots `supervisor-reports` and `mobile-reports` go to
//! `SWITCHBOARD_SCREENSHOTS`.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::browser::Browser;
use crate::console::sign_in_by_link;
use crate::harness::{Daemon, Receiver, config, eventually};

/// Nothing of the page is wider than the window (a phone's 375 px).
const FITS: &str = "document.documentElement.scrollWidth <= window.innerWidth";

/// The test config with a first-response target for support, so that the SLA chart has
/// something to show.
fn config_with_sla(dir: &std::path::Path, callback_url: &str) -> String {
    let team = "[teams.support]\nname = \"Customer Support\"\n";
    let config = config(dir, callback_url);
    assert!(config.contains(team), "the test config no longer says `{team}`");
    config.replacen(team, &format!("{team}sla = \"quick\"\n"), 1)
        + r#"
[sla_policies.quick]
time = "calendar"
first_response = { urgent = "1h", high = "1h", normal = "1h", low = "1h" }
"#
}

/// The console's way of writing a duration (`app.js`'s `duration`), from the API's
/// milliseconds.
fn duration(ms: &Value) -> String {
    let Some(ms) = ms.as_i64() else {
        return "—".into();
    };
    let seconds = ms / 1000;
    let (minutes, hours) = (seconds / 60, seconds / 3600);
    if seconds < 60 {
        format!("{seconds} s")
    } else if minutes < 60 {
        format!("{minutes} min")
    } else if hours < 24 && minutes % 60 == 0 {
        format!("{hours} h")
    } else if hours < 24 {
        format!("{hours} h {} min", minutes % 60)
    } else if hours % 24 == 0 {
        format!("{} d", hours / 24)
    } else {
        format!("{} d {} h", hours / 24, hours % 24)
    }
}

/// A share from the API (0 to 1) as the console writes it.
fn percent(share: &Value) -> String {
    share
        .as_f64()
        .map_or_else(|| "—".into(), |share| format!("{}%", (share * 100.0).round()))
}

/// The text of the first element matching `css`, hidden or not (the charts' tables are
/// for screen readers and drawn nowhere, so WebDriver's visible text is empty).
async fn text_of(browser: &Browser, css: &str) -> String {
    let text = browser
        .execute(
            "const node = document.querySelector(arguments[0]); return node ? node.textContent : null;",
            vec![json!(css)],
        )
        .await;
    text.as_str()
        .unwrap_or_else(|| panic!("nothing matches `{css}`"))
        .to_owned()
}

/// `text` as a URL query value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn a_supervisor_reads_the_reports_as_charts_that_agree_with_the_api_drills_into_a_bar_and_downloads_the_csv() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("switchboard.toml"),
        config_with_sla(dir.path(), &receiver.url()),
    )
    .unwrap();
    let daemon = Daemon::start_in(dir).await;
    let ada = daemon.agent("ada", "support", "agent");
    let (sam, sam_link) = daemon.agent_with_link("sam", "support", "supervisor");

    // Four conversations for support, three answered and two of those resolved; one for
    // billing, which support's supervisor does not see.
    let mut support = Vec::new();
    for (id, from, text) in [
        ("r-1", "c-1", "Where is my parcel?"),
        ("r-2", "c-2", "The app crashes on start"),
        ("r-3", "c-3", "How do I change my address?"),
        ("r-4", "c-4", "Is the shop open on Sunday?"),
    ] {
        support.push(
            daemon.post_accepted(id, from, text).await["conversation_id"]
                .as_i64()
                .unwrap(),
        );
    }
    daemon
        .post_accepted("r-5", "c-5", "I was charged twice, I want a refund")
        .await;
    for (n, id) in support.iter().take(3).enumerate() {
        let (status, answer) = daemon
            .api(
                Method::POST,
                &format!("/conversations/{id}/messages"),
                &ada,
                Some(json!({"text": "We are on it."})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        if n < 2 {
            let (status, answer) = daemon
                .api(
                    Method::PATCH,
                    &format!("/conversations/{id}"),
                    &ada,
                    Some(json!({"status": "resolved"})),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{answer}");
        }
    }

    let browser = Browser::start().await;
    sign_in_by_link(&browser, &daemon, &sam_link, "sam").await;
    browser.goto(&daemon.url("/#/supervisor")).await;
    browser.wait_for("#reports[data-state='ready']").await;

    // The range the page asked for: the last 7 days to the end of today, in the
    // browser's own time zone, by team and by day.
    let asked = browser
        .execute(
            "return {
               query: Object.fromEntries(new URLSearchParams(document.querySelector('#reports').dataset.query)),
               raw: document.querySelector('#reports').dataset.query,
               zone: Intl.DateTimeFormat().resolvedOptions().timeZone,
               today: new Date().toLocaleDateString('en-CA'),
             };",
            vec![],
        )
        .await;
    let query = &asked["query"];
    assert_eq!(query["time_zone"], asked["zone"], "{asked}");
    assert_eq!((&query["interval"], &query["by"]), (&json!("day"), &json!("team")));
    let today: jiff::civil::Date = asked["today"].as_str().unwrap().parse().unwrap();
    assert_eq!(query["from"], json!((today - jiff::Span::new().days(6)).to_string()));
    assert_eq!(query["to"], json!(today.tomorrow().unwrap().to_string()));
    let zone = query["time_zone"].as_str().unwrap();

    // The same report from the API, as sam.
    let report = daemon
        .get(&format!("/reports/overview?{}", asked["raw"].as_str().unwrap()), &sam)
        .await;
    let series = report["series"].as_array().unwrap();
    assert_eq!(series.len(), 7, "{report}");
    let now = series.last().unwrap();
    let figures = &now["figures"];
    // What was seeded, so that the comparisons below compare something.
    assert_eq!(
        (&figures["opened"], &figures["resolved"]),
        (&json!(4), &json!(2)),
        "{now}"
    );
    assert_eq!(figures["first_response"]["count"], 3, "{now}");
    assert_eq!(figures["sla"]["first_response"]["share_met"], 1.0, "{now}");

    // Every day's opened and resolved, in the chart's table and on its bars.
    for bucket in series {
        let from = bucket["from"].as_str().unwrap();
        for figure in ["opened", "resolved"] {
            let row = format!("#chart-volume-data tr[data-from='{from}']");
            let shown = text_of(&browser, &format!("{row} td[data-series='{figure}']")).await;
            assert_eq!(shown, bucket["figures"][figure].to_string(), "{figure} on {from}");
            let bar = browser
                .execute(
                    "const bar = document.querySelector(arguments[0]); return bar && Number(bar.dataset.value);",
                    vec![json!(format!(
                        "#chart-volume rect.bar[data-series='{figure}'][data-from='{from}']"
                    ))],
                )
                .await;
            assert_eq!(bar, bucket["figures"][figure], "{figure}'s bar on {from}");
        }
    }
    // Today's first-response median, calendar and business time, and the SLA share.
    let today_row = |chart: &str| format!("#{chart}-data tr[data-from='{}']", now["from"].as_str().unwrap());
    assert_eq!(
        text_of(
            &browser,
            &format!("{} td[data-series='calendar']", today_row("chart-first-response"))
        )
        .await,
        duration(&figures["first_response"]["median_ms"])
    );
    assert_eq!(
        text_of(
            &browser,
            &format!("{} td[data-series='business']", today_row("chart-first-response"))
        )
        .await,
        duration(&figures["first_response"]["business_median_ms"])
    );
    assert_eq!(
        text_of(
            &browser,
            &format!("{} td[data-series='share_met']", today_row("chart-sla"))
        )
        .await,
        percent(&figures["sla"]["first_response"]["share_met"])
    );
    // Satisfaction for the range: nobody was asked, so a dash, not NaN.
    let csat = &report["total"]["csat"];
    assert_eq!(
        text_of(&browser, "#chart-csat-data td[data-series='response_rate']").await,
        percent(&csat["response_rate"])
    );
    assert_eq!(
        text_of(&browser, "#chart-csat-data td[data-series='average']").await,
        "—",
        "{csat}"
    );
    let shown = text_of(&browser, "#reports").await;
    for word in ["NaN", "null", "undefined"] {
        assert!(!shown.contains(word), "the reports show `{word}`: {shown}");
    }

    // The teams' table is the report's groups: support's, not billing's.
    let groups: BTreeMap<String, &Value> = report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|group| (group["key"].as_str().unwrap_or("").to_owned(), &group["figures"]))
        .collect();
    assert_eq!(groups.keys().collect::<Vec<_>>(), ["support"], "{report}");
    let rows = browser
        .execute(
            "return [...document.querySelectorAll('#report-team-table tbody tr')].map((row) => row.dataset.team);",
            vec![],
        )
        .await;
    assert_eq!(rows, json!(["support"]));
    let team = "#report-team-table tr[data-team='support']";
    for (figure, expected) in [
        ("opened", groups["support"]["opened"].to_string()),
        ("resolved", groups["support"]["resolved"].to_string()),
        (
            "first_response_median",
            duration(&groups["support"]["first_response"]["median_ms"]),
        ),
        (
            "sla_first_response_share_met",
            percent(&groups["support"]["sla"]["first_response"]["share_met"]),
        ),
        ("csat_average", "—".to_owned()),
    ] {
        assert_eq!(
            text_of(&browser, &format!("{team} td[data-figure='{figure}']")).await,
            expected,
            "support's {figure}"
        );
    }
    browser
        .execute(
            "document.querySelector('#reports').scrollIntoView(); return true;",
            vec![],
        )
        .await;
    browser.screenshot("supervisor-reports").await;

    // Today's "opened" bar lists exactly the conversations behind it, each a link.
    let (from, to) = (now["from"].as_str().unwrap(), now["to"].as_str().unwrap());
    let behind = daemon
        .get(
            &format!(
                "/reports/conversations?figure=opened&from={}&to={}&time_zone={}",
                encode(from),
                encode(to),
                encode(zone)
            ),
            &sam,
        )
        .await;
    let expected: BTreeSet<i64> = behind["conversation_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_i64().unwrap())
        .collect();
    assert_eq!(expected, support.iter().copied().collect(), "{behind}");
    browser
        .click(&format!(
            "#chart-volume rect.bar[data-series='opened'][data-from='{from}']"
        ))
        .await;
    browser.wait_for_text("#report-drill-title", "4 conversations").await;
    let listed = eventually("the drill-down to list today's openings", || async {
        let links = browser
            .execute(
                "return [...document.querySelectorAll('#report-drill-list li')]
                   .map((item) => [Number(item.dataset.id), item.querySelector('a').getAttribute('href')]);",
                vec![],
            )
            .await;
        let links: Vec<(i64, String)> = serde_json::from_value(links).unwrap();
        (links.len() == expected.len()).then_some(links)
    })
    .await;
    for (id, href) in &listed {
        assert_eq!(href, &format!("#/c/{id}"));
    }
    let ids: BTreeSet<i64> = listed.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, expected);

    // The CSV link downloads the same report with the session cookie alone: its total
    // row's `opened` is the JSON's.
    let href = browser
        .execute(
            "return document.querySelector('#report-csv').getAttribute('href');",
            vec![],
        )
        .await;
    let href = href.as_str().unwrap();
    assert!(href.ends_with("&format=csv"), "{href}");
    let cookie = browser.cookie("switchboard_session").await.unwrap();
    let response = reqwest::Client::new()
        .get(daemon.url(href))
        .header("cookie", format!("switchboard_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv"),
        "{:?}",
        response.headers()
    );
    let csv = response.text().await.unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let total: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|cell| *cell == name).unwrap();
    assert_eq!(total[column("row")], "total", "{csv}");
    assert_eq!(total[column("from")], report["from"].as_str().unwrap());
    assert_eq!(total[column("opened")], report["total"]["opened"].to_string(), "{csv}");

    // A drill-down's link opens the conversation.
    let first = *ids.iter().next().unwrap();
    browser
        .click(&format!("#report-drill-list li[data-id='{first}'] a"))
        .await;
    browser.wait_for("#conversation-reference").await;
    browser.wait_until(&format!("location.hash === '#/c/{first}'")).await;

    // On a phone the view keeps to the screen's width.
    browser.set_viewport_size(375, 812).await;
    browser.goto(&daemon.url("/#/supervisor")).await;
    browser.wait_for("#reports[data-state='ready']").await;
    browser.wait_until(FITS).await;
    browser
        .execute(
            "document.querySelector('#reports').scrollIntoView(); return true;",
            vec![],
        )
        .await;
    browser.screenshot("mobile-reports").await;
}
