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
    assert!(
        detail.get("reply_window").is_none(),
        "a webhook inbox has no reply window"
    );
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

/// A customer of the webhook inbox `shop` (their app's id, name and email) writing `text`.
fn customer(id: &str, from: &str, name: &str, email: &str, text: &str) -> Value {
    json!({"id": id, "from": {"id": from, "name": name, "email": email}, "text": text})
}

/// The ids (`data-id`) of the elements matching `css` now.
async fn ids_shown(browser: &Browser, css: &str) -> BTreeSet<i64> {
    let ids = browser
        .execute(
            "return [...document.querySelectorAll(arguments[0])].map((node) => Number(node.dataset.id));",
            vec![json!(css)],
        )
        .await;
    ids.as_array().unwrap().iter().map(|id| id.as_i64().unwrap()).collect()
}

/// The ids of `array` in an API answer: each item's `id`, or `key`'s `id`.
fn ids_of(answer: &Value, array: &str, key: Option<&str>) -> BTreeSet<i64> {
    answer[array]
        .as_array()
        .unwrap_or_else(|| panic!("no `{array}` in {answer}"))
        .iter()
        .map(|item| key.map_or(item, |key| &item[key])["id"].as_i64().unwrap())
        .collect()
}

/// The console's search box: `/` from the page (not from a field) puts the cursor in it.
async fn search_from_the_keyboard(browser: &Browser, text: &str) {
    browser.wait_for("body").await.send_keys("/").await.unwrap();
    browser
        .wait_until("document.activeElement === document.querySelector('#search-input')")
        .await;
    browser.fill("#search-input", text).await;
    browser.press("#search-input", &[Key::Enter]).await;
}

#[tokio::test]
async fn an_agent_finds_a_thai_word_and_a_person_corrects_them_and_merges_their_duplicate_in_the_console() {
    const EMAIL: &str = "somchai@example.co.th";
    const WORD: &str = "ยกเลิก";
    let receiver = Receiver::start().await;
    let daemon = Daemon::start(&receiver.url()).await;
    let (ada_token, ada_link) = daemon.agent_with_link("ada", "support", "agent");
    let (bo_token, bo_link) = daemon.agent_with_link("bo", "billing", "agent");
    let admin = daemon.agent("root", "support", "admin");

    // Somchai writes in Thai from the shop's app, and again from a second account with
    // the same email: two contacts until an agent says they are one. Someone sharing the
    // address writes to billing, whose conversation support's agents may not see.
    let mut conversations = Vec::new();
    for body in [
        customer(
            "t-1",
            "somchai-shop",
            "Somchai Jaidee",
            EMAIL,
            "สวัสดีครับ ผมต้องการยกเลิกคำสั่งซื้อเพราะสินค้ามาช้ามาก",
        ),
        customer(
            "t-2",
            "somchai-app",
            "Somchai J.",
            EMAIL,
            "Any news about my order? <img src=x onerror=\"document.body.dataset.injected='yes'\"> ยกเลิกได้ไหม",
        ),
        customer(
            "t-3",
            "niran-shop",
            "Niran",
            EMAIL,
            "I was charged twice, ผมขอยกเลิกรายการที่สอง",
        ),
    ] {
        let (status, answer) = daemon.post_signed(&body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        conversations.push(answer["conversation_id"].as_i64().unwrap());
    }
    let [thai, second, billing] = conversations[..] else {
        unreachable!()
    };
    let contact_of = |conversation: i64| {
        let daemon = &daemon;
        let admin = &admin;
        async move {
            daemon.get(&format!("/conversations/{conversation}"), admin).await["contact"]["id"]
                .as_i64()
                .unwrap()
        }
    };
    let (somchai, duplicate, niran) = (
        contact_of(thai).await,
        contact_of(second).await,
        contact_of(billing).await,
    );
    assert_eq!(
        daemon.get(&format!("/conversations/{billing}"), &admin).await["team"]["key"],
        "billing"
    );

    let ada = Browser::start().await;
    sign_in_by_link(&ada, &daemon, &ada_link, "ada").await;

    // Search: too short, nothing found, then the word from the middle of the sentence.
    search_from_the_keyboard(&ada, "ยก").await;
    ada.wait_for_text("#search-message", "at least 3 characters").await;
    search_from_the_keyboard(&ada, "zzqxv").await;
    ada.wait_for_text("#search-message", "No conversations match").await;
    search_from_the_keyboard(&ada, WORD).await;
    let result = format!("#search-results .result[data-id='{thai}']");
    ada.wait_for(&result).await;
    let expected = ids_of(
        &daemon.get(&format!("/search?q={}", urlencode(WORD)), &ada_token).await,
        "results",
        Some("conversation"),
    );
    assert_eq!(
        expected,
        BTreeSet::from([thai, second]),
        "support's agent finds support's only"
    );
    ada.wait_for(&format!("#search-results .result[data-id='{second}']"))
        .await;
    assert_eq!(ids_shown(&ada, "#search-results .result").await, expected);
    // The word is marked where it is, inside the sentence, and the rest is plain text:
    // markup a customer wrote is shown, never made.
    for conversation in [thai, second] {
        let marks = ada
            .execute(
                "return [...document.querySelectorAll(arguments[0] + ' .excerpt mark')].map((m) => m.textContent);",
                vec![json!(format!("#search-results .result[data-id='{conversation}']"))],
            )
            .await;
        assert_eq!(marks, json!([WORD]), "conversation {conversation}");
    }
    let excerpt = ada.text(&format!("{result} .excerpt")).await;
    assert!(excerpt.contains("ผมต้องการยกเลิกคำสั่งซื้อ"), "{excerpt}");
    let excerpt = ada
        .text(&format!("#search-results .result[data-id='{second}'] .excerpt"))
        .await;
    assert!(excerpt.contains("<img src=x"), "{excerpt}");
    let made = ada
        .execute(
            "return document.querySelectorAll('#search-results img').length === 0
                 && document.body.dataset.injected === undefined;",
            vec![],
        )
        .await;
    assert_eq!(made, json!(true), "customer text became markup");
    ada.screenshot("search").await;
    // The list's filters apply: nothing resolved matches, everything does again.
    ada.execute(
        "const s = document.querySelector('#search-status'); s.value = 'resolved,closed';
         s.dispatchEvent(new Event('change')); return true;",
        vec![],
    )
    .await;
    ada.wait_for_text("#search-message", "No conversations match").await;
    ada.wait_until("location.hash.includes('status=resolved%2Cclosed')")
        .await;
    ada.execute(
        "const s = document.querySelector('#search-status'); s.value = 'open';
         s.dispatchEvent(new Event('change')); return true;",
        vec![],
    )
    .await;
    ada.wait_for(&result).await;

    // The result opens the conversation, whose contact panel leads to the person's page.
    ada.click(&format!("{result} a")).await;
    ada.wait_for_text("#thread .message.inbound .text", "ยกเลิกคำสั่งซื้อ").await;
    ada.wait_until(&format!(
        "document.querySelector('#contact-link').getAttribute('href') === '#/contacts/{somchai}'"
    ))
    .await;

    // Contacts: found by email; both of Somchai's, not billing's Niran.
    ada.click("#contacts-link").await;
    ada.fill("#contact-search", EMAIL).await;
    ada.press("#contact-search", &[Key::Enter]).await;
    let row = format!("#contact-results .contact-row[data-id='{somchai}']");
    ada.wait_for(&row).await;
    let found = ids_of(
        &daemon
            .get(&format!("/contacts?q={}", urlencode(EMAIL)), &ada_token)
            .await,
        "contacts",
        None,
    );
    assert_eq!(found, BTreeSet::from([somchai, duplicate]));
    ada.wait_until(&format!(
        "document.querySelectorAll('#contact-results .contact-row').length === {}",
        found.len()
    ))
    .await;
    assert_eq!(ids_shown(&ada, "#contact-results .contact-row").await, found);

    // Their page; an edit the API refuses names the field, next to it, and changes nothing.
    ada.click(&format!("{row} a")).await;
    ada.wait_for_text("#contact-title", "Somchai Jaidee").await;
    ada.wait_for_text("#contact-email", EMAIL).await;
    ada.wait_for("#contact-identities li[data-channel='webhook']").await;
    ada.wait_for(&format!("#contact-conversations li[data-id='{thai}']"))
        .await;
    ada.fill("#contact-edit-name", "Khun Somchai Jaidee").await;
    ada.fill("#contact-edit-time_zone", "Mars/Olympus").await;
    ada.click("#contact-edit-flag-vip").await;
    ada.click("#contact-edit-save").await;
    ada.wait_for_text("#contact-edit-time_zone-error", "time zone").await;
    let unchanged = daemon.get(&format!("/contacts/{somchai}"), &ada_token).await;
    assert_eq!(
        (unchanged["name"].clone(), unchanged["flags"].clone()),
        (json!("Somchai Jaidee"), json!([]))
    );
    ada.fill("#contact-edit-time_zone", "Asia/Bangkok").await;
    ada.click("#contact-edit-save").await;
    ada.wait_for_text("#contact-notice", "Saved").await;
    ada.wait_for_text("#contact-title", "Khun Somchai Jaidee").await;
    ada.wait_for("#contact-flags .flag[data-flag='vip']").await;
    let edited = daemon.get(&format!("/contacts/{somchai}"), &ada_token).await;
    assert_eq!(edited["name"], "Khun Somchai Jaidee", "{edited}");
    assert_eq!(edited["flags"], json!(["vip"]));
    assert_eq!(edited["time_zone"], "Asia/Bangkok");

    // The likely duplicate: the other account with the same email, and only that one
    // (Niran shares it but is billing's).
    let duplicate_item = format!("#contact-duplicates .duplicate[data-id='{duplicate}']");
    ada.wait_for_text(&duplicate_item, "Somchai J.").await;
    assert_eq!(edited["possible_duplicates"], json!([duplicate]));
    assert_eq!(
        ids_shown(&ada, "#contact-duplicates .duplicate").await,
        BTreeSet::from([duplicate])
    );
    ada.screenshot("contacts").await;

    // Merging asks first: cancelled, nothing happens; confirmed, both histories are here.
    ada.click(&format!("{duplicate_item} button.merge")).await;
    ada.wait_for("#merge-dialog[open]").await;
    ada.click("#merge-cancel").await;
    ada.wait_until("!document.querySelector('#merge-dialog')").await;
    assert_eq!(
        daemon.get(&format!("/contacts/{duplicate}"), &ada_token).await["merged_into"],
        Value::Null
    );
    ada.click(&format!("{duplicate_item} button.merge")).await;
    ada.wait_for_text("#merge-dialog", "cannot be undone").await;
    ada.click("#merge-confirm").await;
    ada.wait_for_text("#contact-notice", "Merged").await;
    ada.wait_until("document.querySelectorAll('#contact-identities li').length === 2")
        .await;
    for conversation in [thai, second] {
        ada.wait_for(&format!("#contact-conversations li[data-id='{conversation}']"))
            .await;
    }
    ada.wait_for_text("#contact-duplicates", "None found").await;
    let merged = daemon.get(&format!("/contacts/{somchai}"), &ada_token).await;
    assert_eq!(ids_of(&merged, "conversations", None), BTreeSet::from([thai, second]));
    assert_eq!(merged["identities"].as_array().unwrap().len(), 2);
    assert_eq!(
        daemon.get(&format!("/contacts/{duplicate}"), &ada_token).await["merged_into"],
        somchai
    );
    // A conversation opened from the page.
    ada.click(&format!("#contact-conversations li[data-id='{second}'] a"))
        .await;
    ada.wait_for_text("#thread .message.inbound .text", "Any news").await;

    // Everyone, newest first, a page at a time by the API's cursor.
    for n in 0..25 {
        let (status, answer) = daemon
            .post_signed(&customer(
                &format!("p-{n}"),
                &format!("person-{n}"),
                &format!("Person {n}"),
                &format!("person{n}@example.com"),
                "Where is my parcel?",
            ))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    }
    let everyone = ids_of(&daemon.get("/contacts?limit=100", &ada_token).await, "contacts", None);
    assert_eq!(
        everyone.len(),
        26,
        "Somchai and 25 more; the merged one and billing's are not listed"
    );
    ada.click("#contacts-link").await;
    ada.wait_until("document.querySelectorAll('#contact-results .contact-row').length === 25")
        .await;
    ada.click("#contacts-more").await;
    ada.wait_until("document.querySelectorAll('#contact-results .contact-row').length === 26")
        .await;
    ada.wait_until("document.querySelector('#contacts-more').hidden").await;
    assert_eq!(ids_shown(&ada, "#contact-results .contact-row").await, everyone);

    // Billing's agent, on a phone: search, contacts and pages show what the API lets
    // them see, Niran and billing's conversation, nothing of Somchai.
    let bo = Browser::start().await;
    bo.set_viewport_size(375, 812).await;
    sign_in_by_link(&bo, &daemon, &bo_link, "bo").await;
    let fits = "document.documentElement.scrollWidth <= window.innerWidth";
    search_from_the_keyboard(&bo, WORD).await;
    bo.wait_for(&format!("#search-results .result[data-id='{billing}']"))
        .await;
    let theirs = ids_of(
        &daemon.get(&format!("/search?q={}", urlencode(WORD)), &bo_token).await,
        "results",
        Some("conversation"),
    );
    assert_eq!(theirs, BTreeSet::from([billing]));
    assert_eq!(ids_shown(&bo, "#search-results .result").await, theirs);
    bo.wait_until(fits).await;
    bo.goto(&daemon.url(&format!("/#/contacts?q={}", urlencode(EMAIL))))
        .await;
    bo.wait_for(&format!("#contact-results .contact-row[data-id='{niran}']"))
        .await;
    let theirs = ids_of(
        &daemon
            .get(&format!("/contacts?q={}", urlencode(EMAIL)), &bo_token)
            .await,
        "contacts",
        None,
    );
    assert_eq!(theirs, BTreeSet::from([niran]));
    assert_eq!(ids_shown(&bo, "#contact-results .contact-row").await, theirs);
    bo.click(&format!("#contact-results .contact-row[data-id='{niran}'] a"))
        .await;
    bo.wait_for_text("#contact-title", "Niran").await;
    bo.wait_for_text("#contact-duplicates", "None found").await;
    bo.wait_until(fits).await;
    for id in [somchai, duplicate] {
        let (status, _) = daemon
            .api(reqwest::Method::GET, &format!("/contacts/{id}"), &bo_token, None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        bo.goto(&daemon.url(&format!("/#/contacts/{id}"))).await;
        bo.wait_for_text("#contact-error", &format!("#{id} was not found"))
            .await;
    }
    bo.goto(&daemon.url(&format!("/#/c/{thai}"))).await;
    bo.wait_for_text("#conversation .error", "conversation not found").await;
}

/// `text` as a URL query value.
fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}
