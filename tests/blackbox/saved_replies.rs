//! Saved replies through `/api/v1/saved-replies`: personal and team ones, who may see
//! and change them, bad input refused with nothing changed, and one sent as a reply in
//! the contact's language with its placeholders filled, as the webhook app receives it.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Daemon, Receiver, customer_message, eventually};

async fn create(daemon: &Daemon, token: &str, body: Value) -> Value {
    let (status, reply) = daemon.api(Method::POST, "/saved-replies", token, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    reply
}

fn shortcuts(list: &Value) -> Vec<&str> {
    list["saved_replies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|reply| reply["shortcut"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn agents_keep_personal_replies_and_leads_keep_their_teams_which_members_use() {
    let receiver = Receiver::start().await;
    let daemon = Daemon::start(&receiver.url()).await;
    let sam = daemon.agent("sam", "support", "agent");
    let lead = daemon.agent("lena", "support", "supervisor");
    let bea = daemon.agent("bea", "billing", "agent");

    let thanks = create(
        &daemon,
        &sam,
        json!({"shortcut": "Thanks", "title": "Thank you", "bodies": {"en": "Thanks, {{contact.first_name | default: \"friend\"}}!"}}),
    )
    .await;
    assert_eq!(
        (
            &thanks["scope"],
            &thanks["shortcut"],
            &thanks["fallback"],
            &thanks["owner_id"]
        ),
        (
            &json!("personal"),
            &json!("thanks"),
            &json!("en"),
            &thanks["created_by"]["id"]
        )
    );
    let refund = create(
        &daemon,
        &lead,
        json!({"team": "support", "shortcut": "refund", "title": "Refund steps",
               "bodies": {"en": "Your refund for {{conversation.reference}} is on its way.",
                          "IT": "Il rimborso per {{conversation.reference}} è in arrivo."}}),
    )
    .await;
    assert_eq!((&refund["scope"], &refund["team"]), (&json!("team"), &json!("support")));
    assert_eq!(
        refund["bodies"]["it"],
        "Il rimborso per {{conversation.reference}} è in arrivo."
    );
    let refund_id = refund["id"].as_i64().unwrap();
    let thanks_id = thanks["id"].as_i64().unwrap();

    // Sam sees his own and his team's, found by shortcut or title.
    assert_eq!(
        shortcuts(&daemon.get("/saved-replies", &sam).await),
        ["refund", "thanks"]
    );
    assert_eq!(shortcuts(&daemon.get("/saved-replies?q=/ref", &sam).await), ["refund"]);
    assert_eq!(
        shortcuts(&daemon.get("/saved-replies?q=thank%20you", &sam).await),
        ["thanks"]
    );
    // Another team's agent sees neither; a supervisor sees the team's, not Sam's own.
    assert_eq!(shortcuts(&daemon.get("/saved-replies", &bea).await), Vec::<&str>::new());
    assert_eq!(shortcuts(&daemon.get("/saved-replies", &lead).await), ["refund"]);
    for (token, id) in [(&bea, thanks_id), (&bea, refund_id), (&lead, thanks_id)] {
        let (status, answer) = daemon
            .api(Method::GET, &format!("/saved-replies/{id}"), token, None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
        let (status, _) = daemon
            .api(
                Method::PATCH,
                &format!("/saved-replies/{id}"),
                token,
                Some(json!({"title": "Mine now"})),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = daemon
            .api(Method::DELETE, &format!("/saved-replies/{id}"), token, None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    // Sam uses the team's reply but may not change it; his own he may.
    let (status, answer) = daemon
        .api(
            Method::PATCH,
            &format!("/saved-replies/{refund_id}"),
            &sam,
            Some(json!({"title": "Mine"})),
        )
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (status, changed) = daemon
        .api(
            Method::PATCH,
            &format!("/saved-replies/{thanks_id}"),
            &sam,
            Some(json!({"bodies": {"it": "Grazie, {{contact.first_name}}!"}, "title": "Thanks (en, it)"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["bodies"].as_object().unwrap().len(), 2, "{changed}");
    assert_eq!(changed["title"], "Thanks (en, it)");

    // A shortcut is unique within its scope; the team's `refund` leaves Sam his own.
    let (status, answer) = daemon
        .api(
            Method::POST,
            "/saved-replies",
            &sam,
            Some(json!({"shortcut": "thanks", "bodies": {"en": "Again"}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(
        answer["error"]["message"].as_str().unwrap().contains("`shortcut`"),
        "{answer}"
    );
    create(
        &daemon,
        &sam,
        json!({"shortcut": "refund", "bodies": {"en": "My own words"}}),
    )
    .await;
    assert_eq!(
        shortcuts(&daemon.get("/saved-replies?q=refund", &sam).await),
        ["refund", "refund"],
        "his own and the team's"
    );

    let (status, _) = daemon
        .api(Method::DELETE, &format!("/saved-replies/{refund_id}"), &sam, None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = daemon
        .api(Method::DELETE, &format!("/saved-replies/{refund_id}"), &lead, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = daemon
        .api(Method::GET, &format!("/saved-replies/{refund_id}"), &lead, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_agent_cannot_make_a_team_reply_and_bad_input_is_refused_by_field_changing_nothing() {
    let receiver = Receiver::start().await;
    let daemon = Daemon::start(&receiver.url()).await;
    let sam = daemon.agent("sam", "support", "agent");
    let lead = daemon.agent("lena", "support", "supervisor");
    let mine = create(&daemon, &sam, json!({"shortcut": "hello", "bodies": {"en": "Hello!"}})).await;
    let before = daemon.snapshot().await;

    let (status, answer) = daemon
        .api(
            Method::POST,
            "/saved-replies",
            &sam,
            Some(json!({"team": "support", "shortcut": "refund", "bodies": {"en": "Refunded"}})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert!(
        answer["error"]["message"].as_str().unwrap().contains("supervisors"),
        "{answer}"
    );

    let bad = [
        (
            json!({"shortcut": "x", "bodies": {"en": "Hi", "it": "Ciao {{contact.phone}}"}}),
            "bodies.it",
        ),
        (
            json!({"shortcut": "x", "bodies": {"it": "Ciao {{ contact.name | upper }}"}}),
            "bodies.it",
        ),
        (
            json!({"shortcut": "x", "bodies": {"en": "Hi {{contact.name"}}),
            "bodies.en",
        ),
        (
            json!({"shortcut": "x", "bodies": {"english please": "Hi"}}),
            "bodies.english please",
        ),
        (json!({"shortcut": "x", "bodies": {"en": 3}}), "bodies.en"),
        (json!({"shortcut": "x", "bodies": {"en": "  "}}), "bodies.en"),
        (json!({"shortcut": "x", "bodies": "Hi"}), "bodies"),
        (json!({"shortcut": "x", "bodies": {}}), "bodies"),
        (json!({"shortcut": "x"}), "bodies"),
        (json!({"shortcut": "two words", "bodies": {"en": "Hi"}}), "shortcut"),
        (json!({"bodies": {"en": "Hi"}}), "shortcut"),
        (
            json!({"shortcut": "x", "bodies": {"en": "Hi"}, "fallback": "fr"}),
            "fallback",
        ),
        (
            json!({"shortcut": "x", "bodies": {"it": "Ciao", "fr": "Salut"}}),
            "fallback",
        ),
        (
            json!({"shortcut": "x", "bodies": {"en": "Hi"}, "team": "nowhere"}),
            "team",
        ),
        (
            json!({"shortcut": "x", "bodies": {"en": "Hi"}, "colour": "red"}),
            "colour",
        ),
    ];
    for (body, field) in bad {
        // A supervisor's request, so the field is judged rather than the permission.
        let (status, answer) = daemon
            .api(Method::POST, "/saved-replies", &lead, Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_field", "{body}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("`{field}`")),
            "{body} should name `{field}`: {answer}"
        );
    }
    let path = format!("/saved-replies/{}", mine["id"]);
    for (body, field) in [
        (json!({"bodies": {"en": null}}), "bodies"),
        (json!({"bodies": {"en": "Hi {{agent.email}}"}}), "bodies.en"),
        (json!({"team": "support"}), "team"),
        (json!({"fallback": "it"}), "fallback"),
        (json!({"shortcut": ""}), "shortcut"),
        (json!({}), "the body"),
    ] {
        let (status, answer) = daemon.api(Method::PATCH, &path, &sam, Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("`{field}`")),
            "{body} should name `{field}`: {answer}"
        );
    }
    assert_eq!(daemon.snapshot().await, before, "no refusal changed anything");
}

#[tokio::test]
async fn a_saved_reply_leaves_in_the_contacts_language_with_its_placeholders_filled_or_falls_back() {
    let receiver = Receiver::start().await;
    let daemon = Daemon::start(&receiver.url()).await;
    let sam = daemon.agent("sam", "support", "agent");
    let lead = daemon.agent("lena", "support,billing", "supervisor");
    // No English body: a language without its own falls back to French, not the desk's.
    let parcel = create(
        &daemon,
        &lead,
        json!({"team": "support", "shortcut": "parcel", "title": "Where is my parcel",
               "fallback": "fr",
               "bodies": {"it": "Ciao {{contact.first_name}}, la richiesta {{conversation.reference}} è in lavorazione. {{agent.name}}",
                          "fr": "Bonjour {{contact.name | default: \"\"}}, votre demande {{conversation.reference}} est en cours. {{agent.name}}"}}),
    )
    .await;
    let parcel_id = parcel["id"].as_i64().unwrap();

    let mut italian = customer_message("e1", "ada-1", "Dov'è il mio pacco?");
    italian["language"] = json!("it");
    let (_, inbound) = daemon.post_signed(&italian).await;
    let conversation_id = inbound["conversation_id"].as_i64().unwrap();

    let preview = daemon
        .get(
            &format!("/saved-replies/{parcel_id}/render?conversation={conversation_id}"),
            &sam,
        )
        .await;
    let expected = format!("Ciao Ada, la richiesta #{conversation_id} è in lavorazione. sam");
    assert_eq!(
        preview,
        json!({"saved_reply": parcel_id, "conversation_id": conversation_id, "language": "it",
               "text": expected, "missing": []})
    );

    let (status, reply) = daemon
        .api(
            Method::POST,
            &format!("/conversations/{conversation_id}/messages"),
            &sam,
            Some(json!({"saved_reply": parcel_id})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!((&reply["text"], &reply["kind"]), (&json!(expected), &json!("reply")));
    assert_eq!(
        reply["details"]["saved_reply"],
        json!({"id": parcel_id, "language": "it"})
    );
    let reply_id = reply["id"].as_i64().unwrap();
    daemon.delivery_reaches(&sam, conversation_id, reply_id, "sent").await;
    let callbacks = receiver.for_message(reply_id);
    assert_eq!(callbacks.len(), 1, "{callbacks:?}");
    assert!(callbacks[0].signature_valid);
    assert_eq!(
        callbacks[0].body,
        json!({"type": "message.outbound", "conversation_id": conversation_id, "message_id": reply_id,
               "to": {"id": "ada-1"}, "thread": null, "text": expected, "kind": "reply"})
    );
    let detail = daemon.get(&format!("/conversations/{conversation_id}"), &sam).await;
    assert_eq!(
        detail["assignee"]["name"], "sam",
        "an ordinary reply: it takes the conversation"
    );

    // A German speaker: no German body, no English one (the desk's), so the fallback.
    let mut german = customer_message("e2", "kurt-1", "Wo ist mein Paket?");
    german["language"] = json!("de");
    german["from"]["name"] = json!("Kurt Gödel");
    let (_, inbound) = daemon.post_signed(&german).await;
    let german_id = inbound["conversation_id"].as_i64().unwrap();
    // The agent's edit of the filled text is what leaves, and the reply still says
    // which saved reply it came from.
    let (status, edited) = daemon
        .api(
            Method::POST,
            &format!("/conversations/{german_id}/messages"),
            &sam,
            Some(json!({"saved_reply": parcel_id, "text": "Bonjour Kurt, c'est en route."})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{edited}");
    assert_eq!(edited["text"], "Bonjour Kurt, c'est en route.");
    assert_eq!(edited["details"]["saved_reply"]["language"], "fr");
    let (status, reply) = daemon
        .api(
            Method::POST,
            &format!("/conversations/{german_id}/messages"),
            &sam,
            Some(json!({"saved_reply": parcel_id})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    let expected = format!("Bonjour Kurt Gödel, votre demande #{german_id} est en cours. sam");
    assert_eq!(reply["text"], expected.as_str());
    let reply_id = reply["id"].as_i64().unwrap();
    daemon.delivery_reaches(&sam, german_id, reply_id, "sent").await;
    assert_eq!(receiver.for_message(reply_id)[0].body["text"], expected.as_str());

    // Someone else's personal reply is not one Sam can send, and the conversation of
    // another team is not one he can fill it for.
    let own = create(&daemon, &lead, json!({"shortcut": "mine", "bodies": {"en": "Lena's"}})).await;
    let (_, billing) = daemon
        .post_signed(&customer_message("e3", "bob-1", "I was charged twice"))
        .await;
    let billing_id = billing["conversation_id"].as_i64().unwrap();
    // Its acknowledgement settled first, so a snapshot holds still.
    eventually("the billing acknowledgement to be sent", || async {
        let detail = daemon.get(&format!("/conversations/{billing_id}"), &lead).await;
        detail["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|message| message["kind"] == "status_update" && message["delivery"]["status"] == "sent")
            .then_some(())
    })
    .await;
    let before = daemon.snapshot().await;
    let (status, answer) = daemon
        .api(
            Method::POST,
            &format!("/conversations/{conversation_id}/messages"),
            &sam,
            Some(json!({"saved_reply": own["id"]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(
        answer["error"]["message"].as_str().unwrap().contains("`saved_reply`"),
        "{answer}"
    );
    let (status, _) = daemon
        .api(
            Method::GET,
            &format!("/saved-replies/{parcel_id}/render?conversation={billing_id}"),
            &sam,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = daemon
        .api(
            Method::POST,
            &format!("/conversations/{billing_id}/messages"),
            &sam,
            Some(json!({"saved_reply": parcel_id})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(daemon.snapshot().await, before, "refusals changed nothing");
}
