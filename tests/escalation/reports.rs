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
    // Emma writes again: she waits for a next response from 09:15.
    step(15);
    assert_eq!(
        desk.customer("p-2", "emma", "Thanks! When will it arrive?", Value::Null)
            .await,
        parcel
    );
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
    // Answered at 09:45, thirty minutes after she asked.
    step(45);
    let (status, _) = desk
        .call(
            reqwest::Method::POST,
            &format!("/conversations/{parcel}/messages"),
            READER,
            Some(json!({"text": "Tomorrow by noon."})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
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
    // Every duration falls in the office's hours (09:00-18:00 in Berlin): business time
    // is calendar time here (the unit tests and the next test cross a closing).
    let durations = |count: usize, median: i64, p90: i64, average: i64| {
        json!({
            "count": count,
            "median_ms": median * MINUTE, "p90_ms": p90 * MINUTE, "average_ms": average * MINUTE,
            "business_median_ms": median * MINUTE, "business_p90_ms": p90 * MINUTE,
            "business_average_ms": average * MINUTE,
        })
    };
    assert_eq!(total["first_response"], durations(2, 10, 20, 15));
    // Emma's question of 09:15, answered at 09:45.
    assert_eq!(total["next_response"], durations(1, 30, 30, 30));
    // Resolved now: parcel (09:00 → 09:50) and the outage (09:30 → 10:20); charged was
    // reopened.
    assert_eq!(total["resolution"], durations(2, 50, 50, 50));
    assert_eq!(
        (total["escalations"].clone(), total["escalated"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(
        (
            total["escalations_hierarchical"].clone(),
            total["escalations_functional"].clone()
        ),
        (json!(1), json!(0)),
        "parcel went up a tier of support"
    );
    assert_eq!(
        (total["transfers"].clone(), total["transferred"].clone()),
        (json!(1), json!(1))
    );
    // An escalation passes a case on as a transfer does: only the outage was not.
    assert_eq!(total["resolved_without_transfer"], json!(1.0 / 3.0));
    // Parcel and charged were passed on once each, the outage never.
    assert_eq!(total["transfers_per_conversation"], json!(2.0 / 3.0));
    assert_eq!(total["sla_breaches"], 1);
    assert_eq!(total["breached"], 1);
    // First responses: parcel and charged within their hour, the outage past its 30
    // minutes. Emma's next response within two hours; parcel resolved within its days.
    // The outage was warned at 80 % of its 30 minutes (09:54), seen at 09:55.
    let clock = |met: usize, breached: usize, share: Value, warnings: usize| json!({"met": met, "breached": breached, "share_met": share, "warnings": warnings});
    assert_eq!(total["sla"]["first_response"], clock(2, 1, json!(2.0 / 3.0), 1));
    assert_eq!(total["sla_warnings"], 1);
    assert_eq!(total["sla"]["next_response"], clock(1, 0, json!(1.0), 0));
    assert_eq!(total["sla"]["resolution"], clock(1, 0, json!(1.0), 0));
    // The desk's 30-day cap runs on every conversation: met by parcel and the outage
    // (charged's runs again since it reopened).
    assert_eq!(total["sla"]["max_open"], clock(2, 0, json!(1.0), 0));
    assert_eq!(
        total["breach_actions"],
        json!({"escalated": 0, "priority_raised": 0, "supervisors_notified": 1, "labelled_overdue": 0}),
        "the around-the-clock policy notifies"
    );
    // Four customer messages (Emma's two), Omar's second and Emma's rating; three
    // agents' replies; the escalation's and the transfer's summaries as notes.
    assert_eq!(total["messages_in"], 6);
    assert_eq!(total["messages_out"], 3);
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
        ("next_response", vec![parcel]),
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
    assert_eq!(&header[..4], ["row", "group", "from", "to"]);
    let rows: BTreeMap<String, Vec<String>> = lines
        .map(|line| {
            let cells: Vec<String> = line.split(',').map(str::to_owned).collect();
            let label = if cells[0] == "total" {
                "total".to_owned()
            } else {
                cells[1].clone()
            };
            (label, cells)
        })
        .collect();
    let cell = |row: &str, column: &str| rows[row][header.iter().position(|name| *name == column).unwrap()].clone();
    assert_eq!(cell("total", "opened"), "3");
    assert_eq!(cell("total", "first_response_median_ms"), (10 * MINUTE).to_string());
    assert_eq!(cell("total", "resolved_without_transfer"), "0.3333");
    assert_eq!(cell("technical", "sla_breaches"), "1");
    assert_eq!(cell("total", "sla_first_response_share_met"), "0.6667");
    assert_eq!(cell("total", "next_response_median_ms"), (30 * MINUTE).to_string());
    assert_eq!(cell("total", "from"), "2026-11-29T23:00:00.000Z");
    assert_eq!(rows.len(), 1 + report["groups"].as_array().unwrap().len());

    // By the hour of Berlin's day: 24 buckets; each fact in the hour it happened.
    let hourly = desk
        .get(&format!("/reports/overview?{range}&interval=hour"), READER)
        .await;
    let series = hourly["series"].as_array().unwrap();
    assert_eq!(series.len(), 24);
    assert_eq!(series[0]["from"], "2026-11-29T23:00:00.000Z");
    let of = |hour: usize, figure: &str| series[hour]["figures"][figure].as_u64().unwrap();
    // 10:00 in Berlin is 09:00 UTC: all three opened then, parcel resolved at 09:50;
    // charged (10:00) and the outage (10:20) in the next hour.
    assert_eq!((of(10, "opened"), of(10, "resolved")), (3, 1));
    assert_eq!((of(11, "opened"), of(11, "resolved")), (0, 2));
    let opened: u64 = (0..24).map(|hour| of(hour, "opened")).sum();
    assert_eq!(opened, 3, "the buckets add up to the total");
    let messages: u64 = (0..24).map(|hour| of(hour, "messages_in")).sum();
    assert_eq!(messages, 6);

    // The queue now, per team the reader sees (an admin: every team).
    let queue = report["queue"].as_array().unwrap();
    let teams: Vec<&str> = queue.iter().map(|team| team["team"].as_str().unwrap()).collect();
    for team in ["support", "support-l1", "billing", "technical"] {
        assert!(teams.contains(&team), "{team} in {queue:?}");
    }
    // Waiting: the open conversations of the team nobody holds, as the list shows them.
    for team in queue {
        let key = team["team"].as_str().unwrap();
        let listed = desk
            .get(&format!("/conversations?team={key}&status=open&assignee=none"), READER)
            .await;
        assert_eq!(
            team["waiting"],
            listed["conversations"].as_array().unwrap().len(),
            "{team}"
        );
        assert_eq!(team["oldest_waiting_ms"].is_null(), team["waiting"] == 0, "{team}");
    }

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
        ("from=2026-01-01&to=2026-12-01&interval=hour", "interval"),
        ("from=2026-11-30&to=2026-12-01&interval=fortnight", "interval"),
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

#[tokio::test]
async fn a_response_across_a_closing_is_measured_in_the_teams_business_hours() {
    let callbacks = Callbacks::start().await;
    // Monday 17:50 in Berlin: ten minutes before billing's office closes at 18:00.
    let t0 = at("2026-11-30T16:50:00Z");
    let desk = Desk::start_with(t0, &[("ben", "billing", Role::Agent, true)], &setup(&callbacks)).await;
    let charged = desk.customer("c-1", "omar", "I was charged twice", Value::Null).await;
    // Answered on Tuesday at 09:10 and resolved at 09:40, Berlin time.
    desk.clock.set(at("2026-12-01T08:10:00Z"));
    let (status, body) = desk
        .call(
            reqwest::Method::POST,
            &format!("/conversations/{charged}/messages"),
            "ben",
            Some(json!({"text": "Refunded."})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    desk.clock.set(at("2026-12-01T08:40:00Z"));
    desk.patch(charged, "ben", json!({"status": "resolved"})).await;

    let report = desk
        .get(
            "/reports/overview?from=2026-11-30&to=2026-12-02&time_zone=Europe/Berlin&by=team",
            READER,
        )
        .await;
    let billing = figures_of(&report, "billing");
    // 15 h 20 min on the calendar; 10 minutes on Monday and 10 on Tuesday in the office.
    assert_eq!(billing["first_response"]["median_ms"], 920 * MINUTE);
    assert_eq!(billing["first_response"]["business_median_ms"], 20 * MINUTE);
    assert_eq!(billing["resolution"]["median_ms"], 950 * MINUTE);
    assert_eq!(billing["resolution"]["business_median_ms"], 50 * MINUTE);
    // The SLA's hour is business time too: met.
    assert_eq!(billing["sla"]["first_response"]["met"], 1);
    assert_eq!(billing["sla"]["first_response"]["share_met"], 1.0);
    desk.stop().await;
}
