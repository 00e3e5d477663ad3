//! The benchmark program runs every scenario end to end against the debug daemon, for a
//! second each, and what it reports is consistent: every acknowledged message stored,
//! every acknowledgement delivered, no request failed. Speed is not asserted here; the
//! figures are for BENCHMARKS.md, from release builds.

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
}
