//! The label catalogue: `[labels.<name>]` with colours and descriptions, listed with the
//! open conversations carrying each; agents add labels from it and lists filter by them.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Daemon, config};

async fn desk_with_catalogue() -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n[labels.billing]\ncolor = \"#0EA5E9\"\ndescription = \"Charges and refunds\"\n\n\
         [labels.needs-info]\ndescription = \"Waiting for the customer\"\n",
        config(dir.path(), "http://127.0.0.1:9/unused")
    );
    std::fs::write(dir.path().join("switchboard.toml"), text).unwrap();
    Daemon::start_in(dir).await
}

fn label<'a>(catalogue: &'a Value, name: &str) -> &'a Value {
    catalogue["labels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|label| label["name"] == name)
        .unwrap_or_else(|| panic!("no label `{name}` in {catalogue}"))
}

#[tokio::test]
async fn agents_add_labels_from_the_catalogue_and_lists_filter_by_them() {
    let daemon = desk_with_catalogue().await;
    let root = daemon.agent("root", "support", "admin");
    let bo = daemon.agent("bo", "billing", "agent");
    // The billing rule of the test desk labels this one `billing`.
    let charged = daemon.post_accepted("m-1", "c-1", "I was charged twice").await["conversation_id"]
        .as_i64()
        .unwrap();
    let parcel = daemon.post_accepted("m-2", "c-2", "Where is my parcel?").await["conversation_id"]
        .as_i64()
        .unwrap();

    let catalogue = daemon.get("/labels", &root).await;
    assert_eq!(catalogue["free_form"], false);
    let billing = label(&catalogue, "billing");
    assert_eq!(billing["color"], "#0ea5e9");
    assert_eq!(billing["description"], "Charges and refunds");
    assert_eq!(billing["open_conversations"], 1);
    assert_eq!(label(&catalogue, "needs-info")["open_conversations"], 0);
    let overdue = label(&catalogue, "overdue");
    assert_eq!(overdue["built_in"], true, "{overdue}");

    // A label outside the catalogue is refused naming the field, and nothing changes.
    let before = daemon.snapshot_but_outbox().await;
    let (status, answer) = daemon
        .api(
            Method::PATCH,
            &format!("/conversations/{parcel}"),
            &root,
            Some(json!({"labels": {"add": ["needs-info", "refnud"]}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`labels.add`") && message.contains("refnud") && message.contains("needs-info"),
        "{message}"
    );
    assert_eq!(daemon.snapshot_but_outbox().await, before);

    let (status, answer) = daemon
        .api(
            Method::PATCH,
            &format!("/conversations/{parcel}"),
            &root,
            Some(json!({"labels": {"add": ["needs-info"]}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let listed = daemon.get("/conversations?label=needs-info", &root).await;
    let ids: Vec<i64> = listed["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|conversation| conversation["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [parcel]);
    assert_eq!(
        label(&daemon.get("/labels", &root).await, "needs-info")["open_conversations"],
        1
    );

    // Counts are of what the caller may see: billing's agent sees no `needs-info` one.
    let seen_by_bo = daemon.get("/labels", &bo).await;
    assert_eq!(label(&seen_by_bo, "needs-info")["open_conversations"], 0);
    assert_eq!(label(&seen_by_bo, "billing")["open_conversations"], 1);
    assert!(charged != parcel);

    // Removing works for any label the conversation carries.
    let (status, _) = daemon
        .api(
            Method::PATCH,
            &format!("/conversations/{parcel}"),
            &root,
            Some(json!({"labels": {"remove": ["needs-info"]}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn without_a_catalogue_labels_are_free_form_and_listed_with_their_counts() {
    let daemon = Daemon::start("http://127.0.0.1:9/unused").await;
    let root = daemon.agent("root", "support", "admin");
    let parcel = daemon.post_accepted("m-1", "c-1", "Where is my parcel?").await["conversation_id"]
        .as_i64()
        .unwrap();
    let (status, _) = daemon
        .api(
            Method::PATCH,
            &format!("/conversations/{parcel}"),
            &root,
            Some(json!({"labels": {"add": ["lost parcel"]}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let catalogue = daemon.get("/labels", &root).await;
    assert_eq!(catalogue["free_form"], true);
    let typed = label(&catalogue, "lost parcel");
    assert_eq!(typed["in_catalogue"], false);
    assert_eq!(typed["open_conversations"], 1);
    let (status, answer) = daemon
        .api(
            Method::PATCH,
            &format!("/conversations/{parcel}"),
            &root,
            Some(json!({"labels": {"add": ["a,b"]}})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a comma is never a label: {answer}"
    );
}
