//! Reports against the facts that made them: a morning of the desk seeded through the
//! webhook and the API on a manual clock (three teams, replies, an escalation, a
//! transfer, a resolution and a reopening, a breach, a satisfaction answer), then every
//! figure checked against the numbers the seeding itself implies, each drill-down
//! against its figure, and the CSV against the JSON.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard::model::Role;

use super::updates::{Callbacks, setup};
use super::{Desk, READER, at};

const MINUTE: i64 = 60_000;

fn figures_of<'a>(report: &'a Value, team: &str) -> &'a Value {
    &report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|group| group["key"] == team)
        .unwrap_or_else(|| panic!("no group {team} in {report}"))["figures"]
}

#[tokio::test]
async fn every_report_figure_is_the_one_the_seeded_facts_imply_and_its_conversations_are_listed() {
    let callbacks = Callbacks::start().await;
    let t0 = at("2026-11-30T09:00:00Z");
    let desk = Desk::start_with(
        t0,
        &[
            ("ana", "support", Role::Agent, true),
            ("ben", "billing", Role::Agent, false),
        ],
        &setup(&callbacks),
    )
    .await;
    let step = |minutes: i64| desk.clock.set(t0 + minutes * MINUTE);

    // 09:00 two customers, 09:30 a third whose outage goes to technical (30 min SLA).
    let parcel = desk.customer("p-1", "emma", "Where is my parcel?", Value::Null).await;
    let charged = desk.customer("c-1", "omar", "I was charged twice", Value::Null).await;
    step(10);
    let (status, _) = desk
        .call(
            reqwest::Method::POST,
            &format!("/conversations/{parcel}/messages"),
            "ana",
            Some(json!({"text": "It left the warehouse today."})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    step(20);
    let (status, _) = desk
        .call(
            reqwest::Method::POST,
            &format!("/conversations/{charged}/messages"),
            "ben",
            Some(json!({"text": "Refunding the second charge."})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    step(30);
    let outage = desk
        .customer("o-1", "lin", "The site is down for me", Value::Null)
        .await;
    step(40);
    let (status, body) = desk
        .escalate(
            parcel,
            READER,
            json!({"to": {"tier": "next"}, "summary": "Courier lost it; needs L1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    step(50);
    desk.patch(parcel, READER, json!({"status": "resolved"})).await;
    callbacks.wait(parcel, 1).await;
    step(55);
    let (status, body) = desk
        .hook(json!({"id": "p-csat", "from": {"id": "emma"}, "csat": {"conversation_id": parcel, "score": 4}}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    step(60);
    desk.patch(charged, READER, json!({"status": "resolved"})).await;
    callbacks.wait(charged, 1).await;
    step(65);
    desk.customer("c-2", "omar", "The second charge is still there", Value::Null)
        .await;
    desk.patch(
        charged,
        READER,
        json!({"team": "support", "summary": "Card issue, not billing"}),
    )
    .await;
    // The outage waited past its 30 minutes: breached at 10:00; resolved at 10:20 with
    // no reply, never passed on.
    step(70);
    desk.events(outage, "sla.breached", 1).await;
    step(80);
    desk.patch(outage, READER, json!({"status": "resolved"})).await;
    step(90);

    let range = "from=2026-11-30&to=2026-12-01&time_zone=Europe/Berlin";
    let report = desk.get(&format!("/reports/overview?{range}&by=team"), READER).await;
    let total = &report["total"];
    // What the seeding implies, conversation by conversation.
    assert_eq!(total["opened"], 3);
    assert_eq!(total["resolved"], 3, "each once resolved");
    assert_eq!(total["reopened"], 1, "charged, by Omar's second message");
    assert_eq!(
        total["first_response"],
        json!({"count": 2, "median_ms": 10 * MINUTE, "p90_ms": 20 * MINUTE, "average_ms": 15 * MINUTE})
    );
    // Resolved now: parcel (09:00 → 09:50) and the outage (09:30 → 10:20); charged was
    // reopened.
    assert_eq!(
        total["resolution"],
        json!({"count": 2, "median_ms": 50 * MINUTE, "p90_ms": 50 * MINUTE, "average_ms": 50 * MINUTE})
    );
    assert_eq!(
        (total["escalations"].clone(), total["escalated"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(
        (total["transfers"].clone(), total["transferred"].clone()),
        (json!(1), json!(1))
    );
    // An escalation passes a case on as a transfer does: only the outage was not.
    assert_eq!(total["resolved_without_transfer"], json!(1.0 / 3.0));
    assert_eq!(total["sla_breaches"], 1);
    assert_eq!(total["breached"], 1);
    // Three customer messages, Omar's second and Emma's rating; two agents' replies; the
    // escalation's and the transfer's summaries as notes.
    assert_eq!(total["messages_in"], 5);
    assert_eq!(total["messages_out"], 2);
    assert_eq!(total["notes"], 2);
    assert_eq!(total["csat"]["answers"], 1);
    assert_eq!(total["csat"]["average"], 4.0);
    assert_eq!(total["csat"]["distribution"]["4"], 1);
    // Asked on each resolution: parcel, charged (before it reopened) and the outage.
    assert_eq!(total["csat"]["asked"], 3, "{}", total["csat"]);
    assert_eq!(total["csat"]["response_rate"], json!(1.0 / 3.0));

    // Grouped by each conversation's team now: parcel went up to support-l1, charged
    // moved to support, the outage stayed with technical.
    assert_eq!(figures_of(&report, "support-l1")["opened"], 1);
    assert_eq!(figures_of(&report, "support")["reopened"], 1);
    assert_eq!(figures_of(&report, "technical")["sla_breaches"], 1);
    let opened: u64 = report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|group| group["figures"]["opened"].as_u64().unwrap())
        .sum();
    assert_eq!(opened, 3, "the groups add up to the total");

    // Every conversation-naming figure lists exactly as many conversations as it counts.
    let expected: BTreeMap<&str, Vec<i64>> = BTreeMap::from([
        ("opened", vec![parcel, charged, outage]),
        ("resolved", vec![parcel, charged, outage]),
        ("reopened", vec![charged]),
        ("first_response", vec![parcel, charged]),
        ("resolution", vec![parcel, outage]),
        ("escalated", vec![parcel]),
        ("transferred", vec![charged]),
        ("resolved_without_transfer", vec![outage]),
        ("breached", vec![outage]),
        ("csat_answers", vec![parcel]),
        ("csat_asked", vec![parcel, charged, outage]),
    ]);
    for (figure, ids) in &expected {
        let listed = desk
            .get(
                &format!("/reports/conversations?{range}&figure={figure}&limit=1"),
                READER,
            )
            .await;
        assert_eq!(listed["count"], ids.len(), "{figure}: {listed}");
        // Paged one at a time by `after`.
        let mut all: Vec<i64> = Vec::new();
        let mut after = 0;
        loop {
            let cursor = if after > 0 {
                format!("&after={after}")
            } else {
                String::new()
            };
            let page = desk
                .get(
                    &format!("/reports/conversations?{range}&figure={figure}&limit=1{cursor}"),
                    READER,
                )
                .await;
            let ids: Vec<i64> = page["conversation_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|id| id.as_i64().unwrap())
                .collect();
            all.extend(&ids);
            match page["next_after"].as_i64() {
                Some(next) => after = next,
                None => break,
            }
        }
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(all, sorted, "{figure}");
    }
    let technical = desk
        .get(
            &format!("/reports/conversations?{range}&figure=opened&by=team&group=technical"),
            READER,
        )
        .await;
    assert_eq!(technical["conversation_ids"], json!([outage]));

    // The CSV holds the JSON's numbers.
    let response = desk
        .http
        .get(desk.url(&format!("/api/v1/reports/overview?{range}&by=team&format=csv")))
        .bearer_auth(&desk.tokens[READER])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = response.text().await.unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: BTreeMap<String, Vec<String>> = lines
        .map(|line| {
            let cells: Vec<String> = line.split(',').map(str::to_owned).collect();
            (cells[0].clone(), cells)
        })
        .collect();
    let cell = |row: &str, column: &str| rows[row][header.iter().position(|name| *name == column).unwrap()].clone();
    assert_eq!(cell("total", "opened"), "3");
    assert_eq!(cell("total", "first_response_median_ms"), (10 * MINUTE).to_string());
    assert_eq!(cell("total", "resolved_without_transfer"), "0.3333");
    assert_eq!(cell("technical", "sla_breaches"), "1");
    assert_eq!(rows.len(), 1 + report["groups"].as_array().unwrap().len());

    // Agents do not read reports; bad parameters name themselves.
    let (status, _) = desk
        .call(reqwest::Method::GET, &format!("/reports/overview?{range}"), "ana", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for (query, field) in [
        ("from=2026-12-01&to=2026-11-30", "to"),
        ("from=yesterday&to=2026-12-01", "from"),
        ("from=2026-11-30&to=2026-12-01&by=mood", "by"),
        ("from=2026-11-30&to=2026-12-01&time_zone=Mars/Olympus", "time_zone"),
        ("from=2025-01-01&to=2026-12-01", "to"),
    ] {
        let (status, body) = desk
            .call(
                reqwest::Method::GET,
                &format!("/reports/overview?{query}"),
                READER,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("`{field}`")),
            "{body}"
        );
    }
    desk.stop().await;
}
