//! The command line: `check-config` names the bad key; `agent add` validates.

use std::process::Command;

use crate::harness::config;

fn switchboard(config_text: &str, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchboard.toml");
    std::fs::write(&path, config_text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(&path)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn base() -> String {
    config(std::path::Path::new("/tmp/unused"), "http://127.0.0.1:9/callback")
}

#[test]
fn check_config_accepts_the_test_config_and_the_shipped_default() {
    let (ok, stdout, stderr) = switchboard(&base(), &["check-config"], &[]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("valid"), "{stdout}");
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/switchboard.toml")).unwrap();
    let (ok, _, stderr) = switchboard(&shipped, &["check-config"], &[]);
    assert!(ok, "{stderr}");
}

#[test]
fn check_config_warns_of_an_update_without_a_template_in_a_language_the_desk_detects() {
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/switchboard.toml")).unwrap();
    let (ok, _, stderr) = switchboard(&shipped, &["check-config"], &[]);
    assert!(ok && !stderr.contains("warning"), "{stderr}");
    let without = shipped.replacen(
        "[updates.templates.auto_closed.it]",
        "[updates.templates.auto_closed.fr]",
        1,
    );
    assert_ne!(without, shipped);
    let (ok, stdout, stderr) = switchboard(&without, &["check-config"], &[]);
    assert!(ok, "a warning is not an error: {stderr}");
    assert!(stdout.contains("valid"), "{stdout}");
    assert_eq!(
        stderr.trim(),
        "warning: configuration key `updates.templates.auto_closed.it`: no template, so `auto_closed` \
         updates to customers in `it` (routing.detect_languages[3]) go out in `en`"
    );
}

#[test]
fn check_config_names_an_unknown_key() {
    let (ok, _, stderr) = switchboard(
        &base().replace("[outbox]", "[outbox]\nretry_shedule = [\"1s\"]"),
        &["check-config"],
        &[],
    );
    assert!(!ok);
    assert!(stderr.contains("`outbox.retry_shedule`"), "{stderr}");
}

#[test]
fn check_config_names_a_bad_value() {
    let (ok, _, stderr) = switchboard(
        &base().replace("default_team = \"support\"", "default_team = \"sales\""),
        &["check-config"],
        &[],
    );
    assert!(!ok);
    assert!(
        stderr.contains("`routing.default_team`") && stderr.contains("sales"),
        "{stderr}"
    );
}

#[test]
fn environment_overrides_apply_and_are_checked_like_the_file() {
    let (ok, _, stderr) = switchboard(
        &base(),
        &["check-config"],
        &[("SWITCHBOARD__SERVER__LISTEN", "not-an-address")],
    );
    assert!(!ok);
    assert!(stderr.contains("`server.listen`"), "{stderr}");
    let (ok, _, stderr) = switchboard(
        &base(),
        &["check-config"],
        &[("SWITCHBOARD__SERVER__LISTN", "127.0.0.1:1")],
    );
    assert!(!ok);
    assert!(stderr.contains("`server.listn`"), "{stderr}");
    let (ok, stdout, stderr) = switchboard(
        &base(),
        &["check-config"],
        &[("SWITCHBOARD__STORAGE__URL", "sqlite://elsewhere/x.db")],
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("sqlite://elsewhere/x.db"), "{stdout}");
}

#[test]
fn agent_add_refuses_unknown_teams_roles_and_taken_names() {
    let dir = tempfile::tempdir().unwrap();
    let text = config(dir.path(), "http://127.0.0.1:9/callback");
    let (ok, token, stderr) = switchboard(&text, &["agent", "add", "sam", "--team", "support"], &[]);
    assert!(ok && token.trim().starts_with("sb_"), "{stderr}");
    let (ok, _, stderr) = switchboard(&text, &["agent", "add", "sam", "--team", "support"], &[]);
    assert!(!ok && stderr.contains("already exists"), "{stderr}");
    let (ok, _, stderr) = switchboard(&text, &["agent", "add", "kim", "--team", "sales"], &[]);
    assert!(!ok && stderr.contains("sales"), "{stderr}");
    let (ok, _, stderr) = switchboard(
        &text,
        &["agent", "add", "kim", "--team", "support", "--role", "boss"],
        &[],
    );
    assert!(!ok && stderr.contains("--role"), "{stderr}");
    let (ok, _, stderr) = switchboard(
        &text,
        &[
            "agent",
            "add",
            "lea",
            "--team",
            "support",
            "--capacity",
            "3",
            "--available",
            "--languages",
            "th, EN",
        ],
        &[],
    );
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = switchboard(
        &text,
        &["agent", "add", "max", "--team", "support", "--languages", "th,thai!"],
        &[],
    );
    assert!(
        !ok && stderr.contains("languages") && stderr.contains("thai!"),
        "{stderr}"
    );
    let (ok, listing, _) = switchboard(&text, &["agent", "list"], &[]);
    assert!(ok);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(
        lines,
        [
            "id\tname\trole\tteams\tavailable\tcapacity\topen\tlanguages",
            "2\tlea\tagent\tsupport\tyes\t3\t0\tth,en",
            "1\tsam\tagent\tsupport\tno\tteam\t0\t-"
        ],
        "{listing}"
    );
}

#[test]
fn check_config_reads_the_email_example_and_names_its_keys() {
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/examples/email.toml")).unwrap();
    let (ok, stdout, stderr) = switchboard(&example, &["check-config"], &[("SUPPORT_MAIL_PASSWORD", "s3cret")]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("1 inboxes"), "{stdout}");

    let (ok, _, stderr) = switchboard(&example, &["check-config"], &[("SUPPORT_MAIL_PASSWORD", "")]);
    assert!(!ok);
    assert!(
        stderr.contains("`inboxes.support-mail.email.imap.password_env`"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"));

    let plain = example.replace("port = 993\nsecurity = \"tls\"", "port = 143\nsecurity = \"plain\"");
    let (ok, _, stderr) = switchboard(&plain, &["check-config"], &[("SUPPORT_MAIL_PASSWORD", "s3cret")]);
    assert!(!ok);
    assert!(
        stderr.contains("`inboxes.support-mail.email.imap.security`"),
        "{stderr}"
    );
    assert!(stderr.contains("loopback"), "{stderr}");

    let unknown = example.replace("folder = \"INBOX\"", "mailbox = \"INBOX\"");
    let (ok, _, stderr) = switchboard(&unknown, &["check-config"], &[("SUPPORT_MAIL_PASSWORD", "s3cret")]);
    assert!(!ok);
    assert!(stderr.contains("inboxes.support-mail.email.mailbox"), "{stderr}");
}

#[test]
fn check_config_reads_the_telegram_example_names_template_errors_and_keeps_the_token_out() {
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/examples/telegram.toml")).unwrap();
    let token = "5000000001:AAHexample-token-0123456789abcdef";
    let (ok, stdout, stderr) = switchboard(&example, &["check-config"], &[("SHOP_BOT_TOKEN", token)]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("1 inboxes"), "{stdout}");

    let (ok, _, stderr) = switchboard(&example, &["check-config"], &[("SHOP_BOT_TOKEN", "not a token")]);
    assert!(!ok);
    assert!(stderr.contains("`inboxes.shop-bot.telegram.token_env`"), "{stderr}");
    assert!(!stderr.contains("not a token"), "the value is not echoed: {stderr}");

    let webhook = example.replace("mode = \"polling\"", "mode = \"webhook\"");
    let (ok, _, stderr) = switchboard(&webhook, &["check-config"], &[("SHOP_BOT_TOKEN", token)]);
    assert!(!ok);
    assert!(stderr.contains("`inboxes.shop-bot.telegram.webhook_url`"), "{stderr}");

    // A template's mistake is named with its template and line, before anything runs.
    let unknown_variable = format!(
        "{example}\n[updates.templates.resolved.th]\ntext = \"\"\"\nเรื่อง {{{{ conversation.reference }}}}\n{{{{ conversation.nope }}}}\n\"\"\"\n"
    );
    let (ok, _, stderr) = switchboard(&unknown_variable, &["check-config"], &[("SHOP_BOT_TOKEN", token)]);
    assert!(!ok);
    assert!(
        stderr.contains("`updates.templates.resolved.th.text`: line 2 (`{{ conversation.nope }}`): undefined value"),
        "{stderr}"
    );
    let bad_syntax = format!("{example}\n[updates.templates.csat.ar]\ntext = \"ok\"\nhtml = \"<p>{{% if %}}</p>\"\n");
    let (ok, _, stderr) = switchboard(&bad_syntax, &["check-config"], &[("SHOP_BOT_TOKEN", token)]);
    assert!(!ok);
    assert!(
        stderr.contains("`updates.templates.csat.ar.html`: line 1 (`<p>{% if %}</p>`): syntax error"),
        "{stderr}"
    );
}

#[test]
fn check_config_reads_the_whatsapp_example_and_names_a_missing_secret_or_a_bad_template() {
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/examples/whatsapp.toml")).unwrap();
    let secrets = [
        ("SHOP_WA_TOKEN", "EAAGexample-access-token"),
        ("SHOP_WA_APP_SECRET", "0123456789abcdef0123456789abcdef"),
        ("SHOP_WA_VERIFY_TOKEN", "verify-me"),
    ];
    let (ok, stdout, stderr) = switchboard(&example, &["check-config"], &secrets);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("1 inboxes"), "{stdout}");

    let (ok, _, stderr) = switchboard(&example, &["check-config"], &secrets[..2]);
    assert!(!ok);
    assert!(stderr.contains("inboxes.shop-wa.whatsapp.verify_token_env"), "{stderr}");

    let unknown_event = example.replace("templates.resolved.de]", "templates.solved.de]");
    let (ok, _, stderr) = switchboard(&unknown_event, &["check-config"], &secrets);
    assert!(!ok);
    assert!(stderr.contains("inboxes.shop-wa.whatsapp.templates.solved"), "{stderr}");

    // One inbox speaks one channel.
    let two = example.replace(
        "[inboxes.shop-wa.whatsapp]\n",
        "[inboxes.shop-wa.telegram]\ntoken_env = \"X\"\n\n[inboxes.shop-wa.whatsapp]\n",
    );
    let (ok, _, stderr) = switchboard(&two, &["check-config"], &secrets);
    assert!(!ok);
    assert!(stderr.contains("an inbox speaks one channel"), "{stderr}");
}

#[test]
fn route_explain_shows_each_rule_and_the_decision_for_a_sample_message() {
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/switchboard.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sample = dir.path().join("sample.json");
    // Thai, from a VIP, on a Friday at 17:55 in Berlin.
    std::fs::write(
        &sample,
        r#"{"inbox": "shop", "text": "ขอคืนเงินด้วยครับ ผมถูกเก็บเงินซ้ำสองครั้ง", "metadata": {"flags": ["vip"]}, "at": "2026-11-27T16:55:00Z"}"#,
    )
    .unwrap();
    let path = sample.to_str().unwrap();
    let (ok, stdout, stderr) = switchboard(&shipped, &["route", "explain", "--message", path], &[]);
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "language: th (detected)", "{stdout}");
    for expected in [
        "  no    outage -> team technical, priority urgent, labels outage",
        "  MATCH billing -> team billing, priority high, labels billing",
        "        yes text has a keyword of billing (saw: billing: คืนเงิน)",
        "  MATCH high-value and public accounts -> priority high, labels vip",
        "decision: team billing (tier 0, rule `billing`), priority high, labels [billing, vip]",
        "  first_response        1h business  due 2026-11-30T08:55:00.000Z",
    ] {
        assert!(lines.contains(&expected), "missing {expected:?} in:\n{stdout}");
    }
    // Every configured rule is shown, matched or not.
    assert_eq!(
        stdout.matches("\n  MATCH ").count() + stdout.matches("\n  no    ").count(),
        6,
        "{stdout}"
    );

    let (ok, json, stderr) = switchboard(&shipped, &["route", "explain", "--json", "--message", path], &[]);
    assert!(ok, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["decision"]["team"], "billing");
    assert_eq!(json["rules"].as_array().unwrap().len(), 6);

    std::fs::write(&sample, r#"{"inbox": "nowhere", "text": "hi"}"#).unwrap();
    let (ok, _, stderr) = switchboard(&shipped, &["route", "explain", "--message", path], &[]);
    assert!(!ok);
    assert!(stderr.contains("`inbox`") && stderr.contains("nowhere"), "{stderr}");
}

#[tokio::test]
async fn a_second_daemon_on_the_same_sqlite_file_is_refused_and_the_cli_still_works_beside_it() {
    let daemon = crate::harness::Daemon::start("http://127.0.0.1:9/unused").await;
    let second = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(daemon.config_path())
        .arg("serve")
        .output()
        .unwrap();
    assert!(!second.status.success(), "a second daemon served the same file");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("storage.url") && stderr.contains("another switchboard daemon"),
        "{stderr}"
    );
    // The first keeps serving, and commands beside it are not locked out.
    daemon.post_accepted("lock-1", "ada", "Hello").await;
    daemon.agent("sam", "support", "agent");
    // Once it stops, the file is free again.
    let (dir, _) = daemon.stop();
    crate::harness::Daemon::start_in(dir).await;
}
