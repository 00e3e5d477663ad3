//! `/metrics` for operators: counters since start (messages received, HTTP requests by
//! route, ingest time per channel), the queue and SLA per team, SLA events counted from
//! the event log, subscriptions' backlogs, and the pull readers' state.

use reqwest::{Method, StatusCode};
use serde_json::json;
use switchboard_test_telegram::{FakeTelegram, private_text, telegram_inbox};

use crate::harness::{
    Daemon, Receiver, SECRET, SignAs, config, config_with_inbox, customer_message, eventually, unix_now,
};

/// The scrape, as text.
async fn scrape(daemon: &Daemon) -> String {
    reqwest::get(daemon.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of the one sample `series` (name and labels) in `metrics`.
fn sample<'a>(metrics: &'a str, series: &str) -> &'a str {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no `{series}` in:\n{metrics}"))
}

#[tokio::test]
async fn each_team_shows_its_queue_and_sla_gauges() {
    let receiver = Receiver::start().await;
    let daemon = Daemon::start(&receiver.url()).await;
    let metrics = scrape(&daemon).await;
    for team in ["support", "billing", "technical"] {
        assert_eq!(
            sample(&metrics, &format!("switchboard_queue_waiting{{team=\"{team}\"}}")),
            "0"
        );
        assert_eq!(
            sample(
                &metrics,
                &format!("switchboard_queue_oldest_waiting_seconds{{team=\"{team}\"}}")
            ),
            "0.000"
        );
    }
    assert!(
        metrics.contains("# TYPE switchboard_queue_waiting gauge\n"),
        "{metrics}"
    );

    // Two refunds for Billing, a greeting for Support (the default team).
    daemon.post_accepted("e1", "ada", "I need a refund").await;
    daemon.post_accepted("e2", "bob", "I was charged twice").await;
    daemon.post_accepted("e3", "cyd", "Hello").await;

    let metrics = scrape(&daemon).await;
    for (team, waiting) in [("support", "1"), ("billing", "2"), ("technical", "0")] {
        assert_eq!(
            sample(&metrics, &format!("switchboard_queue_waiting{{team=\"{team}\"}}")),
            waiting,
            "{team}"
        );
        // The test config has no SLA: nothing is at risk or breached.
        assert_eq!(
            sample(&metrics, &format!("switchboard_sla_at_risk{{team=\"{team}\"}}")),
            "0"
        );
        assert_eq!(
            sample(&metrics, &format!("switchboard_sla_breached_open{{team=\"{team}\"}}")),
            "0"
        );
    }
    let oldest: f64 = sample(&metrics, "switchboard_queue_oldest_waiting_seconds{team=\"billing\"}")
        .parse()
        .unwrap();
    assert!((0.0..60.0).contains(&oldest), "{metrics}");
    assert_eq!(
        sample(&metrics, "switchboard_queue_oldest_waiting_seconds{team=\"technical\"}"),
        "0.000"
    );

    // The queue waits on the clock: its oldest only grows while nobody takes it.
    eventually("the billing queue's wait to grow", || async {
        let later: f64 = sample(
            &scrape(&daemon).await,
            "switchboard_queue_oldest_waiting_seconds{team=\"billing\"}",
        )
        .parse()
        .ok()?;
        (later > oldest).then_some(())
    })
    .await;
}

/// The counter `series` in `metrics`, as a number.
fn count(metrics: &str, series: &str) -> u64 {
    sample(metrics, series)
        .parse()
        .unwrap_or_else(|_| panic!("`{series}` is not a count in:\n{metrics}"))
}

#[tokio::test]
async fn messages_responses_and_ingest_times_are_counted_since_start() {
    let receiver = Receiver::start().await;
    let daemon = Daemon::start(&receiver.url()).await;
    let received = "switchboard_messages_received_total{inbox=\"shop\",channel=\"webhook\"}";
    let responses = |metrics: &str, class: &str| {
        count(
            metrics,
            &format!("switchboard_http_responses_total{{code=\"{class}\"}}"),
        )
    };
    let before = scrape(&daemon).await;
    assert_eq!(count(&before, received), 0);
    assert_eq!(
        count(&before, "switchboard_ingest_seconds_count{channel=\"webhook\"}"),
        0
    );
    assert!(
        before.contains("# TYPE switchboard_ingest_seconds histogram\n"),
        "{before}"
    );

    // Three new messages, a duplicate (acknowledged, not counted as received), and two
    // refusals that never reach ingest.
    for (id, from, text) in [
        ("e1", "ada", "I need a refund"),
        ("e2", "bob", "Hello"),
        ("e3", "ada", "Hi"),
    ] {
        daemon.post_accepted(id, from, text).await;
    }
    let (status, _) = daemon
        .post_signed(&customer_message("e1", "ada", "I need a refund"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let body = customer_message("e4", "ada", "unsigned").to_string().into_bytes();
    let (status, _) = daemon.post_raw("shop", body.clone(), SignAs::Unsigned).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = daemon.post_raw("nowhere", body, SignAs::Now).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let after = scrape(&daemon).await;
    assert_eq!(count(&after, received), 3, "{after}");
    // The four posts that were taken and the first scrape; the scrape being answered is
    // counted once it is.
    assert_eq!(responses(&after, "2xx") - responses(&before, "2xx"), 5, "{after}");
    assert_eq!(responses(&after, "4xx") - responses(&before, "4xx"), 2, "{after}");
    assert_eq!(responses(&after, "5xx"), 0, "{after}");

    // Every ingest, the duplicate's too, is in the webhook channel's histogram:
    // cumulative buckets that end at the count. No other channel is configured.
    assert_eq!(
        count(&after, "switchboard_ingest_seconds_count{channel=\"webhook\"}"),
        4,
        "{after}"
    );
    assert_eq!(
        count(
            &after,
            "switchboard_ingest_seconds_bucket{channel=\"webhook\",le=\"+Inf\"}"
        ),
        4,
        "{after}"
    );
    let buckets: Vec<u64> = after
        .lines()
        .filter(|line| line.starts_with("switchboard_ingest_seconds_bucket{"))
        .map(|line| line.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(buckets.len(), 13, "{after}");
    assert!(buckets.windows(2).all(|pair| pair[0] <= pair[1]), "{after}");
    let sum: f64 = sample(&after, "switchboard_ingest_seconds_sum{channel=\"webhook\"}")
        .parse()
        .unwrap();
    assert!(sum > 0.0, "{after}");
}

#[tokio::test]
async fn with_a_metrics_token_a_scrape_without_it_is_refused() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let text = config(dir.path(), &receiver.url()).replacen(
        "[server]\n",
        "[server]\nmetrics_token_env = \"SWITCHBOARD_TEST_SCRAPE_TOKEN\"\n",
        1,
    );
    std::fs::write(dir.path().join("switchboard.toml"), text).unwrap();
    let daemon = Daemon::start_with_env(dir, &[("SWITCHBOARD_TEST_SCRAPE_TOKEN", "scrape-me")]).await;
    let http = reqwest::Client::new();
    let scrape_with = |authorization: Option<&'static str>| {
        let mut request = http.get(daemon.url("/metrics"));
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        request.send()
    };
    for refused in [
        None,
        Some("Bearer wrong"),
        Some("Bearer scrape-m"),
        Some("Basic scrape-me"),
    ] {
        let response = scrape_with(refused).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{refused:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    }
    let response = scrape_with(Some("Bearer scrape-me")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let metrics = response.text().await.unwrap();
    // The refusals were answered, and counted, before this scrape.
    assert_eq!(
        count(&metrics, "switchboard_http_responses_total{code=\"4xx\"}"),
        4,
        "{metrics}"
    );
}

/// The lines of the family `name` (its samples, not its comments).
fn family<'a>(metrics: &'a str, name: &str) -> Vec<&'a str> {
    metrics
        .lines()
        .filter(|line| line.strip_prefix(name).is_some_and(|rest| rest.starts_with('{')))
        .collect()
}

#[tokio::test]
async fn requests_are_counted_by_route_template_not_by_the_path_sent() {
    let receiver = Receiver::start().await;
    let daemon = Daemon::start(&receiver.url()).await;
    let token = daemon.agent("sam", "support", "admin");
    let first = daemon.post_accepted("e1", "ada", "Hello").await["conversation_id"]
        .as_i64()
        .unwrap();
    let second = daemon.post_accepted("e2", "bob", "Hi").await["conversation_id"]
        .as_i64()
        .unwrap();
    assert_ne!(first, second);
    for id in [first, second] {
        daemon.get(&format!("/conversations/{id}"), &token).await;
    }
    let (status, _) = daemon.api(Method::GET, "/conversations/999999", &token, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Paths no route knows, as a scanner sends them: one series between them.
    for path in ["/wp-login.php", "/api/v1/nothing/1", "/api/v1/nothing/2"] {
        let response = reqwest::get(daemon.url(path)).await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }

    // A known path with a method it does not take counts under its route.
    let response = reqwest::Client::new()
        .delete(daemon.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);

    let metrics = scrape(&daemon).await;
    assert!(
        metrics.contains("# TYPE switchboard_http_requests_total counter\n"),
        "{metrics}"
    );
    let requests = |route: &str, class: &str| {
        count(
            &metrics,
            &format!("switchboard_http_requests_total{{route=\"{route}\",code=\"{class}\"}}"),
        )
    };
    assert_eq!(requests("/api/v1/conversations/{id}", "2xx"), 2);
    assert_eq!(requests("/api/v1/conversations/{id}", "4xx"), 1);
    assert_eq!(requests("/hooks/{inbox}", "2xx"), 2);
    assert_eq!(requests("unmatched", "4xx"), 3);
    assert_eq!(requests("/healthz", "4xx"), 1);
    let lines = family(&metrics, "switchboard_http_requests_total");
    for raw in [first.to_string(), second.to_string(), "999999".into(), "shop".into()] {
        assert!(
            !lines.iter().any(|line| line.contains(&format!("/{raw}\""))),
            "a raw path is a label: {lines:#?}"
        );
    }
    // A series appears with its first request: none for routes nobody called.
    assert!(
        !lines.iter().any(|line| line.contains("/api/v1/saved-replies")),
        "{lines:#?}"
    );
    // The classes' totals are the routes' sums.
    let routes_2xx: u64 = lines
        .iter()
        .filter(|line| line.contains("code=\"2xx\""))
        .map(|line| line.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(
        count(&metrics, "switchboard_http_responses_total{code=\"2xx\"}"),
        routes_2xx
    );
}

/// The test config with a two-second first-response target for Billing: its warning
/// fires at 80%, its breach at the target.
fn with_fast_billing_sla(dir: &std::path::Path, callback_url: &str) -> String {
    let config = config(dir, callback_url);
    let billing = "[teams.billing]\nname = \"Billing\"\n";
    assert!(config.contains(billing), "the test config no longer says {billing}");
    config.replacen(
        billing,
        r#"[teams.billing]
name = "Billing"
sla = "fast"

[sla_policies.fast]
time = "calendar"
first_response = "2s"
"#,
        1,
    )
}

#[tokio::test]
async fn sla_warnings_and_breaches_are_counted_per_team_and_survive_a_restart() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("switchboard.toml"),
        with_fast_billing_sla(dir.path(), &receiver.url()),
    )
    .unwrap();
    let daemon = Daemon::start_in(dir).await;
    let before = scrape(&daemon).await;
    for team in ["support", "billing", "technical"] {
        for family in ["switchboard_sla_warnings_total", "switchboard_sla_breaches_total"] {
            assert_eq!(count(&before, &format!("{family}{{team=\"{team}\"}}")), 0, "{before}");
        }
    }
    assert!(
        before.contains("# TYPE switchboard_sla_breaches_total counter\n"),
        "{before}"
    );

    daemon.post_accepted("e1", "ada", "I need a refund").await;
    daemon.post_accepted("e2", "bob", "Hello").await;
    let breached = eventually("billing's breach to be counted", || async {
        let metrics = scrape(&daemon).await;
        (count(&metrics, "switchboard_sla_breaches_total{team=\"billing\"}") == 1).then_some(metrics)
    })
    .await;
    assert_eq!(
        count(&breached, "switchboard_sla_warnings_total{team=\"billing\"}"),
        1,
        "{breached}"
    );
    // Support has no SLA: its greeting is neither warned of nor breached.
    for family in ["switchboard_sla_warnings_total", "switchboard_sla_breaches_total"] {
        assert_eq!(
            count(&breached, &format!("{family}{{team=\"support\"}}")),
            0,
            "{breached}"
        );
    }
    assert_eq!(
        count(&breached, "switchboard_sla_breached_open{team=\"billing\"}"),
        1,
        "{breached}"
    );

    // Counted from the event log, not in memory: a restarted daemon reads the same.
    let (dir, exit) = daemon.stop();
    assert!(exit.success(), "{exit:?}");
    let daemon = Daemon::start_in(dir).await;
    let restarted = scrape(&daemon).await;
    assert_eq!(
        count(&restarted, "switchboard_sla_breaches_total{team=\"billing\"}"),
        1,
        "{restarted}"
    );
    assert_eq!(
        count(&restarted, "switchboard_sla_warnings_total{team=\"billing\"}"),
        1,
        "{restarted}"
    );
}

#[tokio::test]
async fn a_subscription_whose_receiver_is_down_shows_its_backlog_and_how_old_it_is() {
    let receiver = Receiver::start().await;
    let daemon = Daemon::start(&receiver.url()).await;
    let admin = daemon.agent("ada", "support", "admin");
    // A port nothing listens on: every delivery is refused, and retried.
    let down = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hooks", listener.local_addr().unwrap())
    };
    let mut ids = Vec::new();
    for url in [down, receiver.url()] {
        let (status, body) = daemon
            .api(
                Method::POST,
                "/subscriptions",
                &admin,
                Some(json!({"url": url, "events": ["conversation.created"], "secret": SECRET})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        ids.push(body["id"].as_i64().unwrap());
    }
    let (down, up) = (ids[0], ids[1]);
    let metrics = scrape(&daemon).await;
    for id in [down, up] {
        assert_eq!(
            count(
                &metrics,
                &format!("switchboard_subscription_pending{{subscription=\"{id}\"}}")
            ),
            0,
            "{metrics}"
        );
    }

    daemon.post_accepted("e1", "ada", "Hello").await;
    let pending = |metrics: &str, id: i64| {
        count(
            metrics,
            &format!("switchboard_subscription_pending{{subscription=\"{id}\"}}"),
        )
    };
    let age = |metrics: &str, id: i64| -> f64 {
        sample(
            metrics,
            &format!("switchboard_subscription_oldest_pending_age_seconds{{subscription=\"{id}\"}}"),
        )
        .parse()
        .unwrap()
    };
    // The working receiver's delivery goes; the other waits, and its wait grows.
    let first = eventually("the working receiver's backlog to clear", || async {
        let metrics = scrape(&daemon).await;
        (pending(&metrics, up) == 0 && pending(&metrics, down) == 1).then_some(metrics)
    })
    .await;
    assert_eq!(age(&first, up), 0.0, "{first}");
    let waited = age(&first, down);
    eventually("the backlog's age to grow", || async {
        let metrics = scrape(&daemon).await;
        (pending(&metrics, down) == 1 && age(&metrics, down) > waited).then_some(())
    })
    .await;
}

const BOT_TOKEN: &str = "5000000001:AAHfake-token-for-the-shop-help-bot";

#[tokio::test]
async fn a_polling_reader_shows_connected_when_it_last_polled_and_its_ingest_time() {
    let fake = FakeTelegram::start().await;
    fake.add_bot(BOT_TOKEN, 5_000_000_001, "ShopHelpBot");
    let dir = tempfile::tempdir().unwrap();
    let inboxes = telegram_inbox(dir.path(), "shop-bot", BOT_TOKEN, &fake, "");
    std::fs::write(
        dir.path().join("switchboard.toml"),
        config_with_inbox(dir.path(), &inboxes),
    )
    .unwrap();
    let started = unix_now();
    let daemon = Daemon::start_in(dir).await;
    let connected = "switchboard_reader_connected{inbox=\"shop-bot\",channel=\"telegram\"}";
    let polled = "switchboard_reader_last_poll_timestamp_seconds{inbox=\"shop-bot\",channel=\"telegram\"}";
    let polled_at = |metrics: &str| -> f64 { sample(metrics, polled).parse().unwrap() };

    // The first getUpdates is held open by the fake until an update comes: the reader
    // is connected once one was answered.
    fake.push_update(BOT_TOKEN, private_text(424_242, 1, "Hello"));
    let up = eventually("the reader to be connected", || async {
        let metrics = scrape(&daemon).await;
        (count(&metrics, connected) == 1).then_some(metrics)
    })
    .await;
    let at = polled_at(&up);
    assert!(
        (started as f64 - 1.0..=unix_now() as f64 + 1.0).contains(&at),
        "{at} is not since the start: {up}"
    );
    let taken = eventually("the update to be ingested", || async {
        let metrics = scrape(&daemon).await;
        (count(&metrics, "switchboard_ingest_seconds_count{channel=\"telegram\"}") == 1).then_some(metrics)
    })
    .await;
    assert_eq!(
        count(
            &taken,
            "switchboard_messages_received_total{inbox=\"shop-bot\",channel=\"telegram\"}"
        ),
        1,
        "{taken}"
    );
    // Only the configured channel's histogram is shown.
    assert_eq!(family(&taken, "switchboard_ingest_seconds_count").len(), 1, "{taken}");

    // The bot's token revoked: getUpdates is refused, and the reader shows down while
    // its last good poll stays where it was.
    fake.revoke_token(BOT_TOKEN);
    fake.push_update(BOT_TOKEN, private_text(424_242, 2, "Are you there?"));
    let down = eventually("the reader to show down", || async {
        let metrics = scrape(&daemon).await;
        (count(&metrics, connected) == 0).then_some(metrics)
    })
    .await;
    assert!(polled_at(&down) >= at, "{down}");
}
