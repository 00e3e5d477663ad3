//! `/metrics` for operators: counters since start (messages received, HTTP responses,
//! ingest time) and the queue and SLA per team.

use reqwest::StatusCode;

use crate::harness::{Daemon, Receiver, SignAs, config, customer_message, eventually};

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
    assert_eq!(count(&before, "switchboard_ingest_seconds_count"), 0);
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

    // Every ingest, the duplicate's too, is in the histogram: cumulative buckets that
    // end at the count.
    assert_eq!(count(&after, "switchboard_ingest_seconds_count"), 4, "{after}");
    assert_eq!(
        count(&after, "switchboard_ingest_seconds_bucket{le=\"+Inf\"}"),
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
    let sum: f64 = sample(&after, "switchboard_ingest_seconds_sum").parse().unwrap();
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
