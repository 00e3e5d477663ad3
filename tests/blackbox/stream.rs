//! `GET /api/v1/stream` as an integration reads it: Server-Sent Events of what the
//! token's agent may see, resumable with `Last-Event-ID`.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{DEADLINE, Daemon};

/// One server-sent event.
#[derive(Debug, Clone)]
pub(crate) struct Sse {
    pub(crate) id: Option<String>,
    pub(crate) event: String,
    pub(crate) data: Value,
}

/// A connection to the stream, read event by event.
pub(crate) struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    pub(crate) async fn open(daemon: &Daemon, token: &str, last_event_id: Option<&str>) -> Stream {
        let mut request = reqwest::Client::new()
            .get(daemon.url("/api/v1/stream"))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Stream {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (comments skipped), within the deadline.
    async fn next(&mut self) -> Sse {
        tokio::time::timeout(DEADLINE, async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    let (mut id, mut event, mut data) = (None, String::from("message"), String::new());
                    for line in block.lines() {
                        if let Some(value) = line.strip_prefix("id:") {
                            id = Some(value.trim().to_owned());
                        } else if let Some(value) = line.strip_prefix("event:") {
                            event = value.trim().to_owned();
                        } else if let Some(value) = line.strip_prefix("data:") {
                            data.push_str(value.trim_start());
                        }
                    }
                    if data.is_empty() && id.is_none() {
                        continue;
                    }
                    return Sse {
                        id,
                        event,
                        data: serde_json::from_str(&data).unwrap_or(Value::Null),
                    };
                }
                let chunk = self.response.chunk().await.unwrap().expect("the stream ended");
                self.buffer.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await
        .expect("no event before the deadline")
    }

    /// Whether the server ends the stream before the deadline (events meanwhile are
    /// read and dropped).
    pub(crate) async fn ended(&mut self) -> bool {
        tokio::time::timeout(DEADLINE, async {
            loop {
                match self.response.chunk().await {
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => return true,
                }
            }
        })
        .await
        .unwrap_or(false)
    }

    /// Events up to and including the first that `done` accepts.
    pub(crate) async fn until(&mut self, done: impl Fn(&Sse) -> bool) -> Vec<Sse> {
        let mut seen = Vec::new();
        loop {
            let event = self.next().await;
            let last = done(&event);
            seen.push(event);
            if last {
                return seen;
            }
        }
    }
}

pub(crate) fn message_created(conversation: i64, message: i64) -> impl Fn(&Sse) -> bool {
    move |event| {
        event.event == "message.created"
            && event.data["conversation_id"] == conversation
            && event.data["message"]["id"] == message
    }
}

fn conversations(events: &[Sse]) -> BTreeSet<i64> {
    events
        .iter()
        .filter_map(|event| event.data["conversation_id"].as_i64())
        .collect()
}

async fn post(daemon: &Daemon, id: &str, text: &str) -> (i64, i64) {
    let body = daemon.post_accepted(id, &format!("from-{id}"), text).await;
    (
        body["conversation_id"].as_i64().unwrap(),
        body["message_id"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn the_stream_tells_each_agent_what_they_may_see_and_resumes_where_it_left_off() {
    let daemon = Daemon::start("http://127.0.0.1:9/unused").await;
    let ada = daemon.agent("ada", "support", "agent");
    let sam = daemon.agent("sam", "support,billing", "supervisor");
    let mut ada_stream = Stream::open(&daemon, &ada, None).await;
    let mut sam_stream = Stream::open(&daemon, &sam, None).await;
    for stream in [&mut ada_stream, &mut sam_stream] {
        assert_eq!(stream.next().await.event, "stream.ready");
    }

    // Billing's conversation first (its rule), then support's.
    let billing = post(&daemon, "s-1", "I was charged twice, refund please").await;
    let support = post(&daemon, "s-2", "Where is my parcel?").await;
    let seen = ada_stream.until(message_created(support.0, support.1)).await;
    assert_eq!(
        conversations(&seen),
        BTreeSet::from([support.0]),
        "ada saw billing's conversation"
    );
    let kinds: Vec<&str> = seen.iter().map(|event| event.event.as_str()).collect();
    assert!(
        kinds.contains(&"conversation.created") && kinds.contains(&"conversation.routed"),
        "{kinds:?}"
    );
    let seen = sam_stream.until(message_created(support.0, support.1)).await;
    assert_eq!(conversations(&seen), BTreeSet::from([billing.0, support.0]));

    // ada goes away after the last event she read; what happens meanwhile is replayed,
    // once, when she comes back with its id.
    let last = seen.last().unwrap().id.clone();
    let last_read = ada_stream
        .until(|event| event.event == "message.created" && event.data["message"]["kind"] == "status_update")
        .await;
    let resume_from = last_read.last().unwrap().id.clone().unwrap();
    drop(ada_stream);
    let later = post(&daemon, "s-3", "Any news on my parcel?").await;
    let mut resumed = Stream::open(&daemon, &ada, Some(&resume_from)).await;
    let replayed = resumed.until(|event| event.event == "stream.ready").await;
    let messages: Vec<i64> = replayed
        .iter()
        .filter(|event| event.event == "message.created")
        .map(|event| event.data["message"]["id"].as_i64().unwrap())
        .collect();
    assert!(
        messages.contains(&later.1),
        "the missed message was not replayed: {replayed:?}"
    );
    assert!(
        messages.iter().all(|id| *id > support.1),
        "events before Last-Event-ID came again: {messages:?}"
    );
    assert_eq!(conversations(&replayed), BTreeSet::from([later.0]));
    // And live again after the replay.
    let live = post(&daemon, "s-4", "Hello again").await;
    resumed.until(message_created(live.0, live.1)).await;
    assert!(last.is_some());
}

#[tokio::test]
async fn the_stream_refuses_strangers_and_ids_it_never_sent() {
    let daemon = Daemon::start("http://127.0.0.1:9/unused").await;
    let ada = daemon.agent("ada", "support", "agent");
    let http = reqwest::Client::new();
    let anonymous = http.get(daemon.url("/api/v1/stream")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let forged = http
        .get(daemon.url("/api/v1/stream"))
        .bearer_auth(&ada)
        .header("last-event-id", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = forged.json().await.unwrap();
    assert!(
        body["error"]["message"].as_str().unwrap().contains("Last-Event-ID"),
        "{body}"
    );
}
