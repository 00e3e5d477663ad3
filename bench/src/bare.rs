//! The physical limit: an axum endpoint on the same runtime settings as the daemon that
//! reads the body and answers 202 without doing anything else. Run as a child process
//! (`switchboard-bench bare-endpoint`) so it is measured the way the daemon is.

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;

pub fn serve() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let app = Router::new().route(
                "/hooks/{inbox}",
                post(|_body: Bytes| async {
                    (
                        StatusCode::ACCEPTED,
                        r#"{"conversation_id":0,"message_id":0,"duplicate":false}"#,
                    )
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            println!("bare endpoint listening on http://{}", listener.local_addr()?);
            let app = app.route("/readyz", axum::routing::get(|| async { "ok" }));
            let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    terminate.recv().await;
                })
                .await?;
            Ok(())
        })
}
