//! The benchmark program runs every scenario end to end against the debug daemon, for a
//! second each (ingest, end to end and scale also on PostgreSQL, with one daemon and with
//! two; the email scenario on 200 mails and 10 live ones, Telegram on 5 replies
//! to one chat and 60 chats, the SLA scheduler on 2,000 conversations, status updates on
//! 300, outbound delivery on 300 messages), and what it reports is consistent: every
//! acknowledged message stored, every mail imported and threaded, every acknowledgement
//! delivered, every Telegram reply sent once and in order within the sending limits, every
//! SLA breach fired once, every status update written once and none with updates off,
//! every outbound message delivered once and none to a destination that is down, no
//! request failed. Speed is
//! not asserted here; the figures are for BENCHMARKS.md, from release builds. The
//! scheduler's wake-ups are: a handful, however many conversations are open.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn daemon_beside_bench() -> PathBuf {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_switchboard-bench"));
    let daemon = bench.with_file_name("switchboard");
    assert!(
        daemon.is_file(),
        "no daemon at {}: build the workspace (`cargo build --workspace`) first",
        daemon.display()
    );
    daemon
}

fn assert_clean(run: &Value, what: &str) {
    assert_eq!(run["errors"], 0, "{what} had errors: {}", run["error_samples"]);
    assert!(
        run["acknowledged"].as_u64().unwrap_or(0) > 0,
        "{what} acknowledged nothing: {run}"
    );
}

#[test]
fn every_scenario_runs_and_reports_consistent_figures() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("results.json");
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard-bench"))
        .arg("--daemon")
        .arg(daemon_beside_bench())
        .args([
            "--seconds",
            "1",
            "--clients",
            "4",
            "--scale-messages",
            "20000",
            "--email-mails",
            "200",
            // Dovecot holds each IDLE notification for 500 ms: ten are enough here.
            "--email-live",
            "10",
            // One message a second to a chat: five replies take five seconds. Sixty
            // chats are two seconds' worth of the bot's 30 a second, twice.
            "--telegram-replies",
            "5",
            "--telegram-chats",
            "60",
            "--scheduler-conversations",
            "2000",
            "--scheduler-idle-seconds",
            "1",
            "--updates-conversations",
            "300",
            "--outbound-messages",
            "300",
            "--store",
            "sqlite,postgres,postgres-2",
            "--json",
        ])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the benchmark failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for row in [
        "ingest: daemon",
        "ingest: bare endpoint",
        "mixed: agents' list queries",
        "scale: detail queries",
        "email: IMAP backfill",
        "email: backfill without acks",
        "email: live mail over IMAP IDLE",
        "telegram: 5 replies, one chat",
        "telegram: 60 chats, acks",
        "telegram: 60 chats, replies",
        "routing: 200 rules, chat lines",
        "routing: 200 rules, emails",
        "scheduler: breaches, notify",
        "scheduler: breaches, escalate",
        "updates: render th, telegram",
        "updates: ingest, received on",
        "updates: resolve, resolved+csat on",
        "outbound: backlog drain",
        "outbound: backlog, inbox cap 32",
        "outbound: delivered while queueing",
        "outbound: reply 201 -> received",
        "outbound: bare POST -> received",
        "outbound: ack, other idle",
        "outbound: ack, other up",
        "outbound: ack, other down",
        "outbound: ack, other down+backlog",
        "ingest: daemon [postgres]",
        "ingest: daemon [postgres-2]",
        "e2e, saturated [postgres-2]",
        "scale: detail queries [postgres-2]",
    ] {
        assert!(stdout.contains(row), "the table has no `{row}` row:\n{stdout}");
    }
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();

    let ingest = &report["ingest"][0];
    assert_clean(&ingest["daemon"], "ingest");
    assert_clean(&ingest["bare_endpoint"], "the bare endpoint");
    assert_eq!(ingest["store_matches_acknowledged"], true, "{ingest}");
    assert_eq!(ingest["stored_inbound"], ingest["acknowledged_including_warmup"]);
    assert!(report["idle_rss_mib"].as_f64().unwrap() > 0.0);
    assert!(
        ingest["cpu"]["daemons_us_per_message"].as_f64().unwrap() > 0.0,
        "{ingest}"
    );

    for (store, daemons) in [("postgres", 1), ("postgres-2", 2)] {
        let figures = &report["stores"][store];
        let ingest = &figures["ingest"][0];
        assert_clean(&ingest["daemon"], store);
        assert_eq!(ingest["daemons"], daemons, "{ingest}");
        assert_eq!(ingest["store_matches_acknowledged"], true, "{store}: {ingest}");
        for cpu in ["daemons_us_per_message", "postgres_us_per_message"] {
            assert!(ingest["cpu"][cpu].as_f64().unwrap() > 0.0, "{store}: {ingest}");
        }
        assert!(ingest["postgres"]["commits"].as_u64().unwrap() > 0, "{store}: {ingest}");
        let end_to_end = figures["end_to_end"].as_array().unwrap();
        assert_eq!(end_to_end.len(), 3, "{store}: two paced runs and a saturated one");
        for run in end_to_end {
            assert_clean(&run["ingest"], store);
            assert_eq!(run["acknowledgements_missing"], 0, "{store}: {run}");
            assert_eq!(run["acknowledgements_timed"], run["ingest"]["acknowledged"]);
        }
        let scale = &figures["scale"];
        assert_eq!(scale["messages"], 20_000, "{store}");
        for kind in ["list", "detail"] {
            assert_eq!(scale[kind]["errors"], 0, "{store} scale {kind}: {scale}");
            assert!(scale[kind]["per_second"].as_f64().unwrap() > 0.0, "{store}: {scale}");
        }
    }

    assert_clean(&report["mixed"]["ingest"], "mixed ingest");
    assert_clean(&report["mixed"]["agent_list_queries"], "agents' queries");

    let end_to_end = report["end_to_end"].as_array().unwrap();
    assert_eq!(end_to_end.len(), 3, "two paced runs and a saturated one");
    for run in end_to_end {
        assert_clean(&run["ingest"], "end to end");
        assert_eq!(run["acknowledgements_missing"], 0, "{run}");
        assert_eq!(run["acknowledgements_timed"], run["ingest"]["acknowledged"]);
    }

    let scale = &report["scale"];
    assert_eq!(scale["messages"], 20_000);
    for kind in ["list", "detail"] {
        assert_eq!(
            scale[kind]["errors"], 0,
            "scale {kind}: {}",
            scale[kind]["error_samples"]
        );
        assert!(scale[kind]["per_second"].as_f64().unwrap() > 0.0);
    }

    let email = &report["email"];
    assert_eq!(email["mails"], 200);
    for backfill in ["backfill", "backfill_without_acknowledgements"] {
        let backfill = &email[backfill];
        assert_eq!(backfill["stored_inbound"], 200, "{email}");
        assert_eq!(backfill["store_matches_delivered"], true);
        assert!(backfill["per_second"].as_f64().unwrap() > 0.0, "{email}");
        assert!(backfill["daemon_cpu_seconds"].as_f64().unwrap() > 0.0, "{email}");
    }
    let mix = &email["mix"];
    let formats: u64 = ["plain_text", "text_and_html", "with_attachment"]
        .iter()
        .map(|kind| mix[kind].as_u64().unwrap())
        .sum();
    assert_eq!(formats, 200, "every mail has one format: {mix}");
    for kind in ["with_attachment", "replies"] {
        assert!(mix[kind].as_u64().unwrap() > 0, "no mail in the mix is {kind}: {mix}");
    }
    assert_eq!(email["replies_threaded"], email["replies"], "{email}");
    let acks = &email["acknowledgements"];
    assert_eq!(acks["failed"], 0, "{acks}");
    assert_eq!(acks["sent"], acks["queued"], "{acks}");
    assert_eq!(acks["relay_accepted"], acks["sent"], "{acks}");
    assert!(acks["sent"].as_u64().unwrap() > 0, "{acks}");
    let live = &email["live"];
    assert_eq!(live["timed"], live["mails"], "{live}");
    assert!(live["p50_ms"].as_f64().unwrap() > 0.0, "{live}");
    assert!(email["peak_rss_mib"].as_f64().unwrap() > 0.0, "{email}");
    assert!(email["store_bytes"].as_u64().unwrap() > 0, "{email}");

    let telegram = &report["telegram"];
    let one = &telegram["one_chat"];
    assert_eq!(
        one["sent_to_the_chat"], 6,
        "the acknowledgement and five replies: {one}"
    );
    assert_eq!(one["in_order"], true, "{one}");
    assert_eq!(one["too_many_requests"], 0, "{one}");
    assert_eq!(one["failed_calls"], 0, "{one}");
    // The limits as Telegram states them, measured where Telegram would count: the
    // sender keeps a margin for jitter between its clock and the fake's.
    let min_gap = one["gap_ms"]["min"].as_f64().unwrap();
    assert!(min_gap >= 1000.0, "two messages to one chat {min_gap} ms apart: {one}");
    let many = &telegram["many_chats"];
    assert_eq!(many["chats_complete"], 60, "{many}");
    assert_eq!(many["all_sends"]["sent"], 120, "{many}");
    assert_eq!(many["too_many_requests"], 0, "{many}");
    assert_eq!(many["failed_calls"], 0, "{many}");
    let most = many["all_sends"]["max_in_any_1s_window"].as_u64().unwrap();
    assert!(most <= 30, "{most} messages in one second: {many}");

    let routing = &report["routing"];
    assert_eq!(routing["rules"], 200, "{routing}");
    for kind in ["chat_lines", "emails"] {
        for timing in ["route", "detect_language"] {
            let per_second = routing[kind][timing]["per_second"].as_f64().unwrap();
            assert!(per_second > 0.0, "routing {kind} {timing}: {routing}");
        }
    }
    let first_match = &routing["first_match"];
    let messages =
        routing["chat_lines"]["messages"].as_u64().unwrap() + routing["emails"]["messages"].as_u64().unwrap();
    let placed: u64 = ["early_rule", "late_rule_only", "no_rule"]
        .iter()
        .map(|place| first_match[place].as_u64().unwrap())
        .sum();
    assert_eq!(placed, messages, "{first_match}");
    for place in ["early_rule", "late_rule_only", "no_rule"] {
        assert!(
            first_match[place].as_u64().unwrap() > 0,
            "no message matches {place}: {first_match}"
        );
    }
    assert!(
        routing["explain_one_email"]["rules_matched"].as_u64().unwrap() > 1,
        "{routing}"
    );

    let scheduler = &report["scheduler"];
    assert_eq!(scheduler["seeding"]["conversations"], 2_000, "{scheduler}");
    assert_eq!(
        scheduler["idle"]["wakeups"], 0,
        "nothing falls due while idle: {scheduler}"
    );
    let paced = &scheduler["idle_with_paced_ingest"]["window"];
    let newcomers = paced["new_conversations"].as_u64().unwrap();
    let wakeups = paced["wakeups"].as_u64().unwrap();
    // The first urgent newcomer is due before every stored deadline; the later ones are
    // not before it. A wake-up or two more when commits overtake one another.
    assert!(
        (1..=5).contains(&wakeups),
        "{wakeups} wake-ups for {newcomers} newcomers: {paced}"
    );
    let notify = &scheduler["firing_notify"];
    assert_eq!(notify["breaches"], 2_000 + newcomers, "{notify}");
    assert_eq!(
        notify["warnings"], 0,
        "each clock fires once, its warning with its breach: {notify}"
    );
    let escalate = &scheduler["firing_escalate"];
    assert_eq!(escalate["firing"]["breaches"], 400, "{escalate}");
    assert_eq!(escalate["escalated_conversations"], 400, "{escalate}");
    assert_eq!(scheduler["next_sla_fire"]["calls"], 1_000, "{scheduler}");

    let updates = &report["updates"];
    let cells = updates["render"]["by_event"].as_array().unwrap();
    let channels = switchboard::channels::registry::REGISTERED.len();
    assert_eq!(
        cells.len(),
        2 * 9 * channels,
        "two languages, nine events, every channel"
    );
    for cell in cells {
        assert!(cell["renders"].as_u64().unwrap() >= 100, "{cell}");
        assert!(cell["p50_us"].as_f64().unwrap() > 0.0, "{cell}");
    }
    let store = &updates["store"];
    assert_eq!(store["conversations"], 300, "{store}");
    let off = &store["updates_off"]["rows"];
    let on = &store["updates_on"]["rows"];
    for rows in [off, on] {
        assert_eq!(rows["resolved_conversations"], 300, "{rows}");
    }
    for count in ["status_update_messages", "outbox", "status_updates_sent", "csat_tokens"] {
        assert_eq!(off[count], 0, "updates off wrote {count}: {off}");
    }
    // received on ingest; resolved and csat on resolution.
    assert_eq!(on["status_update_messages"], 900, "{on}");
    assert_eq!(on["outbox"], 900, "{on}");
    assert_eq!(
        on["status_updates_sent"], 600,
        "only repeatable updates keep a window: {on}"
    );
    assert_eq!(on["csat_tokens"], 300, "{on}");
    assert_eq!(store["updates_on"]["resolve"]["calls"], 300, "{store}");

    let outbound = &report["outbound"];
    let throughput = &outbound["throughput"];
    for run in ["backlog", "backlog_inbox_concurrency_32", "while_queueing"] {
        let run = &throughput[run];
        assert_clean(&run["queueing"], "queueing outbound messages");
        assert_eq!(run["queued"], 300, "{run}");
        assert_eq!(run["delivered"], 300, "{run}");
        assert_eq!(run["sent_in_store"], 300, "{run}");
        assert_eq!(run["duplicates"], 0, "{run}");
        assert!(run["per_second"].as_f64().unwrap() > 0.0, "{run}");
    }
    for run in ["backlog", "backlog_inbox_concurrency_32"] {
        let run = &throughput[run];
        // Nothing gets through a closed receiver; the sends in flight wait at it.
        assert_eq!(run["delivered_while_queueing"], 0, "{run}");
        let held = run["held_when_the_receiver_opened"].as_u64().unwrap();
        assert!((1..=32).contains(&held), "{held} callbacks held: {run}");
    }
    let latency = &outbound["added_latency"];
    let replies = &latency["replies"];
    assert_clean(&replies["requests"], "paced replies");
    assert_eq!(replies["missing"], 0, "{replies}");
    assert_eq!(
        replies["answer_to_received"]["timed"],
        replies["requests"]["acknowledged"]
    );
    let bare = &latency["bare_hop"];
    assert_clean(&bare["round_trip_from_due"], "the bare hop");
    assert_eq!(
        bare["sent_to_received"]["timed"],
        bare["round_trip_from_due"]["acknowledged"]
    );
    let runs = outbound["one_destination_down"]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4, "the other inbox idle, up, down, down with a backlog");
    for run in runs {
        assert_clean(&run["shop"]["requests"], "acknowledgements to the inbox that is up");
        assert_eq!(run["shop"]["missing"], 0, "{run}");
        let rows = &run["second_inbox_rows_by_status"];
        let queued =
            run["second_inbox_queued_before"].as_u64().unwrap() + run["second_inbox_queued_during"].as_u64().unwrap();
        match run["second_inbox"].as_str().unwrap() {
            "idle" => assert_eq!(queued, 0, "{run}"),
            "up" => assert_eq!(rows["sent"].as_u64(), Some(queued), "{run}"),
            _ => {
                assert!(queued > 0, "{run}");
                assert_eq!(rows["sent"], Value::Null, "nothing reaches a refusing port: {run}");
                assert_eq!(run["second_inbox_paused_at_end"], true, "{run}");
                // The breaker stops the attempts: the first claims' share, not every message.
                let attempts = run["second_inbox_attempts"].as_u64().unwrap();
                assert!((5..=64).contains(&attempts), "{attempts} attempts: {run}");
            }
        }
    }
}

/// The crash soak, two kills with 0.2 – 0.5 s of load each on all three channels: the
/// program's own checks pass (nothing acknowledged lost or doubled, every reply
/// delivered, the store intact) and each channel carried traffic both ways.
#[test]
fn the_crash_soak_finds_nothing_lost_in_two_cycles() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("soak.json");
    let output = Command::new(env!("CARGO_BIN_EXE_soak"))
        .arg("--daemon")
        .arg(daemon_beside_bench())
        .args([
            "--cycles",
            "2",
            "--min-ms",
            "200",
            "--max-ms",
            "500",
            "--webhook-clients",
            "2",
            "--json",
        ])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the soak failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["integrity_check"], "ok", "{report}");
    for channel in ["webhook", "email", "telegram"] {
        let inbound = &report["inbound"][channel];
        assert!(inbound["acknowledged"].as_u64().unwrap() > 0, "{channel}: {report}");
        assert_eq!(inbound["lost"], 0, "{channel}: {report}");
        assert_eq!(inbound["doubled"], 0, "{channel}: {report}");
        let outbound = &report["outbound"][channel];
        assert!(outbound["outbox_sent"].as_u64().unwrap() > 0, "{channel}: {report}");
        assert_eq!(outbound["replies_lost"], 0, "{channel}: {report}");
        assert_eq!(outbound["unmatched"], 0, "{channel}: {report}");
    }
}
