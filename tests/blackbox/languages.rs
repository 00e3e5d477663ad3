//! The shipped desk speaks Italian: on `config/switchboard.toml` as shipped, Italian
//! messages of each urgent class reach the team its rules promise, are stored as `it`,
//! and are acknowledged in Italian.

use std::path::Path;

use crate::harness::{Daemon, Receiver, SECRET, customer_message, eventually};

/// The shipped configuration with only what a test machine must change: a port of its
/// own, a temp database, the tests' signing secret and their callback receiver.
fn shipped(dir: &Path, callback_url: &str) -> String {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/switchboard.toml")).unwrap();
    let database = format!("url = \"sqlite://{}\"", dir.join("switchboard.db").display());
    let secret = format!("secret = \"{SECRET}\"");
    let callback = format!("callback_url = \"{callback_url}\"");
    [
        ("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\""),
        ("url = \"sqlite://data/switchboard.db\"", database.as_str()),
        (
            "secret = \"whsec_c3dpdGNoYm9hcmQtZGVtby1zZWNyZXQtY2hhbmdlLW1l\"",
            secret.as_str(),
        ),
        (
            "callback_url = \"http://127.0.0.1:9090/switchboard\"",
            callback.as_str(),
        ),
    ]
    .into_iter()
    .fold(text, |text, (from, to)| {
        assert!(text.contains(from), "the shipped config no longer says {from}");
        text.replacen(from, to, 1)
    })
}

#[tokio::test]
async fn italian_messages_of_each_urgent_class_reach_the_promised_team_stored_as_italian() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("switchboard.toml"),
        shipped(dir.path(), &receiver.url()),
    )
    .unwrap();
    let daemon = Daemon::start_in(dir).await;
    let admin = daemon.agent("root", "support", "admin");

    // (what, text, team, priority, label)
    let cases = [
        (
            "a double charge",
            "Buongiorno, mi avete addebitato due volte l'ordine 4471: potete rimborsarmi?",
            "billing",
            "high",
            "billing",
        ),
        (
            "an unexpected charge",
            "Salve, sull'estratto conto trovo un addebito sconosciuto di 49 euro da parte vostra",
            "billing",
            "high",
            "billing",
        ),
        (
            "an outage",
            "L'app non si carica da stamattina, è un disservizio generale? Non riesco a lavorare",
            "technical",
            "urgent",
            "outage",
        ),
        (
            "goods not delivered",
            "Il mio pacco non è mai arrivato, l'ordine è del 3 novembre e il corriere non risponde",
            "support",
            "high",
            "delivery",
        ),
        (
            "a broken link",
            "Buongiorno, il link non funziona: quando provo a scaricare il biglietto mi dice pagina non trovata",
            "support",
            "high",
            "delivery",
        ),
    ];
    let mut first = None;
    for (n, (what, text, team, priority, label)) in cases.into_iter().enumerate() {
        let customer = format!("cliente-{n}");
        let posted = daemon.post_accepted(&format!("evt-it-{n}"), &customer, text).await;
        let id = posted["conversation_id"].as_i64().unwrap();
        first.get_or_insert(id);
        let conversation = daemon.get(&format!("/conversations/{id}"), &admin).await;
        assert_eq!(conversation["team"]["key"], team, "{what}: {conversation}");
        assert_eq!(conversation["priority"], priority, "{what}: {conversation}");
        assert!(
            conversation["labels"]
                .as_array()
                .unwrap()
                .iter()
                .any(|found| found == label),
            "{what}: {conversation}"
        );
        assert_eq!(conversation["language"], "it", "{what}: {conversation}");
        assert_eq!(conversation["contact"]["language"], "it", "{what}: {conversation}");
        assert_eq!(conversation["messages"][0]["language"], "it", "{what}: {conversation}");

        // Acknowledged in Italian (received, or out_of_hours when the office is closed).
        let acknowledgement = eventually("the acknowledgement to reach the app", || async {
            receiver
                .callbacks()
                .into_iter()
                .find(|callback| callback.body["conversation_id"] == id && callback.body["kind"] == "status_update")
        })
        .await;
        let sent = acknowledgement.body["text"].as_str().unwrap_or_default();
        assert!(
            sent.starts_with("Ciao Ada Lovelace,"),
            "{what}: {}",
            acknowledgement.body
        );
    }

    // A short line from a known Italian customer that detection alone calls Spanish keeps
    // her Italian: it is not stored as Spanish, and the conversation and contact stay `it`.
    let (status, posted) = daemon
        .post_signed(&customer_message("evt-it-short", "cliente-0", SHORT_LINE))
        .await;
    assert!(status.is_success(), "{status}: {posted}");
    assert_eq!(posted["conversation_id"].as_i64(), first, "{posted}");
    let conversation = daemon.get(&format!("/conversations/{}", first.unwrap()), &admin).await;
    let short = conversation["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|message| message["text"] == SHORT_LINE)
        .unwrap_or_else(|| panic!("the short line joined another conversation: {conversation}"));
    assert_ne!(short["language"], "es", "{short}");
    assert_eq!(conversation["language"], "it", "{conversation}");
    assert_eq!(conversation["contact"]["language"], "it", "{conversation}");
}

/// A short chat line of an Italian customer's with Spanish in it: detection alone reads
/// it as Spanish.
const SHORT_LINE: &str = "Perfetto, muchas gracias";
