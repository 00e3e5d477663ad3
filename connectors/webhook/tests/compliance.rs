//! The webhook channel passes the connector compliance suite: its documented bodies
//! (connectors/webhook/tests/fixtures, the format of docs/API.md) through the hook, and
//! its callbacks against a loopback receiver that answers as it is told.

use std::sync::{Arc, Mutex};

use http::{HeaderMap, Method};
use switchboard_connector_core::{BoxFuture, Channel, Connector, HookHead};
use switchboard_connector_webhook::signature::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use switchboard_connector_webhook::{Secret, Webhook, WebhookConfig};
use switchboard_test_compliance::{
    Fixture, Inbound, RecordingSink, SendCase, Verdict, check_inbound, check_send_errors, outbound, stage,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NOW_SECS: i64 = 1_795_000_000;

fn connector(callback_url: &str) -> Arc<dyn Connector> {
    let config: WebhookConfig = serde_json::from_value(serde_json::json!({
        "secret": SECRET,
        "callback_url": callback_url,
        "callback_timeout_secs": 2,
    }))
    .unwrap();
    let settings = Webhook::validate(&config, "shop", &|_: &str| None).unwrap();
    Webhook::build(&settings, "shop").unwrap()
}

struct Hooked {
    connector: Arc<dyn Connector>,
}

impl Inbound for Hooked {
    fn fixtures(&self) -> Vec<Fixture> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut fixtures: Vec<Fixture> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| {
                let path = entry.unwrap().path();
                Fixture::new(
                    path.file_name().unwrap().to_string_lossy(),
                    std::fs::read(&path).unwrap(),
                )
            })
            .collect();
        fixtures.sort_by(|a, b| a.name.cmp(&b.name));
        fixtures
    }

    fn deliver<'a>(&'a self, fixture: &'a Fixture, sink: &'a RecordingSink) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let id = format!("msg_{}", fixture.name);
            let signature = Secret::parse(SECRET).unwrap().sign(&id, NOW_SECS, &fixture.bytes);
            let mut headers = HeaderMap::new();
            headers.insert("content-type", "application/json".parse().unwrap());
            headers.insert(HEADER_ID, id.parse().unwrap());
            headers.insert(HEADER_TIMESTAMP, NOW_SECS.to_string().parse().unwrap());
            headers.insert(HEADER_SIGNATURE, signature.parse().unwrap());
            let head = HookHead {
                method: &Method::POST,
                query: None,
                headers: &headers,
                now_ms: NOW_SECS * 1000,
            };
            let hook = self.connector.hook().expect("the webhook channel takes hooks");
            let limit = hook.admit(&head).expect("a signed JSON POST is admitted");
            assert!(fixture.bytes.len() <= limit);
            match hook.handle(&head, &fixture.bytes, sink).await {
                Ok(reply) => (200..300).contains(&reply.status),
                Err(_) => false,
            }
        })
    }
}

#[tokio::test]
async fn the_webhook_channel_normalizes_dedupes_and_acknowledges_only_after_commit() {
    check_inbound(&Hooked {
        connector: connector("http://127.0.0.1:9/callback"),
    })
    .await;
}

/// A callback receiver on loopback answering each request with the next scripted status.
async fn receiver() -> (String, Arc<Mutex<Vec<u16>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/callback", listener.local_addr().unwrap());
    let script: Arc<Mutex<Vec<u16>>> = Arc::default();
    let answers = Arc::clone(&script);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let status = answers.lock().unwrap().pop().unwrap_or(204);
            tokio::spawn(async move {
                // The request's head and body arrive together here; one read takes enough
                // to answer, and the answer closes the connection.
                let mut buffer = vec![0; 64 * 1024];
                let _ = stream.read(&mut buffer).await;
                let answer = format!("HTTP/1.1 {status} Scripted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    (url, script)
}

#[tokio::test]
async fn the_webhook_channel_classifies_its_send_errors() {
    let (url, script) = receiver().await;
    let connector = connector(&url);
    let answer = |status: u16| {
        let script = Arc::clone(&script);
        stage(move || script.lock().unwrap().push(status))
    };
    let gone = connector_with_closed_port();
    check_send_errors(
        connector.sender(),
        vec![
            SendCase {
                name: "the receiver takes it",
                stage: answer(204),
                message: outbound("user-42", "Your parcel left the warehouse."),
                expect: Verdict::Sent,
            },
            SendCase {
                name: "the receiver is overloaded",
                stage: answer(503),
                message: outbound("user-42", "Your parcel left the warehouse."),
                expect: Verdict::Transient,
            },
            SendCase {
                name: "the receiver refuses the body",
                stage: answer(422),
                message: outbound("user-42", "Your parcel left the warehouse."),
                expect: Verdict::Permanent,
            },
        ],
    )
    .await;
    // Nobody listening is the same verdict as an overloaded receiver: try again later.
    let result = gone.sender().send(&outbound("user-42", "Hello")).await;
    assert_eq!(Verdict::of(&result), Verdict::Transient, "{result:?}");
}

fn connector_with_closed_port() -> Arc<dyn Connector> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    connector(&format!("http://127.0.0.1:{port}/callback"))
}
