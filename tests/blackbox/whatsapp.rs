//! A WhatsApp conversation in the console, in a real Chromium, the daemon's sends
//! answered by the fake Graph API: a reply's line shows what Meta reported of it as its
//! statuses arrive, and an update WhatsApp would not take says why, without a reload.

use serde_json::json;
use switchboard_test_whatsapp::{Failure, FakeWhatsapp, PHONE_NUMBER_ID, post_webhook, status, text_message};

use crate::browser::Browser;
use crate::console::sign_in_by_link;
use crate::harness::{Daemon, config_with_inbox, with_update_events};

const ACCESS_TOKEN: &str = "EAAGfake-access-token-for-the-console";
const APP_SECRET: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const ADA: &str = "491701234567";

#[tokio::test]
async fn a_whatsapp_reply_shows_read_and_an_update_whatsapp_refused_shows_why_live() {
    let fake = FakeWhatsapp::start(ACCESS_TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let secret = |name: &str, value: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{value}\n")).unwrap();
        path.display().to_string()
    };
    // No templates: an update Meta refuses as outside the window has nothing to go by.
    let inbox = format!(
        r#"
[inboxes.shop-wa]
name = "Shop WhatsApp"

[inboxes.shop-wa.whatsapp]
phone_number_id = "{PHONE_NUMBER_ID}"
access_token_file = "{token}"
app_secret_file = "{app_secret}"
verify_token_file = "{verify}"
api_base = "{api}"
pair_interval = "0s"
"#,
        token = secret("wa-token", ACCESS_TOKEN),
        app_secret = secret("wa-app-secret", APP_SECRET),
        verify = secret("wa-verify", "console-verify"),
        api = fake.api_base(),
    );
    let config = with_update_events(&config_with_inbox(dir.path(), &inbox), &["received", "resolved"]);
    std::fs::write(dir.path().join("switchboard.toml"), config).unwrap();
    let daemon = Daemon::start_in(dir).await;
    let (_, link) = daemon.agent_with_link("ada", "support", "agent");
    let browser = Browser::start().await;
    sign_in_by_link(&browser, &daemon, &link, "ada").await;

    let hook = daemon.url("/hooks/shop-wa");
    let written = text_message(ADA, "Ada Lovelace", "wamid.ADA1", "Where is my parcel?");
    assert_eq!(post_webhook(&hook, APP_SECRET, &written).await, 200);
    fake.wait_for_sent(1, std::time::Duration::from_secs(20)).await;
    browser.click("#tab-unassigned").await;
    browser.wait_for("#conversations .row a").await;
    browser.click("#conversations .row a").await;
    browser
        .wait_for_text("#thread .message.inbound .text", "Where is my parcel?")
        .await;
    // Ada just wrote: WhatsApp's 24 hours have barely begun.
    let window = browser.wait_for_text("#reply-window", "Reply window open: 23h ").await;
    let said = window.text().await.unwrap();
    assert!(said.ends_with("m left to reply on whatsapp."), "{said}");
    let composing_a_note = browser
        .execute("return document.querySelector('#composer-note').checked;", vec![])
        .await;
    assert_eq!(composing_a_note, json!(false), "inside the window the composer replies");

    browser
        .fill("#composer-text", "It left our warehouse this morning.")
        .await;
    browser.click("#composer-send").await;
    let sent = fake.wait_for_sent(2, std::time::Duration::from_secs(20)).await;
    let reply = sent
        .iter()
        .find(|sent| sent.text() == Some("It left our warehouse this morning."))
        .expect("the reply reached the Graph API");
    let reply_line = "#thread .message.outbound:not([data-kind=status_update]) .delivery";
    browser.wait_for_text(reply_line, "sent").await;

    // From here nothing reloads the page: what changes comes down the live stream.
    browser.execute("window.notReloaded = true; return true;", vec![]).await;
    assert_eq!(
        post_webhook(&hook, APP_SECRET, &status(&reply.id, "delivered", &[])).await,
        200
    );
    browser.wait_for_text(reply_line, "sent · delivered").await;
    assert_eq!(
        post_webhook(&hook, APP_SECRET, &status(&reply.id, "read", &[])).await,
        200
    );
    browser.wait_for_text(reply_line, "sent · read").await;
    let report_lines = browser
        .execute(
            "return document.querySelectorAll('#thread [data-event=\"delivery.reported\"]').length;",
            vec![],
        )
        .await;
    assert_eq!(report_lines, json!(0), "a report shows on its message, not as a line");

    // Meta counts the window from its own record and refuses the `resolved` update
    // (131047); with no template for it, the conversation says it was not sent.
    fake.fail_next_sends(Some(ADA), Failure::re_engagement(), 1);
    browser.click("#action-resolve").await;
    browser.wait_for_text("#conversation-status", "resolved").await;
    browser
        .wait_for_text(
            "#thread [data-event=\"delivery.skipped\"]",
            "Not sent: outside WhatsApp's 24-hour window",
        )
        .await;
    browser.wait_until("window.notReloaded === true").await;
    browser.screenshot("whatsapp-conversation").await;
    assert_eq!(fake.sent().len(), 2, "the refused update sent nothing");
}
