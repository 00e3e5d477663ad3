//! Contacts through the API: found by what an agent knows of a person, corrected, flagged
//! VIP for the routing rules, two contacts of one person merged (their histories joined,
//! each conversation still answered on the channel its customer wrote from), and an
//! agent of another team told nothing of a person they may not see.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard_test_telegram::{FakeTelegram, telegram_inbox};

use crate::harness::{Daemon, Receiver, config_with_inbox, eventually, shop_inbox};

const BOT_TOKEN: &str = "5000000002:AAHfake-token-for-the-contacts-bot";
const ADA_TELEGRAM: i64 = 418_552_901;

/// The test desk with a VIP rule, the webhook inbox `shop`, and a Telegram bot when
/// `telegram` names the fake Bot API.
async fn desk(receiver: &Receiver, telegram: Option<&FakeTelegram>) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let mut inboxes = shop_inbox(&receiver.url());
    if let Some(fake) = telegram {
        inboxes.push_str(&telegram_inbox(dir.path(), "shop-bot", BOT_TOKEN, fake, ""));
    }
    let config = config_with_inbox(dir.path(), &inboxes)
        + r#"
[[rules]]
name = "vip"
when = { flags = ["vip"] }
then = { priority = "urgent", labels = ["vip"] }
"#;
    std::fs::write(dir.path().join("switchboard.toml"), config).unwrap();
    Daemon::start_in(dir).await
}

fn message(id: &str, from: &str, thread: &str, text: &str) -> Value {
    json!({
        "id": id, "thread": thread, "text": text,
        "from": {"id": from, "name": "Ada Lovelace", "email": "ada@example.com"},
        "metadata": {"phone": "+39 333 1234567"},
    })
}

async fn post(daemon: &Daemon, body: &Value) -> Value {
    let (status, answer) = daemon.post_signed(body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    answer
}

async fn search(daemon: &Daemon, token: &str, text: &str) -> Vec<i64> {
    let page = daemon.get(&format!("/contacts?q={}", urlencoding(text)), token).await;
    page["contacts"]
        .as_array()
        .unwrap_or_else(|| panic!("{page}"))
        .iter()
        .map(|contact| contact["id"].as_i64().unwrap())
        .collect()
}

fn urlencoding(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn an_agent_finds_a_person_corrects_them_and_a_vip_flag_routes_their_next_conversation() {
    let receiver = Receiver::start().await;
    let daemon = desk(&receiver, None).await;
    let grace = daemon.agent("grace", "support", "agent");
    let first = post(&daemon, &message("m-1", "cust-1", "order-1", "Where is my parcel?")).await;
    let contact = daemon
        .get(&format!("/conversations/{}", first["conversation_id"]), &grace)
        .await["contact"]["id"]
        .as_i64()
        .unwrap();

    for text in ["lovelace", "ADA@example", "333 1234", "cust-1"] {
        assert_eq!(search(&daemon, &grace, text).await, [contact], "searching {text:?}");
    }
    assert!(search(&daemon, &grace, "nobody-like-this").await.is_empty());

    let (status, updated) = daemon
        .api(
            Method::PATCH,
            &format!("/contacts/{contact}"),
            &grace,
            Some(
                json!({"flags": ["VIP", "verified"], "time_zone": "Europe/Rome", "language": "it",
                        "attributes": {"plan": "gold"}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["flags"], json!(["vip", "verified"]));
    assert_eq!(updated["time_zone"], "Europe/Rome");
    assert_eq!(updated["language"], "it");
    assert_eq!(updated["attributes"]["plan"], "gold");
    assert_eq!(
        updated["attributes"]["phone"], "+39 333 1234567",
        "what the webhook told stays"
    );
    assert_eq!(updated["identities"][0]["inbox"], "shop");
    assert_eq!(updated["conversations"].as_array().unwrap().len(), 1);

    // Bad input: a clear error naming the field, and nothing changed.
    for (body, field) in [
        (json!({"time_zone": "Mars/Olympus"}), "time_zone"),
        (json!({"flags": "vip"}), "flags"),
        (json!({"language": "not a language"}), "language"),
        (json!({"email": "no-at-sign"}), "email"),
        (json!({"attributes": {"flags": ["x"]}}), "attributes"),
        (json!({"nickname": "Ada"}), "nickname"),
        (json!({}), "the body"),
    ] {
        let (status, answer) = daemon
            .api(
                Method::PATCH,
                &format!("/contacts/{contact}"),
                &grace,
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(field),
            "{body}: {answer}"
        );
    }
    let unchanged = daemon.get(&format!("/contacts/{contact}"), &grace).await;
    assert_eq!(unchanged["time_zone"], "Europe/Rome");
    assert_eq!(unchanged["flags"], json!(["vip", "verified"]));

    // The flag is what the VIP rule reads: the person's next conversation is urgent.
    let second = post(&daemon, &message("m-2", "cust-1", "order-2", "Another question")).await;
    assert_ne!(second["conversation_id"], first["conversation_id"]);
    let routed = daemon
        .get(&format!("/conversations/{}", second["conversation_id"]), &grace)
        .await;
    assert_eq!(routed["priority"], "urgent", "{routed}");
    assert_eq!(routed["labels"], json!(["vip"]));
    let earlier = daemon
        .get(&format!("/conversations/{}", first["conversation_id"]), &grace)
        .await;
    assert_eq!(earlier["priority"], "normal", "an open conversation is not rerouted");

    // Flags cleared with an empty list.
    let (status, cleared) = daemon
        .api(
            Method::PATCH,
            &format!("/contacts/{contact}"),
            &grace,
            Some(json!({"flags": [], "time_zone": null})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cleared}");
    assert_eq!(
        (cleared["flags"].clone(), cleared["time_zone"].clone()),
        (json!([]), Value::Null)
    );
}

#[tokio::test]
async fn two_contacts_of_one_person_merge_and_each_conversation_is_still_answered_where_they_wrote() {
    let fake = FakeTelegram::start().await;
    fake.add_bot(BOT_TOKEN, 5_000_000_002, "ContactsBot");
    let receiver = Receiver::start().await;
    let daemon = desk(&receiver, Some(&fake)).await;
    let grace = daemon.agent("grace", "support", "agent");
    let on_app = post(&daemon, &message("m-1", "ada-7", "order-1", "My parcel is late")).await;
    let app_conversation = on_app["conversation_id"].as_i64().unwrap();
    fake.push_update(
        BOT_TOKEN,
        json!({"message": {
            "message_id": 21,
            "from": {"id": ADA_TELEGRAM, "is_bot": false, "first_name": "Ada", "username": "ada_l"},
            "chat": {"id": ADA_TELEGRAM, "type": "private", "first_name": "Ada"},
            "date": 1_795_000_000,
            "text": "Hello from Telegram"
        }}),
    );
    let bot_conversation = eventually("the Telegram conversation", || async {
        let page = daemon.get("/conversations?inbox=shop-bot", &grace).await;
        page["conversations"].as_array()?.first()?["id"].as_i64()
    })
    .await;
    let on_bot = daemon.get(&format!("/conversations/{bot_conversation}"), &grace).await["contact"]["id"]
        .as_i64()
        .unwrap();
    let on_app_contact = daemon.get(&format!("/conversations/{app_conversation}"), &grace).await["contact"]["id"]
        .as_i64()
        .unwrap();
    assert_ne!(on_bot, on_app_contact, "two contacts until someone says they are one");
    assert_eq!(
        search(&daemon, &grace, "@ada_l").await,
        [on_bot],
        "found by Telegram username"
    );

    // Refusals change nothing.
    for (body, status) in [
        (json!({"from": on_app_contact}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"from": 999_999}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"from": "two"}), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let (got, answer) = daemon
            .api(
                Method::POST,
                &format!("/contacts/{on_app_contact}/merge"),
                &grace,
                Some(body.clone()),
            )
            .await;
        assert_eq!(got, status, "{body}: {answer}");
    }
    assert_eq!(
        daemon.get(&format!("/contacts/{on_bot}"), &grace).await["merged_into"],
        Value::Null
    );

    let (status, merged) = daemon
        .api(
            Method::POST,
            &format!("/contacts/{on_app_contact}/merge"),
            &grace,
            Some(json!({"from": on_bot})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{merged}");
    assert_eq!(merged["merged"]["conversations"], json!([bot_conversation]));
    let person = &merged["contact"];
    let channels: Vec<&str> = person["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|identity| identity["channel"].as_str().unwrap())
        .collect();
    assert_eq!(channels, ["webhook", "telegram"]);
    assert_eq!(person["conversations"].as_array().unwrap().len(), 2, "both histories");
    assert_eq!(
        person["attributes"]["telegram_username"], "ada_l",
        "what only the other knew"
    );
    assert_eq!(person["name"], "Ada Lovelace");
    let gone = daemon.get(&format!("/contacts/{on_bot}"), &grace).await;
    assert_eq!(gone["merged_into"], on_app_contact);
    assert!(search(&daemon, &grace, "@ada_l").await == [on_app_contact]);
    // Each conversation's timeline says who merged.
    for conversation in [app_conversation, bot_conversation] {
        let detail = daemon.get(&format!("/conversations/{conversation}"), &grace).await;
        assert_eq!(detail["contact"]["id"], on_app_contact);
        let merge = detail["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|event| event["kind"] == "contact.merged")
            .unwrap_or_else(|| panic!("no contact.merged in {detail}"));
        assert_eq!(merge["actor"]["kind"], "agent");
        assert_eq!(merge["data"], json!({"from": on_bot, "into": on_app_contact}));
    }
    // A merged contact is a pointer: changing it is refused.
    let (status, _) = daemon
        .api(
            Method::PATCH,
            &format!("/contacts/{on_bot}"),
            &grace,
            Some(json!({"name": "X"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "change the contact it joined instead");

    // She writes on Telegram again: it joins the Telegram conversation, and the reply
    // leaves by Telegram; the app conversation's reply by the app's callback.
    fake.push_update(
        BOT_TOKEN,
        json!({"message": {
            "message_id": 22,
            "from": {"id": ADA_TELEGRAM, "is_bot": false, "first_name": "Ada", "username": "ada_l"},
            "chat": {"id": ADA_TELEGRAM, "type": "private", "first_name": "Ada"},
            "date": 1_795_000_100,
            "text": "Any news?"
        }}),
    );
    eventually("her second Telegram message in its conversation", || async {
        let detail = daemon.get(&format!("/conversations/{bot_conversation}"), &grace).await;
        let texts: Vec<String> = detail["messages"]
            .as_array()?
            .iter()
            .filter_map(|m| m["text"].as_str().map(str::to_owned))
            .collect();
        texts.iter().any(|text| text == "Any news?").then_some(())
    })
    .await;
    for (conversation, text) in [(bot_conversation, "Shipped today"), (app_conversation, "Refund sent")] {
        let (status, body) = daemon
            .api(
                Method::POST,
                &format!("/conversations/{conversation}/messages"),
                &grace,
                Some(json!({"text": text})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    eventually("the Telegram reply", || async {
        fake.sent_messages(BOT_TOKEN)
            .iter()
            .any(|call| call.params.get("text").and_then(Value::as_str) == Some("Shipped today"))
            .then_some(())
    })
    .await;
    eventually("the app reply at the app's callback", || async {
        receiver
            .callbacks()
            .iter()
            .any(|callback| callback.body.to_string().contains("Refund sent"))
            .then_some(())
    })
    .await;
    assert!(
        !fake
            .sent_messages(BOT_TOKEN)
            .iter()
            .any(|call| call.params.get("text").and_then(Value::as_str) == Some("Refund sent")),
        "the app conversation's reply did not go to Telegram"
    );
    assert!(
        !receiver
            .callbacks()
            .iter()
            .any(|c| c.body.to_string().contains("Shipped today")),
        "the Telegram conversation's reply did not go to the app"
    );
}

#[tokio::test]
async fn an_agent_of_another_team_is_told_nothing_of_a_person_they_may_not_see() {
    let receiver = Receiver::start().await;
    let daemon = desk(&receiver, None).await;
    let admin = daemon.agent("root", "support", "admin");
    let biller = daemon.agent("bill", "billing", "agent");
    // An enterprise customer: the test desk routes them to `technical`.
    let body = json!({
        "id": "m-1", "text": "The API is down",
        "from": {"id": "corp-1", "name": "Grace Hopper"}, "metadata": {"plan": "enterprise"},
    });
    let conversation = post(&daemon, &body).await["conversation_id"].as_i64().unwrap();
    let contact = daemon.get(&format!("/conversations/{conversation}"), &admin).await["contact"]["id"]
        .as_i64()
        .unwrap();
    let billing_customer = post(&daemon, &message("m-2", "cust-2", "t", "Refund my invoice")).await;
    let billing_contact = daemon
        .get(
            &format!("/conversations/{}", billing_customer["conversation_id"]),
            &admin,
        )
        .await["contact"]["id"]
        .as_i64()
        .unwrap();

    assert_eq!(search(&daemon, &admin, "hopper").await, [contact]);
    assert!(search(&daemon, &biller, "hopper").await.is_empty());
    assert_eq!(
        search(&daemon, &biller, "").await,
        [billing_contact],
        "only their team's people"
    );
    let (status, _) = daemon
        .api(Method::GET, &format!("/contacts/{contact}"), &biller, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = daemon
        .api(
            Method::PATCH,
            &format!("/contacts/{contact}"),
            &biller,
            Some(json!({"name": "X"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, answer) = daemon
        .api(
            Method::POST,
            &format!("/contacts/{billing_contact}/merge"),
            &biller,
            Some(json!({"from": contact})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let detail = daemon.get(&format!("/contacts/{contact}"), &admin).await;
    assert_eq!(detail["name"], "Grace Hopper", "nothing changed");
    assert_eq!(detail["merged_into"], Value::Null);
}

#[tokio::test]
async fn search_finds_a_thai_word_inside_a_sentence_and_nothing_of_another_teams_conversations() {
    let receiver = Receiver::start().await;
    let daemon = desk(&receiver, None).await;
    let support = daemon.agent("grace", "support", "agent");
    let biller = daemon.agent("bill", "billing", "agent");
    let thai = post(
        &daemon,
        &message("m-1", "somchai", "t-1", "สวัสดีครับ ผมต้องการยกเลิกคำสั่งซื้อของผมครับ"),
    )
    .await["conversation_id"]
        .as_i64()
        .unwrap();
    // Routed to billing by the test desk's rule.
    let refund = post(
        &daemon,
        &message("m-2", "anna", "t-2", "Please refund the double charge on my invoice"),
    )
    .await["conversation_id"]
        .as_i64()
        .unwrap();
    let (status, body) = daemon
        .api(
            Method::POST,
            &format!("/conversations/{thai}/messages"),
            &support,
            Some(json!({"text": "ลูกค้าขอยกเลิก: checked the warehouse", "private": true})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let found = daemon
        .get(&format!("/search?q={}", urlencoding("ยกเลิก")), &support)
        .await;
    let results = found["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{found}");
    assert_eq!(results[0]["conversation"]["id"], thai);
    let matches = results[0]["matches"].as_array().unwrap();
    assert_eq!(matches.len(), 2, "the customer's message and the note: {found}");
    assert_eq!(matches[0]["kind"], "note", "newest first");
    for found in matches {
        let excerpt: Vec<char> = found["excerpt"].as_str().unwrap().chars().collect();
        let [start, end] = [
            found["highlights"][0][0].as_u64().unwrap(),
            found["highlights"][0][1].as_u64().unwrap(),
        ];
        let marked: String = excerpt[start as usize..end as usize].iter().collect();
        assert_eq!(marked, "ยกเลิก");
    }

    // The billing conversation: its team finds it; support's agent does not, nor billing's
    // agent the Thai one.
    let by_biller = daemon.get("/search?q=refund", &biller).await;
    assert_eq!(by_biller["results"][0]["conversation"]["id"], refund, "{by_biller}");
    assert_eq!(daemon.get("/search?q=refund", &support).await["results"], json!([]));
    assert_eq!(
        daemon
            .get(&format!("/search?q={}", urlencoding("ยกเลิก")), &biller)
            .await["results"],
        json!([])
    );
    // With the list's filters.
    assert_eq!(
        daemon.get("/search?q=refund&status=resolved", &biller).await["results"],
        json!([])
    );
    for (query, field) in [
        ("/search?q=ab", "q"),
        ("/search", "q"),
        ("/search?q=refund&sort=newest", "sort"),
    ] {
        let (status, answer) = daemon.api(Method::GET, query, &biller, None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains(field), "{answer}");
    }
}

/// The contact a conversation belongs to.
async fn contact_of(daemon: &Daemon, token: &str, answer: &Value) -> i64 {
    daemon
        .get(&format!("/conversations/{}", answer["conversation_id"]), token)
        .await["contact"]["id"]
        .as_i64()
        .unwrap()
}

/// An app that vouches for its user's email address or phone number joins that user to
/// the person the desk already knows by it; an unverified address, or one several
/// contacts share, only makes a likely duplicate for an agent to confirm.
#[tokio::test]
async fn a_verified_email_or_phone_from_an_app_links_its_user_to_the_person_already_known() {
    let receiver = Receiver::start().await;
    let daemon = desk(&receiver, None).await;
    let root = daemon.agent("root", "support", "admin");
    let sender = |id: &str, from: Value| json!({"id": id, "text": "Hello again", "from": from});

    let known = post(
        &daemon,
        &sender(
            "m-1",
            json!({"id": "web-1", "name": "Ada Lovelace", "email": "ada@example.com"}),
        ),
    )
    .await;
    let ada = contact_of(&daemon, &root, &known).await;
    let verified = post(
        &daemon,
        &sender(
            "m-2",
            json!({"id": "app-77", "email": "ADA@example.com", "verified": ["email"]}),
        ),
    )
    .await;
    assert_eq!(
        contact_of(&daemon, &root, &verified).await,
        ada,
        "linked by the verified email"
    );
    let page = daemon.get(&format!("/contacts/{ada}"), &root).await;
    assert_eq!(page["identities"].as_array().unwrap().len(), 2, "{page}");
    // The same person in the same inbox: the open conversation goes on.
    assert_eq!(verified["conversation_id"], known["conversation_id"]);

    // The reply goes to the user id that wrote last.
    let conversation = verified["conversation_id"].as_i64().unwrap();
    let (status, reply) = daemon
        .api(
            Method::POST,
            &format!("/conversations/{conversation}/messages"),
            &root,
            Some(json!({"text": "Welcome back, Ada"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    let reply_id = reply["id"].as_i64().unwrap();
    let callback = eventually("the reply to reach the app", || async {
        receiver.for_message(reply_id).into_iter().next()
    })
    .await;
    assert_eq!(callback.body["to"]["id"], "app-77");

    // A phone number given once, then vouched for by another user id of the app.
    let phoned = post(
        &daemon,
        &sender(
            "m-3",
            json!({"id": "web-2", "name": "Grace", "phone": "+49 30 1234-567"}),
        ),
    )
    .await;
    let grace = contact_of(&daemon, &root, &phoned).await;
    assert_eq!(
        daemon.get(&format!("/contacts/{grace}"), &root).await["attributes"]["phone"],
        "+49301234567"
    );
    let by_phone = post(
        &daemon,
        &sender(
            "m-4",
            json!({"id": "app-88", "phone": "+49301234567", "verified": ["phone"]}),
        ),
    )
    .await;
    assert_eq!(contact_of(&daemon, &root, &by_phone).await, grace);

    // Unverified: a new contact, shown as Ada's likely duplicate.
    let unverified = post(
        &daemon,
        &sender("m-5", json!({"id": "web-3", "email": "ada@example.com"})),
    )
    .await;
    let twin = contact_of(&daemon, &root, &unverified).await;
    assert_ne!(twin, ada);
    let page = daemon.get(&format!("/contacts/{ada}"), &root).await;
    assert_eq!(page["possible_duplicates"], json!([twin]), "{page}");
    // Now two contacts hold the address: a verified one links to neither.
    let ambiguous = post(
        &daemon,
        &sender(
            "m-6",
            json!({"id": "app-99", "email": "ada@example.com", "verified": ["email"]}),
        ),
    )
    .await;
    let third = contact_of(&daemon, &root, &ambiguous).await;
    assert!(third != ada && third != twin);

    // What the app may not claim is refused, naming the field.
    for (from, field) in [
        (json!({"id": "x", "verified": ["email"]}), "from.verified[0]"),
        (
            json!({"id": "x", "email": "a@b.c", "verified": ["email", "age"]}),
            "from.verified[1]",
        ),
        (
            json!({"id": "x", "email": "a@b.c", "verified": "email"}),
            "from.verified",
        ),
        (json!({"id": "x", "phone": "call me"}), "from.phone"),
    ] {
        let (status, answer) = daemon.post_signed(&sender("m-bad", from.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{from}: {answer}");
        assert!(answer.to_string().contains(field), "{from}: {answer}");
    }
}
