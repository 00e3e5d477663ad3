//! The console's admin views and saved replies in a real Chromium: an admin manages an
//! agent (created with a token, teams changed, token revoked, deactivated) and reads it
//! all back in the audit log; an agent writes a saved reply in two languages, is shown
//! the API's refusal beside the text that caused it, and sends it by its shortcut.
//! Screenshots `admin-agents` and `saved-replies` go to `SWITCHBOARD_SCREENSHOTS`.

use fantoccini::key::Key;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::browser::Browser;
use crate::console::sign_in_by_link;
use crate::harness::{Daemon, Receiver, eventually};

/// Nothing of the page is wider than the window (a phone's 375 px).
const FITS: &str = "document.documentElement.scrollWidth <= window.innerWidth";

/// The value of the input that matches `css`.
async fn value(browser: &Browser, css: &str) -> String {
    browser.wait_for(css).await;
    let value = browser
        .execute("return document.querySelector(arguments[0]).value;", vec![json!(css)])
        .await;
    value.as_str().unwrap().to_owned()
}

/// Chooses `value` in the select that matches `css`, as a person would.
async fn choose(browser: &Browser, css: &str, value: &str) {
    browser.wait_for(css).await;
    browser
        .execute(
            "const s = document.querySelector(arguments[0]); s.value = arguments[1];
             s.dispatchEvent(new Event('change')); return s.value === arguments[1];",
            vec![json!(css), json!(value)],
        )
        .await;
}

/// The `data-action` of each audit entry shown, top to bottom.
async fn actions_shown(browser: &Browser) -> Value {
    browser
        .execute(
            "return [...document.querySelectorAll('#audit-list .audit-entry')].map((e) => e.dataset.action);",
            vec![],
        )
        .await
}

/// Answers `GET /api/v1/session` with the session cookie `cookie`.
async fn session_status(daemon: &Daemon, cookie: &str) -> StatusCode {
    reqwest::Client::new()
        .get(daemon.url("/api/v1/session"))
        .header("cookie", format!("switchboard_session={cookie}"))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn an_admin_creates_changes_revokes_and_deactivates_an_agent_in_the_console_and_reads_it_in_the_audit_log() {
    let receiver = Receiver::start().await;
    let daemon = Daemon::start(&receiver.url()).await;
    let (root_token, root_link) = daemon.agent_with_link("root", "support", "admin");
    let admin = Browser::start().await;
    sign_in_by_link(&admin, &daemon, &root_link, "root").await;

    // The header leads admins to the agents.
    admin.click("#admin-link").await;
    admin.wait_for("#agent-list .agent-row[data-name='root']").await;

    // A refusal is named beside its field: no team ticked.
    admin.fill("#agent-new-name", "lena").await;
    admin.click("#agent-new-submit").await;
    admin.wait_for_text("#agent-new-teams-error", "teams").await;

    // Two teams, support ticked first: her home team; and a token for an integration.
    admin.click("#agent-new-team-support").await;
    admin.click("#agent-new-team-billing").await;
    admin.wait_for_text("#agent-new-home", "Customer Support").await;
    admin.fill("#agent-new-token", "CRM sync").await;
    // She reads Thai and English: a tag that is none is refused beside its field.
    admin.fill("#agent-new-languages", "th, english!").await;
    admin.click("#agent-new-submit").await;
    admin.wait_for_text("#agent-new-languages-error", "english!").await;
    admin.fill("#agent-new-languages", "th, EN").await;
    admin.click("#agent-new-submit").await;
    admin.wait_for_text("#agent-new-secrets", "Shown only this once").await;
    // A fresh form for the next one; the refusal is gone.
    admin.wait_until("document.querySelector('#agent-new-teams-error').hidden && document.querySelector('#agent-new-name').value === ''").await;
    let link = value(&admin, "#agent-new-link").await;
    let token = value(&admin, "#agent-new-api-token").await;
    assert!(token.starts_with("sb_"), "{token}");
    let (_, link) = link
        .split_once("/setup#")
        .unwrap_or_else(|| panic!("a setup link: {link}"));
    admin.wait_for("#agent-list .agent-row[data-name='lena']").await;
    // The copy button copies, or selects the text for Ctrl+C where the clipboard is shut.
    admin.click("#agent-new-api-token-copy").await;
    admin
        .wait_until("/Copied|Selected/.test(document.querySelector('#agent-new-api-token-copied').textContent)")
        .await;

    // The token works against the API.
    let me = daemon.get("/agents/me", &token).await;
    assert_eq!(me["name"], "lena");
    assert_eq!(
        me["teams"],
        json!(["support", "billing"]),
        "the first ticked is her home team"
    );
    assert_eq!(me["role"], "agent");
    assert_eq!(me["languages"], json!(["th", "en"]));

    // Lena signs in through her link and takes a customer's conversation.
    let lena = Browser::start().await;
    sign_in_by_link(&lena, &daemon, link, "lena").await;
    let lena_cookie = lena
        .cookie("switchboard_session")
        .await
        .expect("a signed-in browser holds the session cookie");
    let conversation = daemon.post_accepted("a-1", "c-1", "Where is my parcel?").await["conversation_id"]
        .as_i64()
        .unwrap();
    let (status, answer) = daemon
        .api(
            Method::PATCH,
            &format!("/conversations/{conversation}"),
            &token,
            Some(json!({"assignee": "me"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    // Her page: billing becomes technical.
    admin.click("#agent-new-open").await;
    admin.wait_for_text("#agent-tokens .token-row", "CRM sync").await;
    admin.wait_for_text("#agent-teams", "Customer Support, Billing").await;
    admin.wait_for_text("#agent-languages", "th, en").await;
    admin.click("#agent-edit-team-billing").await;
    admin.click("#agent-edit-team-technical").await;
    admin.fill("#agent-edit-languages", "th ar").await;
    admin.click("#agent-edit-save").await;
    admin.wait_for_text("#agent-notice", "Saved").await;
    admin
        .wait_for_text("#agent-teams", "Customer Support, Technical Support")
        .await;
    admin.wait_for_text("#agent-languages", "th, ar").await;
    let agents = daemon.get("/agents", &root_token).await;
    let lena_now = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|agent| agent["name"] == "lena")
        .unwrap()
        .clone();
    assert_eq!(lena_now["teams"], json!(["support", "technical"]));
    assert_eq!(lena_now["languages"], json!(["th", "ar"]));
    let lena_id = lena_now["id"].as_i64().unwrap();
    admin.screenshot("admin-agents").await;

    // A new sign-in link and a second token, each shown once.
    admin.click("#agent-issue-link").await;
    admin.wait_for_text("#agent-secrets", "New sign-in link").await;
    assert!(value(&admin, "#agent-link").await.contains("/setup#"));
    admin.fill("#token-new-label", "Backup").await;
    admin.press("#token-new-label", &[Key::Enter]).await;
    admin.wait_for_text("#agent-secrets", "New API token").await;
    let backup = value(&admin, "#agent-token").await;
    assert_eq!(daemon.get("/agents/me", &backup).await["name"], "lena");
    admin.wait_for_text("#agent-tokens .token-row", "Backup").await;

    // Revoking asks first; then the token is refused.
    admin.click("#agent-tokens .token-row button.revoke").await;
    admin.wait_for_text("#confirm-dialog[open]", "cannot be undone").await;
    admin.click("#confirm-cancel").await;
    admin.wait_until("!document.querySelector('#confirm-dialog')").await;
    let (status, _) = daemon.api(Method::GET, "/agents/me", &token, None).await;
    assert_eq!(status, StatusCode::OK, "cancelled: the token still works");
    admin.click("#agent-tokens .token-row button.revoke").await;
    admin.click("#confirm-ok").await;
    admin.wait_for_text("#agent-notice", "Revoked").await;
    admin.wait_for_text("#agent-tokens .token-row.revoked", "revoked").await;
    let (status, _) = daemon.api(Method::GET, "/agents/me", &token, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Deactivating asks first, then says which conversations went back to the queue.
    admin.click("#agent-deactivate").await;
    admin
        .wait_for_text("#confirm-dialog[open]", "1 open conversation goes back")
        .await;
    admin.click("#confirm-ok").await;
    admin
        .wait_for_text(
            "#agent-notice",
            &format!("1 conversation went back to the queue: #{conversation}"),
        )
        .await;
    admin.wait_for("#agent-activate").await;
    // Her session is over: the API refuses the cookie, and her next action in the
    // console takes her to sign-in.
    assert_eq!(session_status(&daemon, &lena_cookie).await, StatusCode::UNAUTHORIZED);
    let (status, _) = daemon.api(Method::GET, "/agents/me", &backup, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "none of her tokens works");
    // (A stream event may have sent her there already: the click is only tried.)
    let _ = lena
        .client()
        .execute(
            "const tab = document.querySelector('#tab-unassigned'); if (tab) tab.click(); return true;",
            vec![],
        )
        .await;
    lena.wait_until("location.pathname === '/sign-in'").await;
    lena.wait_for("#sign-in").await;

    // The audit log: those actions, newest first, as the API lists them.
    admin.click("#admin-audit-link").await;
    admin.wait_for("#audit-list .audit-entry").await;
    let audit = daemon.get("/audit", &root_token).await;
    let entries = audit["entries"].as_array().unwrap();
    let actions: Vec<Value> = entries.iter().map(|entry| entry["action"].clone()).collect();
    assert_eq!(
        &actions[..5],
        &[
            json!("agent.deactivated"),
            json!("token.revoked"),
            json!("token.issued"),
            json!("sign_in_link.issued"),
            json!("agent.updated")
        ],
        "{audit}"
    );
    assert!(actions.contains(&json!("agent.created")), "{audit}");
    let ids: Vec<i64> = entries.iter().map(|entry| entry["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|pair| pair[0] > pair[1]), "newest first: {ids:?}");
    eventually("the audit view to list what the API lists", || async {
        (actions_shown(&admin).await == json!(actions)).then_some(())
    })
    .await;
    let first = format!("#audit-list .audit-entry[data-id='{}']", ids[0]);
    admin.wait_for_text(&first, "back to the queue: #").await;
    admin.wait_for_text(&first, "lena").await;
    admin.wait_for_text(&first, "by root").await;
    let issued = format!("#audit-list .audit-entry[data-id='{}'] .details", ids[2]);
    admin.wait_for_text(&issued, "“Backup”").await;
    let updated = format!("#audit-list .audit-entry[data-id='{}'] .details", ids[4]);
    admin
        .wait_for_text(&updated, "teams: support, billing → support, technical")
        .await;
    for entry in entries.iter().filter(|entry| entry["actor_id"].is_null()) {
        admin
            .wait_for_text(
                &format!("#audit-list .audit-entry[data-id='{}']", entry["id"]),
                "by command line",
            )
            .await;
    }

    // On a phone both views fit the width.
    admin.set_viewport_size(375, 812).await;
    admin.wait_until(FITS).await;
    admin.goto(&daemon.url(&format!("/#/admin/agents/{lena_id}"))).await;
    admin.wait_for("#agent-edit").await;
    admin.wait_until(FITS).await;
}

#[tokio::test]
async fn an_agent_writes_a_saved_reply_in_two_languages_sees_a_placeholder_refused_beside_its_text_and_sends_it_by_shortcut()
 {
    let receiver = Receiver::start().await;
    let daemon = Daemon::start(&receiver.url()).await;
    let (ada_token, ada_link) = daemon.agent_with_link("ada", "support", "agent");
    let sam = daemon.agent("sam", "support", "supervisor");
    let (status, team_reply) = daemon
        .api(
            Method::POST,
            "/saved-replies",
            &sam,
            Some(json!({"team": "support", "shortcut": "greet", "title": "Greeting",
                        "bodies": {"en": "Hello {{contact.first_name}}!"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{team_reply}");
    let accepted = daemon.post_accepted("r-1", "c-1", "Where is my parcel?").await;
    let conversation = accepted["conversation_id"].as_i64().unwrap();
    // The customer reads Italian: the Italian text is theirs.
    let contact = daemon.get(&format!("/conversations/{conversation}"), &ada_token).await["contact"]["id"]
        .as_i64()
        .unwrap();
    let (status, answer) = daemon
        .api(
            Method::PATCH,
            &format!("/contacts/{contact}"),
            &ada_token,
            Some(json!({"language": "it"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    let ada = Browser::start().await;
    sign_in_by_link(&ada, &daemon, &ada_link, "ada").await;
    ada.click("#replies-link").await;
    ada.wait_for_text("#replies-personal", "None yet").await;
    // The team's reply is hers to use and read, not to change.
    ada.click("#replies-team .reply-row[data-shortcut='greet'] a").await;
    ada.wait_for_text("#reply-readonly", "Hello {{contact.first_name}}!")
        .await;
    assert_eq!(
        ada.execute("return document.querySelector('#reply-form') === null;", vec![])
            .await,
        json!(true)
    );
    ada.click("#replies-back").await;

    // A new one of her own, in Italian and English, English the fallback.
    ada.click("#reply-new-link").await;
    ada.wait_for("#reply-form").await;
    assert_eq!(
        ada.execute("return document.querySelector('#reply-team') === null;", vec![])
            .await,
        json!(true),
        "an agent's saved replies are her own"
    );
    ada.fill("#reply-shortcut", "late").await;
    ada.fill("#reply-title", "Parcel late").await;
    ada.fill("#reply-language-0", "it").await;
    ada.fill("#reply-body-0", "Ciao {{contact.first_name}}, {{contact.nope}}")
        .await;
    ada.click("#reply-add-language").await;
    ada.wait_until("document.activeElement === document.querySelector('#reply-language-1')")
        .await;
    ada.fill("#reply-language-1", "en").await;
    ada.fill(
        "#reply-body-1",
        "Hi {{contact.first_name}}, {{conversation.reference}} is late. {{agent.name}}",
    )
    .await;
    choose(&ada, "#reply-fallback", "en").await;
    ada.press("#reply-title", &[Key::Enter]).await;
    // The unknown placeholder is named beside the Italian text, and nothing is saved.
    ada.wait_for_text(".body-row[data-language='it'] .field-error", "contact.nope")
        .await;
    ada.wait_until("document.querySelector(\".body-row[data-language='en'] .field-error\").hidden")
        .await;
    let mine = |answer: &Value| {
        answer["saved_replies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|reply| reply["scope"] == "personal")
            .cloned()
            .collect::<Vec<_>>()
    };
    assert!(mine(&daemon.get("/saved-replies", &ada_token).await).is_empty());
    ada.screenshot("saved-replies").await;

    let italian = "Ciao {{contact.first_name}}, {{conversation.reference}} è in ritardo. {{agent.name}}";
    ada.fill("#reply-body-0", italian).await;
    ada.click("#reply-save").await;
    ada.wait_for_text("#replies-notice", "Saved /late").await;
    ada.wait_for("#replies-personal .reply-row[data-shortcut='late']").await;
    let saved = mine(&daemon.get("/saved-replies", &ada_token).await);
    assert_eq!(saved.len(), 1, "{saved:?}");
    assert_eq!(saved[0]["bodies"]["it"], italian);
    assert_eq!(saved[0]["fallback"], "en");
    assert_eq!(saved[0]["title"], "Parcel late");
    let reply = saved[0]["id"].as_i64().unwrap();

    // In the composer: `/lat`, Enter, and the Italian text filled for this conversation.
    let rendered = daemon
        .get(
            &format!("/saved-replies/{reply}/render?conversation={conversation}"),
            &ada_token,
        )
        .await;
    assert_eq!(rendered["language"], "it", "{rendered}");
    let filled = rendered["text"].as_str().unwrap().to_owned();
    assert_eq!(filled, format!("Ciao Ada, #{conversation} è in ritardo. ada"));
    ada.goto(&daemon.url(&format!("/#/c/{conversation}"))).await;
    ada.fill("#composer-text", "/lat").await;
    ada.wait_for("#saved-replies-menu .saved-reply[data-shortcut='late']")
        .await;
    ada.press("#composer-text", &[Key::Enter]).await;
    ada.wait_until(&format!(
        "document.querySelector('#composer-text').value === {}",
        json!(filled)
    ))
    .await;
    ada.press("#composer-text", &[Key::Control, Key::Enter]).await;
    eventually("the saved reply at the business's callback", || async {
        receiver
            .callbacks()
            .iter()
            .any(|callback| callback.body["text"] == json!(filled))
            .then_some(())
    })
    .await;

    // On a phone the list and the form fit the width.
    ada.set_viewport_size(375, 812).await;
    ada.goto(&daemon.url("/#/replies")).await;
    ada.wait_for("#replies-personal .reply-row[data-shortcut='late']").await;
    ada.wait_until(FITS).await;
    ada.goto(&daemon.url(&format!("/#/replies/{reply}"))).await;
    ada.wait_for("#reply-form .body-row[data-language='en']").await;
    ada.wait_until(FITS).await;
}
