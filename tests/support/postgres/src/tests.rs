use std::process::ExitStatus;

use switchboard_test_mailservers::eventually;

use super::*;

/// Set for the child process of the tests of the shared cluster's end: `exit:REPORT` or
/// `hang:REPORT`, REPORT being the file where it writes the cluster's dir and postmaster.
const CHILD: &str = "SWITCHBOARD_TEST_POSTGRES_CHILD";

/// The processes (PID and command line) that name a path inside `dir` or work inside it:
/// the postmaster names its data dir, the watchdog names the dir, and every postgres
/// process works in the data dir (a backend's command line is only "postgres: …").
fn processes_in(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap() {
        let path = entry.unwrap().path();
        let Some(pid) = path
            .file_name()
            .unwrap()
            .to_str()
            .filter(|name| name.parse::<u32>().is_ok())
        else {
            continue;
        };
        // Either may be unreadable: a process that just ended, or a zombie (no cwd).
        let cmdline = std::fs::read(path.join("cmdline")).unwrap_or_default();
        let args: Vec<String> = cmdline
            .split(|&byte| byte == 0)
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect();
        let names_dir = args.iter().any(|arg| Path::new(arg).starts_with(dir));
        let works_in_dir = std::fs::read_link(path.join("cwd")).is_ok_and(|cwd| cwd.starts_with(dir));
        if names_dir || works_in_dir {
            found.push(format!("{pid}: {}", args.join(" ")));
        }
    }
    found
}

fn database_of(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

#[test]
fn the_highest_installed_version_is_used() {
    let versions = tempfile::tempdir().unwrap();
    for (version, binary) in [
        ("9.6", true),
        ("13", true),
        ("15", true),
        ("16", false),
        ("notes", true),
    ] {
        let bin = versions.path().join(version).join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        if binary {
            std::fs::write(bin.join("postgres"), "").unwrap();
        }
    }
    assert_eq!(bin_dir_in(versions.path()), versions.path().join("15/bin"));
}

#[test]
fn without_postgresql_the_panic_says_how_to_install_it() {
    let empty = tempfile::tempdir().unwrap();
    for versions in [empty.path().to_owned(), empty.path().join("absent")] {
        let panic = std::panic::catch_unwind(|| bin_dir_in(&versions)).unwrap_err();
        let message = panic.downcast_ref::<String>().unwrap();
        assert!(message.contains("scripts/test installs it"), "{message}");
    }
}

#[tokio::test]
async fn a_cluster_starts_and_answers_select_1_within_the_deadline() {
    let cluster = tokio::time::timeout(DEADLINE, Cluster::start())
        .await
        .expect("the cluster started within the deadline");
    let answer = tokio::time::timeout(DEADLINE, cluster.psql("postgres", "SELECT 1")).await;
    assert_eq!(answer.expect("SELECT 1 answered within the deadline"), "1");
    assert_eq!(
        cluster.url("inbox"),
        format!("postgres://postgres@127.0.0.1:{}/inbox", cluster.port())
    );
    eprintln!(
        "initdb took {:?}, the postmaster's start {:?}",
        cluster.initdb_took(),
        cluster.start_took()
    );
}

#[tokio::test]
async fn settings_given_at_the_start_override_the_defaults_and_only_for_that_cluster() {
    let durable = Cluster::start_with(&["fsync=on", "synchronous_commit=on"]).await;
    assert_eq!(durable.psql("postgres", "SHOW fsync").await, "on");
    assert_eq!(durable.psql("postgres", "SHOW synchronous_commit").await, "on");
    // The checkpointer lives as long as the server: a child of the postmaster.
    let checkpointer = "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'";
    let checkpointer = durable.psql("postgres", checkpointer).await;
    let stat = std::fs::read_to_string(format!("/proc/{checkpointer}/stat")).unwrap();
    let parent = stat.rsplit_once(')').unwrap().1.split_whitespace().nth(1).unwrap();
    assert_eq!(parent, durable.postmaster().to_string());
    assert_eq!(Cluster::shared().await.psql("postgres", "SHOW fsync").await, "off");
}

#[tokio::test]
async fn fresh_databases_are_distinct_and_isolated() {
    let cluster = Cluster::shared().await;
    let started = Instant::now();
    let first = cluster.fresh_database().await;
    let took = started.elapsed();
    let second = cluster.fresh_database().await;
    assert_ne!(first, second);

    cluster
        .psql(
            database_of(&first),
            "CREATE TABLE inbox (id int); INSERT INTO inbox VALUES (7)",
        )
        .await;
    assert_eq!(cluster.psql(database_of(&first), "SELECT id FROM inbox").await, "7");
    let tables = "SELECT count(*) FROM pg_tables WHERE tablename = 'inbox'";
    assert_eq!(cluster.psql(database_of(&second), tables).await, "0");
    eprintln!("CREATE DATABASE (with psql) took {took:?}");
}

#[tokio::test]
async fn a_named_database_has_that_name_and_an_odd_name_is_refused() {
    let cluster = Cluster::shared().await;
    let url = cluster.database("named_inbox").await;
    assert_eq!(url, cluster.url("named_inbox"));
    assert_eq!(cluster.psql(&url, "SELECT current_database()").await, "named_inbox");
    let odd = tokio::spawn(async move { cluster.database("Robert'); DROP TABLE students;--").await });
    assert!(odd.await.unwrap_err().is_panic());
}

#[tokio::test]
async fn a_dropped_cluster_leaves_no_process_and_no_dir() {
    let cluster = Cluster::start().await;
    let dir = cluster.dir.clone();
    // A session in the middle of a query: its backend must go too.
    let mut session = Command::new(cluster.bin.join("psql"))
        .args(["-X", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-p"])
        .arg(cluster.port().to_string())
        .args(["-c", "SELECT pg_sleep(600)"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("psql runs");
    let sleeping = "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(600)'";
    eventually("psql's session to start", || async {
        (cluster.psql("postgres", sleeping).await == "1").then_some(())
    })
    .await;
    let running = processes_in(&dir);
    assert!(
        running
            .iter()
            .any(|process| process.starts_with(&format!("{}: ", cluster.postmaster))),
        "the postmaster is not among {running:#?}"
    );

    drop(cluster);
    // No polling: drop returns once the watchdog has seen the postmaster exit, and the
    // postmaster exits after its children.
    assert_eq!(processes_in(&dir), Vec::<String>::new());
    assert!(!dir.exists(), "{} is still there", dir.display());
    let status = eventually("psql to notice the server is gone", || {
        let status = session.try_wait().unwrap();
        async move { status }
    })
    .await;
    assert!(!status.success());
}

#[tokio::test]
async fn the_shared_cluster_is_the_same_across_calls_and_runtimes() {
    let first = Cluster::shared().await;
    let second = Cluster::shared().await;
    let from_elsewhere = std::thread::spawn(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(Cluster::shared())
    })
    .join()
    .unwrap();
    assert!(std::ptr::eq(first, second));
    assert!(std::ptr::eq(first, from_elsewhere));
    assert_eq!(first.psql("postgres", "SELECT 1").await, "1");
}

/// The body of the child process of the two tests below: takes the shared cluster,
/// reports it, then returns (`exit`) or waits to be killed (`hang`).
#[tokio::test]
#[ignore = "run by the tests of the shared cluster's end, in a process of its own"]
async fn child_holding_the_shared_cluster() {
    let Ok(order) = std::env::var(CHILD) else {
        return;
    };
    let (how, report) = order.split_once(':').unwrap();
    let cluster = Cluster::shared().await;
    // A database and a live session, as a test that ends early would leave them.
    let url = cluster.fresh_database().await;
    #[expect(clippy::zombie_processes, reason = "left running: the cluster's stop must end it")]
    let _session = Command::new(cluster.bin.join("psql"))
        .args(["-X", "-d", &url, "-c", "SELECT pg_sleep(600)"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("psql runs");
    let partial = format!("{report}.partial");
    std::fs::write(&partial, format!("{}\n{}\n", cluster.dir.display(), cluster.postmaster)).unwrap();
    std::fs::rename(partial, report).unwrap();
    if how == "hang" {
        std::future::pending::<()>().await;
    }
    // Exiting before the parent has seen the postmaster alive would stop the cluster
    // under its check: the parent takes the report away once it has looked.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::path::Path::new(report).exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// A process running [`child_holding_the_shared_cluster`], once it has reported: the
/// process, the cluster's dir, its postmaster, and the dir that holds the report.
async fn child_with_a_shared_cluster(how: &str) -> (Child, PathBuf, u32, tempfile::TempDir) {
    let reports = tempfile::tempdir().unwrap();
    let report = reports.path().join("cluster");
    let output = reports.path().join("output");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["tests::child_holding_the_shared_cluster", "--exact", "--ignored"])
        .env(CHILD, format!("{how}:{}", report.display()))
        .stdout(std::fs::File::create(&output).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("the test binary runs");
    let text = eventually("the child to report its cluster", || {
        if let Some(status) = child.try_wait().unwrap()
            && !report.exists()
        {
            let output = std::fs::read_to_string(&output).unwrap_or_default();
            panic!("the child exited with {status} before reporting:\n{output}");
        }
        let text = std::fs::read_to_string(&report).ok();
        async move { text }
    })
    .await;
    let (dir, postmaster) = text.trim().split_once('\n').unwrap();
    let postmaster: u32 = postmaster.parse().unwrap();
    assert!(alive(postmaster), "the child's postmaster {postmaster} is not running");
    std::fs::remove_file(&report).unwrap();
    (child, PathBuf::from(dir), postmaster, reports)
}

/// Waits for the child's end, then for its cluster's: how long the postmaster outlived
/// the child, and how long the rest (the watchdog, the other postgres processes, the dir).
async fn cluster_outlives(child: &mut Child, dir: &Path, postmaster: u32) -> (ExitStatus, Duration, Duration) {
    let status = eventually("the child to exit", || {
        let status = child.try_wait().unwrap();
        async move { status }
    })
    .await;
    let ended = Instant::now();
    eventually("the shared cluster's postmaster to stop", || {
        let stopped = !alive(postmaster);
        async move { stopped.then_some(()) }
    })
    .await;
    let postmaster_outlived = ended.elapsed();
    eventually("the shared cluster's processes and dir to go", || {
        let gone = processes_in(dir).is_empty() && !dir.exists();
        async move { gone.then_some(()) }
    })
    .await;
    (status, postmaster_outlived, ended.elapsed())
}

#[tokio::test]
async fn the_shared_cluster_stops_when_its_test_process_exits() {
    let (mut child, dir, postmaster, _reports) = child_with_a_shared_cluster("exit").await;
    let (status, postmaster_outlived, outlived) = cluster_outlives(&mut child, &dir, postmaster).await;
    assert!(status.success(), "the child failed: {status}");
    eprintln!("after its process exited, the postmaster ran {postmaster_outlived:?}, the rest {outlived:?}");
}

#[tokio::test]
async fn the_shared_cluster_stops_when_its_test_process_is_killed() {
    let (mut child, dir, postmaster, _reports) = child_with_a_shared_cluster("hang").await;
    child.kill().unwrap();
    let (_, postmaster_outlived, outlived) = cluster_outlives(&mut child, &dir, postmaster).await;
    eprintln!("after SIGKILL ended its process, the postmaster ran {postmaster_outlived:?}, the rest {outlived:?}");
}
