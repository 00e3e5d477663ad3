//! `/metrics` for operators: the queue and SLA per team.

use crate::harness::{Daemon, Receiver, eventually};

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
