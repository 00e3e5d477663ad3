//! `switchboard serve`: opens the store, serves waiting queues, starts the outbox
//! dispatcher, the SLA scheduler, the channel readers and the HTTP listener, and shuts
//! them down in order when told.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use switchboard_connector_core::ReaderContext;

use crate::api::{self, AppState};
use crate::channels::Channels;
use crate::channels::sink::InboxSink;
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::domain::service::Service;
use crate::query::Queries;
use crate::store::config::Backend;
use crate::store::{Catalog, InboxSpec, TeamSpec};
use crate::work::dispatch::Dispatcher;
use crate::work::events::EventLane;
use crate::work::outbox::OutboxLane;
use crate::work::scheduler::{Scheduler, SchedulerHandle};

/// The configured store, migrated, with the configured teams and inboxes in it.
pub struct Opened {
    /// The desk's operations on it.
    pub service: Service,
    /// Its read models.
    pub queries: Arc<dyn Queries>,
    pub catalog: Catalog,
}

/// Opens the configured store, runs migrations, and makes the configured teams and
/// inboxes exist in it.
pub async fn open(settings: &Settings, clock: &dyn Clock) -> anyhow::Result<Opened> {
    let (store, queries) = crate::store::open(&settings.storage)
        .await
        .with_context(|| format!("opening the store at {} (storage.url)", settings.storage.shown_url()))?;
    let service = Service::new(store, Arc::clone(&settings.desk));
    let teams: Vec<TeamSpec> = settings
        .desk
        .teams
        .values()
        .map(|t| TeamSpec {
            key: t.key.clone(),
            name: t.name.clone(),
            tier: t.tier,
        })
        .collect();
    let inboxes: Vec<InboxSpec> = settings
        .inboxes
        .iter()
        .map(|i| InboxSpec {
            key: i.key.clone(),
            name: i.name.clone(),
            channel: i.channel.kind(),
        })
        .collect();
    let catalog = service.sync_catalog(teams, inboxes, clock.now_ms()).await?;
    Ok(Opened {
        service,
        queries,
        catalog,
    })
}

/// [`open`] for callers that need only the desk's operations (tests, benchmarks).
pub async fn open_store(settings: &Settings, clock: &dyn Clock) -> anyhow::Result<(Service, Catalog)> {
    let opened = open(settings, clock).await?;
    Ok((opened.service, opened.catalog))
}

/// Serves on `listener` until `shutdown` is cancelled, then stops accepting, lets open
/// requests finish (up to `server.shutdown_grace`), and gives the outbox its own grace.
pub async fn run(settings: Settings, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    run_with_clock(settings, listener, shutdown, Arc::new(SystemClock)).await
}

/// [`run`] on a clock of the caller's: tests drive SLA deadlines with a [`ManualClock`].
///
/// [`ManualClock`]: crate::clock::ManualClock
pub async fn run_with_clock(
    settings: Settings,
    listener: TcpListener,
    shutdown: CancellationToken,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<()> {
    // Held until the daemon stops.
    let _serving = match settings.storage.backend {
        Backend::Sqlite => crate::store::sqlite::claim_for_serving(&settings.storage.url)
            .with_context(|| format!("claiming the store at {} (storage.url)", settings.storage.url))?,
        // Several daemons share a PostgreSQL database: they claim work row by row.
        Backend::Postgres => None,
    };
    let Opened {
        service,
        queries,
        catalog,
    } = open(&settings, clock.as_ref()).await?;
    let store = Arc::clone(service.store());
    // Capacities or policies may have changed since the last run.
    let assigned = service.drain_queues(clock.now_ms()).await?;
    if assigned > 0 {
        tracing::info!(assigned, "assigned waiting conversations at start");
    }
    let channels = Arc::new(Channels::build(&settings.inboxes, &catalog)?);
    let outbox_wakeup = Arc::new(Notify::new());
    let destinations = Arc::new(crate::work::destinations::Destinations::new(
        settings.outbox.inbox_concurrency,
        settings.outbox.breaker_failures,
        settings.outbox.breaker_pause,
    ));

    // The name this run's leases carry, shared by its dispatchers.
    let holder: Arc<str> = crate::work::dispatch::holder_name().into();
    tracing::info!(holder = %holder, "leases held as");
    let dispatcher = Dispatcher {
        lane: Arc::new(OutboxLane {
            channels: Arc::clone(&channels),
            clock: Arc::clone(&clock),
            settings: settings.outbox.clone(),
        }),
        store: Arc::clone(&store),
        clock: Arc::clone(&clock),
        destinations: Arc::clone(&destinations),
        wakeup: Arc::clone(&outbox_wakeup),
        holder: Arc::clone(&holder),
        concurrency: settings.outbox.concurrency,
        shutdown_grace: settings.outbox.shutdown_grace,
    };
    // The outbox outlives the HTTP listener: requests finishing during shutdown may
    // still queue messages, and those are sent if the grace allows.
    let outbox_shutdown = CancellationToken::new();
    let outbox_task = tokio::spawn(dispatcher.run(outbox_shutdown.clone()));
    let events_wakeup = Arc::new(Notify::new());
    let subscribed = queries.subscriptions().await?.iter().any(|s| s.active);
    let events = Dispatcher {
        lane: Arc::new(EventLane {
            clock: Arc::clone(&clock),
            settings: settings.outbox.clone(),
            policy: settings.subscriptions.policy.clone(),
            timeout: settings.subscriptions.timeout,
            // Redirects are not followed: a signed body goes where the admin said, only.
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .dns_resolver(Arc::new(crate::work::events::PolicyResolver {
                    policy: settings.subscriptions.policy.clone(),
                }))
                .build()
                .context("building the HTTP client for subscriptions")?,
        }),
        store: Arc::clone(&store),
        clock: Arc::clone(&clock),
        // Per subscription, as the outbox keeps per inbox.
        destinations: Arc::new(crate::work::destinations::Destinations::new(
            settings.outbox.inbox_concurrency,
            settings.outbox.breaker_failures,
            settings.outbox.breaker_pause,
        )),
        wakeup: Arc::clone(&events_wakeup),
        holder: Arc::clone(&holder),
        concurrency: settings.outbox.concurrency,
        shutdown_grace: settings.outbox.shutdown_grace,
    };
    let events_shutdown = CancellationToken::new();
    let events_task = tokio::spawn(events.run(events_shutdown.clone()));
    let scheduler = Arc::new(SchedulerHandle::default());
    let scheduler_shutdown = shutdown.child_token();
    let scheduler_task = tokio::spawn(
        Scheduler {
            service: service.clone(),
            clock: Arc::clone(&clock),
            handle: Arc::clone(&scheduler),
            outbox_wakeup: Arc::clone(&outbox_wakeup),
            events_wakeup: Arc::clone(&events_wakeup),
            retention: settings.privacy.erase_resolved_after,
        }
        .run(scheduler_shutdown.clone()),
    );

    let http_grace = settings.http_shutdown_grace;
    let door = crate::api::door::Door::new(&settings.door);
    let stream = Arc::new(crate::api::stream::StreamHub::default());
    // Ends with the listener: its end closes every open stream, so that shutdown does
    // not wait out the grace for consoles that would never hang up.
    let stream_task = tokio::spawn(Arc::clone(&stream).run(Arc::clone(&queries), shutdown.child_token()));
    // Other daemons on the same store (PostgreSQL) commit work this one's workers may
    // take, and changes its consoles show.
    let watching = shutdown.child_token();
    {
        let (outbox, events, scheduler, stream) = (
            Arc::clone(&outbox_wakeup),
            Arc::clone(&events_wakeup),
            Arc::clone(&scheduler),
            Arc::clone(&stream),
        );
        store.watch(
            Arc::new(move |change| {
                use crate::store::Change;
                if matches!(change, None | Some(Change::Outbox)) {
                    outbox.notify_one();
                }
                if matches!(change, None | Some(Change::Events)) {
                    events.notify_one();
                }
                if matches!(change, None | Some(Change::Clocks)) {
                    scheduler.nudge();
                }
                if matches!(change, None | Some(Change::Stream)) {
                    stream.wake();
                }
            }),
            watching.clone(),
        );
    }
    let routes = api::routes();
    let metrics = crate::api::metrics::Metrics::new(
        channels.iter().map(|inbox| {
            // A pull reader: a mailbox, a bot that polls.
            let pulls = inbox.connector.reader().is_some_and(|reader| reader.exclusive());
            (inbox.reference.key.as_str(), inbox.connector.kind(), pulls)
        }),
        routes.templates(),
    );
    // A supervisor's first report after a start should not wait for the year behind it.
    let reports = Arc::new(crate::query::report_cache::ReportCache::new());
    {
        let (reports, queries, clock) = (Arc::clone(&reports), Arc::clone(&queries), Arc::clone(&clock));
        tokio::spawn(async move {
            match reports.warm(queries.as_ref(), clock.now_ms()).await {
                Ok(facts) => tracing::debug!(facts, "report facts of the finished days read"),
                Err(err) => tracing::warn!(error = %err, "could not read the finished days' report facts"),
            }
        });
    }
    let state = Arc::new(AppState {
        reports,
        door,
        metrics,
        settings,
        service,
        queries,
        clock,
        channels: Arc::clone(&channels),
        outbox_wakeup,
        destinations,
        events_wakeup,
        subscribed: AtomicBool::new(subscribed),
        scheduler,
        ready: AtomicBool::new(true),
        stream,
        password_hashing: tokio::sync::Semaphore::new(2),
    });
    // Email inboxes read their folders until shutdown; each stops at its next await,
    // and a mail cut off mid-way is read again from the cursor on the next start. A
    // mailbox, and a bot that polls, is read by one daemon at a time: the one holding
    // its lease (another takes over when that one dies).
    let readers_shutdown = shutdown.child_token();
    let mut readers = Vec::new();
    // Alone on its store (SQLite), the daemon reads at once what its previous run, killed,
    // still held a lease on.
    if state.service.store().exclusive() {
        state.service.clear_leases().await?;
    }
    for inbox in channels.iter() {
        if inbox.connector.reader().is_none() {
            continue;
        }
        let reading = {
            let (state, inbox) = (Arc::clone(&state), Arc::clone(inbox));
            move |stop: CancellationToken| {
                let (state, inbox) = (Arc::clone(&state), Arc::clone(&inbox));
                async move {
                    let sink = InboxSink {
                        inbox: Arc::clone(&inbox),
                        state,
                    };
                    if let Some(reader) = inbox.connector.reader() {
                        reader
                            .run(ReaderContext {
                                sink: &sink,
                                cursors: &sink,
                                shutdown: stop,
                            })
                            .await;
                    }
                }
            }
        };
        if inbox.connector.reader().is_some_and(|reader| reader.exclusive()) {
            readers.push(tokio::spawn(crate::work::leases::run_leased(
                state.service.clone(),
                Arc::clone(&state.clock),
                format!("reader:{}", inbox.reference.key),
                Arc::clone(&holder),
                readers_shutdown.clone(),
                reading,
            )));
        } else {
            // Every daemon runs it (a Telegram bot registering its webhook).
            readers.push(tokio::spawn(reading(readers_shutdown.clone())));
        }
    }
    let app = api::router(routes, Arc::clone(&state));
    tracing::info!(address = %listener.local_addr()?, "listening");

    let stopping = Arc::clone(&state);
    let stop_accepting = shutdown.clone();
    tokio::spawn(async move {
        stop_accepting.cancelled().await;
        stopping.ready.store(false, Ordering::Relaxed);
        tracing::info!("shutting down: no new connections");
    });
    let door = state.settings.door.clone();
    let server_result: anyhow::Result<()> = tokio::select! {
        () = api::serve::serve(listener, app, &door, shutdown.clone()) => Ok(()),
        () = async { shutdown.cancelled().await; tokio::time::sleep(http_grace).await } => {
            tracing::warn!("shutdown grace over; dropping open HTTP connections");
            Ok(())
        }
    };
    let _ = stream_task.await;
    readers_shutdown.cancel();
    for reader in readers {
        let _ = reader.await;
    }
    scheduler_shutdown.cancel();
    let _ = scheduler_task.await;
    outbox_shutdown.cancel();
    events_shutdown.cancel();
    if let Err(err) = outbox_task.await {
        tracing::error!(%err, "the outbox dispatcher ended abnormally");
    }
    if let Err(err) = events_task.await {
        tracing::error!(%err, "the event dispatcher ended abnormally");
    }
    tracing::info!("stopped");
    server_result
}
