//! The business's app: receives the daemon's callbacks and notes when each
//! acknowledgement arrived, by conversation.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;

#[derive(Default)]
pub struct Received {
    /// Arrival of each conversation's first status update.
    pub acknowledged: Mutex<HashMap<i64, Instant>>,
}

pub struct Receiver {
    pub address: SocketAddr,
    pub received: Arc<Received>,
}

impl Receiver {
    pub async fn start() -> anyhow::Result<Receiver> {
        let received = Arc::new(Received::default());
        let app = Router::new()
            .route("/callback", post(receive))
            .with_state(Arc::clone(&received));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Receiver { address, received })
    }

    pub fn url(&self) -> String {
        format!("http://{}/callback", self.address)
    }

    pub fn acknowledged(&self) -> usize {
        self.received.acknowledged.lock().unwrap().len()
    }
}

async fn receive(State(received): State<Arc<Received>>, body: Bytes) -> StatusCode {
    let arrived = Instant::now();
    if let Ok(callback) = serde_json::from_slice::<serde_json::Value>(&body)
        && callback["kind"] == "status_update"
        && let Some(conversation) = callback["conversation_id"].as_i64()
    {
        received
            .acknowledged
            .lock()
            .unwrap()
            .entry(conversation)
            .or_insert(arrived);
    }
    StatusCode::NO_CONTENT
}
