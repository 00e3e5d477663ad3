//! The agent console in a real Chromium: sign-in through the one-time link, live
//! updates, replies, notes, escalation, resolution, sign-out, CSRF; and that the console
//! shows an agent exactly what the API lets them see. Screenshots of the main views
//! go to `SWITCHBOARD_SCREENSHOTS` (the README's come from `docs/screenshots`).

use std::collections::BTreeSet;

use fantoccini::key::Key;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::browser::{Browser, Engine};
use crate::harness::{Daemon, Receiver, eventually};

const PASSWORD: &str = "a long enough password";

/// Sets the agent's password through their link in `browser` and waits for the desk.
pub(crate) async fn sign_in_by_link(browser: &Browser, daemon: &Daemon, link: &str, name: &str) {
    sign_in_by_link_shot(browser, daemon, link, name, None).await;
}

/// [`sign_in_by_link`], with a screenshot of the form filled in.
async fn sign_in_by_link_shot(browser: &Browser, daemon: &Daemon, link: &str, name: &str, shot: Option<&str>) {
    browser.goto(&daemon.url(&format!("/setup#{link}"))).await;
    browser.wait_for("#setup").await;
    // The token leaves the address bar at once.
    browser.wait_until("location.hash === ''").await;
    browser.fill("#setup input[name=password]", PASSWORD).await;
    browser.fill("#setup input[name=confirm]", PASSWORD).await;
    if let Some(shot) = shot {
        browser.screenshot(shot).await;
    }
    browser.click("#setup button[type=submit]").await;
    browser.wait_for_text("#whoami", name).await;
    // The stream is open: what arrives from now on shows without a reload.
    browser.wait_until("document.body.dataset.live === 'yes'").await;
}

/// The session cookie's value in `browser`.
async fn session_cookie(browser: &Browser) -> String {
    browser
        .cookie("switchboard_session")
        .await
        .expect("a signed-in browser holds the session cookie")
}

/// The conversation ids listed in the console now.
async fn listed(browser: &Browser) -> BTreeSet<i64> {
    let ids = browser
        .execute(
            "return [...document.querySelectorAll('#conversations .row')].map((row) => Number(row.dataset.id));",
            vec![],
        )
        .await;
    ids.as_array().unwrap().iter().map(|id| id.as_i64().unwrap()).collect()
}

/// Waits until a callback's text contains `text`.
async fn reaches_callback(receiver: &Receiver, text: &str) {
    eventually(&format!("a callback saying `{text}`"), || async {
        receiver
            .callbacks()
            .iter()
            .any(|callback| callback.body["text"].as_str().is_some_and(|sent| sent.contains(text)))
            .then_some(())
    })
    .await;
}

async fn api_ids(daemon: &Daemon, token: &str, query: &str) -> BTreeSet<i64> {
    let page = daemon.get(&format!("/conversations?{query}"), token).await;
    page["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|conversation| conversation["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn an_agent_works_a_conversation_from_the_console_live_from_sign_in_to_sign_out() {
    works_a_conversation(Engine::Chromium).await;
}

#[tokio::test]
async fn the_same_day_at_the_desk_works_in_firefox() {
    works_a_conversation(Engine::Firefox).await;
}

/// Sign-in through the link, a live queue, reply, note, labels, escalation seen first by
/// the receiving team, resolve, a forged request refused, sign-out: in `engine`. The
/// README's screenshots are Chromium's.
async fn works_a_conversation(engine: Engine) {
    let shot = |name: &str| match engine {
        Engine::Chromium => name.to_owned(),
        Engine::Firefox => format!("firefox-{name}"),
    };
    let receiver = Receiver::start().await;
    let daemon = Daemon::start(&receiver.url()).await;
    let (_, ada_link) = daemon.agent_with_link("ada", "support", "agent");
    let (_, bo_link) = daemon.agent_with_link("bo", "billing", "agent");
    let supervisor = daemon.agent("sam", "support,billing", "supervisor");

    let ada = Browser::start_with(engine).await;
    sign_in_by_link_shot(&ada, &daemon, &ada_link, "ada", Some(&shot("setup"))).await;
    let bo = Browser::start_with(engine).await;
    sign_in_by_link(&bo, &daemon, &bo_link, "bo").await;

    // A message posted to the webhook channel appears in ada's queue without a reload.
    ada.click("#tab-unassigned").await;
    ada.execute("window.notReloaded = true; return true;", vec![]).await;
    let accepted = daemon
        .post_accepted("m-1", "cust-1", "สวัสดีครับ พัสดุของผมยังไม่มาถึง Where is my parcel?")
        .await;
    let id = accepted["conversation_id"].as_i64().unwrap();
    let row = format!("#conversations .row[data-id='{id}']");
    ada.wait_for(&row).await;
    ada.wait_until("window.notReloaded === true").await;
    ada.wait_for_text("#count-unassigned", "1").await;
    ada.screenshot(&shot("queue")).await;

    // Open it and reply: the reply reaches the business's callback.
    ada.click(&format!("{row} a")).await;
    ada.wait_for("#conversation-reference").await;
    ada.wait_for_text("#thread .message.inbound .text", "สวัสดีครับ").await;
    let direction = ada
        .execute(
            "return document.querySelector('#thread .message.inbound .text').getAttribute('dir');",
            vec![],
        )
        .await;
    assert_eq!(direction, json!("auto"), "customer text takes its own direction");
    ada.fill("#composer-text", "We are on it: the parcel left the warehouse today.")
        .await;
    ada.press("#composer-text", &[Key::Control, Key::Enter]).await;
    ada.wait_for_text("#thread .message.outbound .text", "left the warehouse")
        .await;
    reaches_callback(&receiver, "left the warehouse").await;

    // A note is set apart and never leaves: a reply after it reaches the callback (one
    // conversation's messages leave in order), the note does not.
    ada.click("#composer-note").await;
    ada.fill("#composer-text", "Internal: warehouse says the label was misprinted.")
        .await;
    ada.click("#composer-send").await;
    ada.wait_for_text("#thread .message.note .text", "label was misprinted")
        .await;
    ada.fill("#composer-text", "The courier has it now.").await;
    ada.click("#composer-note").await;
    ada.click("#composer-send").await;
    reaches_callback(&receiver, "courier has it").await;
    assert!(
        !receiver
            .callbacks()
            .iter()
            .any(|callback| callback.body.to_string().contains("misprinted")),
        "a note reached the customer's channel"
    );
    // Labels: added here, then the list filters by them.
    ada.fill("#label-add", "parcel").await;
    ada.press("#label-add", &[Key::Enter]).await;
    ada.wait_for("#labels .label[data-label='parcel']").await;
    ada.click("#tab-mine").await;
    ada.fill("#filter-label", "no-such-label").await;
    ada.press("#filter-label", &[Key::Enter]).await;
    ada.wait_until(&format!("!document.querySelector(\"{row}\")")).await;
    ada.fill("#filter-label", "parcel").await;
    ada.press("#filter-label", &[Key::Enter]).await;
    ada.wait_for(&row).await;
    ada.screenshot(&shot("conversation")).await;

    // Escalating without a summary is refused, naming the field; with one it goes.
    ada.click("#action-escalate").await;
    ada.wait_for("#escalate-dialog[open]").await;
    ada.execute(
        "const select = document.querySelector('#escalate-to'); select.value = 'team:billing'; return true;",
        vec![],
    )
    .await;
    ada.click("#escalate-submit").await;
    ada.wait_for_text("#escalate-error", "summary").await;
    ada.fill(
        "#escalate-summary",
        "Customer was charged twice for order 5512; refund the second charge.",
    )
    .await;
    ada.screenshot(&shot("escalate")).await;
    // bo watches billing's queue while it happens.
    bo.click("#tab-team").await;
    bo.execute("window.notReloaded = true; return true;", vec![]).await;
    ada.click("#escalate-submit").await;
    ada.wait_until("!document.querySelector('#escalate-dialog')").await;

    // The receiving team's agent sees it arrive, and the summary first.
    bo.wait_for(&row).await;
    bo.wait_until("window.notReloaded === true").await;
    bo.click(&format!("{row} a")).await;
    bo.wait_for_text("#escalation-summary", "charged twice").await;
    let summary_first = bo
        .execute(
            "const summary = document.querySelector('#escalation-summary');
             const thread = document.querySelector('#thread');
             return !!(summary.compareDocumentPosition(thread) & Node.DOCUMENT_POSITION_FOLLOWING);",
            vec![],
        )
        .await;
    assert_eq!(summary_first, json!(true), "the summary comes before the messages");

    // Resolve.
    bo.click("#action-resolve").await;
    bo.wait_for_text("#conversation-status", "resolved").await;
    let detail = daemon.get(&format!("/conversations/{id}"), &supervisor).await;
    assert_eq!(detail["status"], "resolved");
    assert_eq!(detail["team"]["key"], "billing");

    // A forged request with the session cookie but without the CSRF token is refused and
    // changes nothing.
    let bo_cookie = session_cookie(&bo).await;
    let http = reqwest::Client::new();
    for csrf in [None, Some("forged")] {
        let mut forged = http
            .patch(daemon.url(&format!("/api/v1/conversations/{id}")))
            .header("cookie", format!("switchboard_session={bo_cookie}"))
            .json(&json!({"status": "open"}));
        if let Some(csrf) = csrf {
            forged = forged.header("x-csrf-token", csrf);
        }
        let response = forged.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "csrf_failed", "{body}");
    }
    let detail = daemon.get(&format!("/conversations/{id}"), &supervisor).await;
    assert_eq!(detail["status"], "resolved", "the forged request changed nothing");

    // Sign out: the old cookie no longer works.
    let ada_cookie = session_cookie(&ada).await;
    ada.click("#sign-out").await;
    ada.wait_for("#sign-in").await;
    for path in ["/api/v1/session", "/api/v1/conversations", "/api/v1/stream"] {
        let response = http
            .get(daemon.url(path))
            .header("cookie", format!("switchboard_session={ada_cookie}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path} after sign-out");
    }
    ada.screenshot(&shot("sign-in")).await;
}

#[tokio::test]
async fn an_agent_sees_in_the_console_exactly_what_the_api_lets_them_see() {
    let receiver = Receiver::start().await;
    let daemon = Daemon::start(&receiver.url()).await;
    let (ada_token, ada_link) = daemon.agent_with_link("ada", "support", "agent");
    let (sam_token, sam_link) = daemon.agent_with_link("sam", "support", "supervisor");
    let root = daemon.agent("root", "support", "admin");
    // Two conversations for support, one for billing (its rule), one taken by ada.
    for (id, from, text) in [
        ("v-1", "c-1", "Where is my parcel?"),
        ("v-2", "c-2", "I was charged twice, I want a refund"),
        ("v-3", "c-3", "The app crashes on start"),
    ] {
        daemon.post_accepted(id, from, text).await;
    }
    let taken = api_ids(&daemon, &ada_token, "team=support&status=open").await;
    let first = *taken.iter().next().unwrap();
    let (status, _) = daemon
        .api(
            reqwest::Method::PATCH,
            &format!("/conversations/{first}"),
            &ada_token,
            Some(json!({"assignee": "me"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    for (name, token, link, tabs) in [
        ("ada", &ada_token, &ada_link, vec!["mine", "unassigned", "team"]),
        ("sam", &sam_token, &sam_link, vec!["mine", "unassigned", "team", "all"]),
    ] {
        let browser = Browser::start().await;
        sign_in_by_link(&browser, &daemon, link, name).await;
        let supervisor = name == "sam";
        let tab_count = browser
            .execute("return document.querySelectorAll('.tab').length;", vec![])
            .await;
        assert_eq!(tab_count, json!(tabs.len()), "{name}'s tabs");
        for tab in tabs {
            let query = match tab {
                "mine" => "assignee=me&status=open".to_owned(),
                // An agent's unassigned queue is their teams'; a supervisor's is all they see.
                "unassigned" if !supervisor => "assignee=none&team=mine&status=open".to_owned(),
                "unassigned" => "assignee=none&status=open".to_owned(),
                "team" => "team=mine&status=open".to_owned(),
                _ => "status=open".to_owned(),
            };
            let expected = api_ids(&daemon, token, &query).await;
            browser.click(&format!("#tab-{tab}")).await;
            let shown = eventually(&format!("{name}'s {tab} tab to list what the API lists"), || async {
                let shown = listed(&browser).await;
                (shown == expected).then_some(shown)
            })
            .await;
            // The counts agree with the lists.
            let count = browser.text(&format!("#count-{tab}")).await;
            assert_eq!(count, shown.len().to_string(), "{name}'s {tab} count");
        }
        // What the API refuses, the console cannot open either.
        let everything = api_ids(&daemon, &root, "status=all").await;
        let visible = api_ids(&daemon, token, "status=all").await;
        for id in everything.difference(&visible) {
            let (status, _) = daemon
                .api(reqwest::Method::GET, &format!("/conversations/{id}"), token, None)
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND);
            browser.goto(&daemon.url(&format!("/#/c/{id}"))).await;
            browser.wait_for_text("#conversation", "not found").await;
        }
        // Neither the agent nor the supervisor of support sees billing's conversation.
        assert!(
            visible.len() < everything.len(),
            "{name} cannot see billing's conversation"
        );
    }
}

#[tokio::test]
async fn the_console_is_usable_at_375_pixels_and_from_the_keyboard() {
    let receiver = Receiver::start().await;
    let daemon = Daemon::start(&receiver.url()).await;
    let (token, link) = daemon.agent_with_link("ada", "support", "supervisor");
    let body = daemon.post_accepted("k-1", "c-1", "مرحبا، لم يصل طلبي بعد").await;
    let id = body["conversation_id"].as_i64().unwrap();

    let browser = Browser::start().await;
    browser.set_viewport_size(375, 812).await;
    sign_in_by_link(&browser, &daemon, &link, "ada").await;
    browser.click("#tab-unassigned").await;
    let row = format!("#conversations .row[data-id='{id}'] a");
    browser.wait_for(&row).await;
    let overflow = "document.documentElement.scrollWidth <= window.innerWidth";
    browser.wait_until(overflow).await;
    browser.screenshot("mobile-queue").await;

    // Keyboard only: focus the row's link and press Enter to open it.
    browser
        .execute(
            &format!("document.querySelector(\"{row}\").focus(); return true;"),
            vec![],
        )
        .await;
    browser.press(&row, &[Key::Enter]).await;
    browser.wait_for_text("#thread .message.inbound .text", "مرحبا").await;
    // On a phone the list gives way to the conversation, which fits the width.
    browser
        .wait_until("getComputedStyle(document.querySelector('.list')).display === 'none'")
        .await;
    browser.wait_until(overflow).await;
    browser.screenshot("mobile-conversation").await;

    // A saved reply from the keyboard: `/` and the start of a shortcut offer the team's
    // matches, arrows move, Enter puts the text filled for this conversation in the
    // composer, and what the agent makes of it is what leaves.
    let mut saved = Vec::new();
    for (shortcut, text) in [
        (
            "parcel-late",
            "Sorry {{contact.first_name}}, {{conversation.reference}} is late. {{agent.name}}",
        ),
        ("parcel-lost", "We are looking for your parcel."),
    ] {
        let (status, reply) = daemon
            .api(
                reqwest::Method::POST,
                "/saved-replies",
                &token,
                Some(json!({"team": "support", "shortcut": shortcut, "bodies": {"en": text}})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{reply}");
        saved.push(reply["id"].as_i64().unwrap());
    }
    browser.fill("#composer-text", "/parc").await;
    browser
        .wait_for("#saved-replies-menu .saved-reply[data-shortcut='parcel-lost']")
        .await;
    let selected =
        |id: i64| format!("document.querySelector('#saved-reply-{id}').getAttribute('aria-selected') === 'true'");
    browser.wait_until(&selected(saved[0])).await;
    browser.press("#composer-text", &[Key::Down]).await;
    browser.wait_until(&selected(saved[1])).await;
    browser.press("#composer-text", &[Key::Up]).await;
    browser.wait_until(&selected(saved[0])).await;
    browser.press("#composer-text", &[Key::Enter]).await;
    let filled = format!("Sorry Ada, #{id} is late. ada");
    browser
        .wait_until(&format!(
            "document.querySelector('#composer-text').value === {}",
            json!(filled)
        ))
        .await;
    browser
        .wait_until("document.querySelector('#saved-replies-menu').hidden")
        .await;
    browser
        .wait_for("#composer-text")
        .await
        .send_keys(" We will call you.")
        .await
        .unwrap();
    browser.press("#composer-text", &[Key::Control, Key::Enter]).await;
    reaches_callback(&receiver, &format!("{filled} We will call you.")).await;
    let detail = daemon.get(&format!("/conversations/{id}"), &token).await;
    let sent = detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|message| message["kind"] == "reply")
        .unwrap();
    assert_eq!(sent["details"]["saved_reply"]["id"], saved[0], "{sent}");

    // The supervisors' view at desktop width.
    browser.set_viewport_size(1280, 800).await;
    browser.goto(&daemon.url("/#/supervisor")).await;
    browser.wait_for("#team-table tr[data-team='support']").await;
    browser.wait_for("#agent-table tr[data-agent='ada']").await;
    browser.screenshot("supervisor").await;
}
