//! The figures: a table on standard output and the same numbers as JSON.

use std::path::Path;

use serde_json::{Value, json};

use crate::desk::{ServerCounters, Store};
use crate::email::EmailFigures;
use crate::load::LoadResult;
use crate::outbound::{self, OutboundFigures, Paced};
use crate::routing::RoutingFigures;
use crate::scale::ScaleFigures;
use crate::scenarios::{BareFigures, EndToEndFigures, IngestFigures, MixedFigures, machine};
use crate::scheduler::SchedulerFigures;
use crate::stream::{StreamFigures, TARGET_KIB_PER_AGENT, TARGET_P99_MS};
use crate::telegram::{BOT_PER_SECOND, Burst, TelegramFigures};
use crate::updates::{LANGUAGES, UpdatesFigures};

pub struct Report {
    json: serde_json::Map<String, Value>,
    lines: Vec<String>,
    /// The store the next ingest, end-to-end and scale figures come from: SQLite's at
    /// the JSON's top level as always, another's under `stores.NAME`.
    store: Store,
}

fn ms(histogram: &hdrhistogram::Histogram<u64>, percentile: f64) -> f64 {
    histogram.value_at_quantile(percentile / 100.0) as f64 / 1000.0
}

pub fn load_json(load: &LoadResult) -> Value {
    json!({
        "clients": load.clients,
        "seconds": load.elapsed.as_secs_f64(),
        "acknowledged": load.accepted,
        "per_second": load.per_second().round(),
        "p50_ms": load.percentile_ms(50.0),
        "p99_ms": load.percentile_ms(99.0),
        "p99_9_ms": load.percentile_ms(99.9),
        "max_ms": load.latency_us.max() as f64 / 1000.0,
        "errors": load.errors,
        "error_samples": load.error_samples,
    })
}

pub(crate) fn row(name: &str, load: &LoadResult, rss: f64) -> String {
    format!(
        "{name:<34} {:>7} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>9.1}",
        load.clients,
        load.per_second(),
        load.percentile_ms(50.0),
        load.percentile_ms(99.0),
        load.percentile_ms(99.9),
        load.errors,
        rss
    )
}

const HEADER: &str =
    "scenario                           clients      msg/s   p50 ms   p99 ms p99.9 ms  errors  peak MiB";

impl Report {
    pub fn new(seconds: u64) -> Report {
        let mut json = serde_json::Map::new();
        json.insert("machine".into(), machine());
        json.insert("seconds_per_run".into(), json!(seconds));
        json.insert(
            "durability".into(),
            json!("SQLite WAL, synchronous=FULL: every acknowledged message is on disk (fsync) before its 202"),
        );
        Report {
            json,
            lines: vec![HEADER.into(), "-".repeat(HEADER.len())],
            store: Store::Sqlite,
        }
    }

    /// The store the figures reported next come from (see [`Report::store`]).
    pub fn set_store(&mut self, store: Store) {
        self.store = store;
        if store != Store::Sqlite {
            self.section().insert("durability".into(), json!(store.durability()));
        }
    }

    /// Where the current store's figures go in the JSON.
    fn section(&mut self) -> &mut serde_json::Map<String, Value> {
        match self.store {
            Store::Sqlite => &mut self.json,
            store => self
                .json
                .entry("stores")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("stores is an object")
                .entry(store.name())
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("a store's figures are an object"),
        }
    }

    /// A row's name, with the store's when it is not SQLite.
    fn label(&self, name: &str) -> String {
        match self.store {
            Store::Sqlite => name.to_owned(),
            store => format!("{name} [{}]", store.name()),
        }
    }

    /// The CPU line (and PostgreSQL's counters) under a run's row.
    fn cpu_lines(&mut self, clients: usize, cpu: &crate::desk::CpuFigures, server: Option<&Value>) {
        self.lines.push(format!(
            "{:<34} {:>7}   {}",
            "  cpu per message",
            clients,
            cpu.summary()
        ));
        if let Some(server) = server {
            self.lines.push(format!(
                "{:<34} {:>7}   {}",
                "  postgres",
                clients,
                ServerCounters::summary(server)
            ));
        }
    }

    pub fn ingest(&mut self, clients: usize, daemon: &IngestFigures, bare: Option<&BareFigures>) {
        let ratio = bare.map(|bare| daemon.load.per_second() / bare.load.per_second());
        let entry = json!({
            "daemon": load_json(&daemon.load),
            "bare_endpoint": bare.map(|bare| load_json(&bare.load)),
            "ratio_to_bare": ratio.map(|ratio| (ratio * 1000.0).round() / 1000.0),
            "daemon_idle_rss_mib": daemon.idle_rss_mib,
            "daemon_peak_rss_mib": daemon.peak_rss_mib,
            "bare_peak_rss_mib": bare.map(|bare| bare.peak_rss_mib),
            "acknowledged_including_warmup": daemon.acknowledged,
            "stored_inbound": daemon.stored,
            "store_matches_acknowledged": daemon.stored == daemon.acknowledged,
            "acknowledgements_queued": daemon.queued,
            "acknowledgements_delivered_by_end_of_load": daemon.delivered,
            "store_bytes": daemon.store_bytes,
            "wal_bytes_at_end_of_load": daemon.wal_bytes,
            "store_bytes_per_100k_messages": (daemon.store_bytes as f64 / daemon.stored.max(1) as f64 * 100_000.0).round(),
            "store": self.store.name(),
            "daemons": self.store_daemons(),
            "cpu": daemon.cpu.to_json(),
            "postgres": daemon.server,
        });
        self.section()
            .entry("ingest")
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .expect("an array")
            .push(entry);
        let name = self.label("ingest: daemon");
        self.lines.push(row(&name, &daemon.load, daemon.peak_rss_mib));
        if let Some(bare) = bare {
            self.lines
                .push(row("ingest: bare endpoint", &bare.load, bare.peak_rss_mib));
        }
        let ratio = ratio.map_or_else(|| "-".to_owned(), |ratio| format!("{:.1}%", ratio * 100.0));
        self.lines.push(format!(
            "{:<34} {:>7} {:>10}   stored {} = acknowledged {}: {}; acknowledgements delivered by the end {} of {}",
            "  daemon / bare",
            clients,
            ratio,
            daemon.stored,
            daemon.acknowledged,
            if daemon.stored == daemon.acknowledged {
                "ok"
            } else {
                "MISMATCH"
            },
            daemon.delivered,
            daemon.queued
        ));
        self.cpu_lines(clients, &daemon.cpu, daemon.server.as_ref());
        self.section().insert("idle_rss_mib".into(), json!(daemon.idle_rss_mib));
    }

    fn store_daemons(&self) -> usize {
        match self.store {
            Store::Sqlite => 1,
            Store::Postgres { daemons } => daemons,
        }
    }

    pub fn mixed(&mut self, mixed: &MixedFigures) {
        self.json.insert(
            "mixed".into(),
            json!({
                "description": "64 clients: 80% messages from returning customers joining their open conversation, 20% new conversations routed through 50 rules; agents' queue lists alongside at 200 queries/s (4 connections, paced)",
                "base_conversations": mixed.base_conversations,
                "ingest": load_json(&mixed.ingest),
                "agent_list_queries": load_json(&mixed.queries),
                "peak_rss_mib": mixed.peak_rss_mib,
            }),
        );
        self.lines
            .push(row("mixed 80/20, 50 rules: ingest", &mixed.ingest, mixed.peak_rss_mib));
        self.lines
            .push(row("mixed: agents' list queries", &mixed.queries, mixed.peak_rss_mib));
    }

    pub fn end_to_end(&mut self, e2e: &EndToEndFigures) {
        let store = self.store.name();
        let daemons = self.store_daemons();
        let runs = self
            .section()
            .entry("end_to_end")
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .expect("end_to_end is a list");
        runs.push(json!({
            "description": "16 clients, every message a new conversation; from sending the message to its acknowledgement arriving at a local callback receiver",
            "offered_per_second": e2e.offered_per_second,
            "ingest": load_json(&e2e.load),
            "acknowledgements_timed": e2e.latency_us.len(),
            "acknowledgements_missing": e2e.missing,
            "delivered_per_second": e2e.delivered_per_second.round(),
            "p50_ms": ms(&e2e.latency_us, 50.0),
            "p99_ms": ms(&e2e.latency_us, 99.0),
            "p99_9_ms": ms(&e2e.latency_us, 99.9),
            "max_ms": e2e.latency_us.max() as f64 / 1000.0,
            "store": store,
            "daemons": daemons,
            "cpu": e2e.cpu.to_json(),
            "postgres": e2e.server,
        }));
        let name = match (e2e.offered_per_second, self.store) {
            (Some(rate), Store::Sqlite) => format!("end to end at {rate:.0}/s offered"),
            (None, Store::Sqlite) => "end to end, saturated".to_owned(),
            // Shorter, to leave room for the store's name in the column.
            (Some(rate), _) => self.label(&format!("e2e at {rate:.0}/s")),
            (None, _) => self.label("e2e, saturated"),
        };
        self.lines.push(format!(
            "{:<34} {:>7} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>7}   (message -> acknowledgement received; {:.0}/s delivered, {} missing)",
            name,
            e2e.load.clients,
            e2e.load.per_second(),
            ms(&e2e.latency_us, 50.0),
            ms(&e2e.latency_us, 99.0),
            ms(&e2e.latency_us, 99.9),
            e2e.load.errors,
            e2e.delivered_per_second,
            e2e.missing
        ));
        self.cpu_lines(e2e.load.clients, &e2e.cpu, e2e.server.as_ref());
    }

    pub fn scale(&mut self, scale: &ScaleFigures) {
        self.section().insert("scale".into(), scale.to_json());
        for (name, load) in [
            ("scale: list queries", &scale.list),
            ("scale: detail queries", &scale.detail),
            ("scale: search", &scale.search),
            ("scale: contact look-ups", &scale.contacts),
            ("scale: reports (a year)", &scale.reports),
            ("scale: reports, one supervisor", &scale.reports_alone),
        ] {
            let line = row(&self.label(name), load, scale.peak_rss_mib);
            self.lines.push(format!("{line}   ({} messages)", scale.messages));
        }
    }

    pub fn migrate(&mut self, figures: &crate::migrate::MigrateFigures) {
        self.json.insert("migrate".into(), figures.to_json());
        self.lines.extend(figures.lines());
    }

    pub fn email(&mut self, email: &EmailFigures) {
        self.json.insert("email".into(), email.to_json());
        for (name, backfill, peak_rss_mib) in [
            ("email: IMAP backfill", &email.backfill, email.peak_rss_mib),
            (
                "email: backfill without acks",
                &email.backfill_without_acks,
                email.peak_rss_without_acks_mib,
            ),
        ] {
            self.lines.push(format!(
                "{:<34} {:>7} {:>10.0} {:>8} {:>8} {:>8} {:>7} {:>9.1}   ({} mails stored {:.2} s after the daemon's start, daemon CPU {:.2} s; stored {} = delivered {}: {})",
                name,
                1,
                backfill.per_second(),
                "-",
                "-",
                "-",
                backfill.mails - backfill.stored.min(backfill.mails),
                peak_rss_mib,
                backfill.mails,
                backfill.seconds,
                backfill.cpu_seconds,
                backfill.stored,
                backfill.mails,
                if backfill.stored == backfill.mails {
                    "ok"
                } else {
                    "MISMATCH"
                }
            ));
        }
        let acks = &email.acknowledgements;
        self.lines.push(format!(
            "{:<34} {:>7} {:>10.0} {:>8} {:>8} {:>8} {:>7} {:>9.1}   ({} sent by {:.2} s after the start; {} in all, the relay accepted {})",
            "email: acknowledgements over SMTP",
            "-",
            acks.backfill_sent as f64 / acks.all_sent_seconds,
            "-",
            "-",
            "-",
            acks.failed,
            email.peak_rss_mib,
            acks.backfill_sent,
            acks.all_sent_seconds,
            acks.sent,
            acks.relay_accepted,
        ));
        self.lines.push(format!(
            "{:<34} {:>7} {:>10} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>9.1}   (delivery -> stored, {} mails one at a time, Dovecot's 500 ms IDLE delay included; max {:.2} ms)",
            "email: live mail over IMAP IDLE",
            1,
            "-",
            email.live_ms(50.0),
            email.live_ms(99.0),
            email.live_ms(99.9),
            email.live_mails - email.live_us.len(),
            email.peak_rss_mib,
            email.live_mails,
            email.live_us.max() as f64 / 1000.0,
        ));
        self.lines
            .push(format!("  mail mix: {}", email.mix.describe(email.mails)));
        self.lines.push(format!(
            "  {} conversations; {} of {} replies threaded to the mail they answer; store {:.1} MiB for {} mails",
            email.conversations,
            email.replies_threaded,
            email.replies,
            email.store_bytes as f64 / 1024.0 / 1024.0,
            email.mails + email.live_mails,
        ));
    }

    pub fn telegram(&mut self, telegram: &TelegramFigures) {
        self.json.insert("telegram".into(), telegram.to_json());
        let one = &telegram.one_chat;
        self.lines.push(format!(
            "{:<34} {:>7} {:>10.2} {:>8} {:>8} {:>8} {:>7} {:>9.1}   ({} messages to the chat, {} replies in {:.1} s from the first posted; gap min {:.1} / median {:.1} / max {:.1} ms; {}; {} 429s)",
            format!("telegram: {} replies, one chat", one.replies),
            1,
            one.per_second(),
            "-",
            "-",
            "-",
            one.too_many_requests + one.failed_calls,
            one.peak_rss_mib,
            one.sent,
            one.replies,
            one.seconds,
            one.min_gap_ms(),
            one.median_gap_ms(),
            one.max_gap_ms(),
            if one.in_order { "in order" } else { "OUT OF ORDER" },
            one.too_many_requests,
        ));
        let many = &telegram.many_chats;
        let burst = |name: String, burst: &Burst, from: &str| {
            format!(
                "{:<34} {:>7} {:>10.1} {:>8} {:>8} {:>8} {:>7} {:>9.1}   ({} sent {:.2} s after {from}; at most {} in any 1 s; {} in no less than {})",
                name,
                "-",
                burst.per_second(),
                "-",
                "-",
                "-",
                "-",
                many.peak_rss_mib,
                burst.sent,
                burst.seconds,
                burst.max_in_one_second,
                BOT_PER_SECOND + 1,
                burst
                    .shortest_span_ms
                    .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1} ms")),
            )
        };
        self.lines.push(burst(
            format!("telegram: {} chats, acks", many.chats),
            &many.acknowledgements,
            "the updates were queued",
        ));
        self.lines.push(burst(
            format!("telegram: {} chats, replies", many.chats),
            &many.replies,
            "the first reply was posted",
        ));
        self.lines.push(format!(
            "  all {} of the bot's messages: at most {} in any 1 s window; {} of {} chats got the acknowledgement, then the reply; {} 429s, {} other failures",
            many.all.sent,
            many.all.max_in_one_second,
            many.chats_complete,
            many.chats,
            many.too_many_requests,
            many.failed_calls,
        ));
    }

    pub fn routing(&mut self, routing: &RoutingFigures) {
        self.json.insert("routing".into(), routing.to_json());
        for (name, route, detect, count, (shortest, longest)) in [
            (
                "chat lines",
                &routing.chat,
                &routing.detect_chat,
                routing.chat_lines,
                routing.chat_chars,
            ),
            (
                "emails",
                &routing.email,
                &routing.detect_email,
                routing.emails,
                routing.email_chars,
            ),
        ] {
            self.lines.push(format!(
                "{:<34} {:>7} {:>10.0} {:>8} {:>8} {:>8} {:>7} {:>9}   ({count} {name} of {shortest}-{longest} chars: mean {:.1} / p50 {:.1} / p99 {:.1} µs a decision; language detection {:.1} µs)",
                format!("routing: {} rules, {name}", routing.rules),
                1,
                route.per_second(),
                "-",
                "-",
                "-",
                "-",
                "-",
                route.mean_us(),
                route.us(50.0),
                route.us(99.0),
                detect.mean_us(),
            ));
        }
        self.lines.push(format!(
            "  routing mix: {} messages' first matching rule among the first {}, {} only later ones, {} none; explain of one {}-rule email ({}) {:.1} µs (route {:.1} µs)",
            routing.mix.early,
            crate::routing::EARLY_RULES,
            routing.mix.late,
            routing.mix.none,
            routing.explained_matches,
            routing.explained_language.unwrap_or("no language"),
            routing.explain.mean_us(),
            routing.explained_route.mean_us(),
        ));
        self.lines.push(format!(
            "  routing by language, chat lines: {}",
            routing.chat_by_language.describe()
        ));
        self.lines.push(format!(
            "  routing by language, emails: {}",
            routing.email_by_language.describe()
        ));
        let costliest: Vec<String> = routing
            .rule_costs
            .iter()
            .take(crate::routing::COSTLIEST)
            .map(|cost| format!("{} {:.0} µs", cost.name, cost.email_us))
            .collect();
        self.lines.push(format!(
            "  costliest rules alone, per email: {} (all {} alone: {:.0} µs)",
            costliest.join(", "),
            routing.rule_costs.len(),
            routing.rule_costs.iter().map(|cost| cost.email_us).sum::<f64>(),
        ));
    }

    pub fn scheduler(&mut self, scheduler: &SchedulerFigures) {
        self.json.insert("scheduler".into(), scheduler.to_json());
        let seeding = &scheduler.seeding;
        self.lines.push(format!(
            "{:<34} {:>7} {:>10.0} {:>8} {:>8} {:>8} {:>7} {:>9}   ({} conversations with SLA clocks in {:.1} s; database {:.1} MiB + WAL {:.1} MiB)",
            "scheduler: seeding",
            1,
            seeding.per_second(),
            "-",
            "-",
            "-",
            "-",
            "-",
            seeding.conversations,
            seeding.seconds,
            seeding.database_bytes as f64 / 1024.0 / 1024.0,
            seeding.wal_bytes as f64 / 1024.0 / 1024.0,
        ));
        for (name, window) in [
            ("scheduler: idle", &scheduler.idle),
            ("scheduler: idle, paced ingest", &scheduler.paced),
        ] {
            self.lines.push(format!(
                "{:<34} {:>7} {:>10.0} {:>8} {:>8} {:>8} {:>7} {:>9}   (wake-ups: {}; process CPU {:.2} s in {:.1} s; {} new conversations, {} of them urgent)",
                name,
                "-",
                window.ingested as f64 / window.seconds,
                "-",
                "-",
                "-",
                "-",
                "-",
                window.wakeups,
                window.cpu_seconds,
                window.seconds,
                window.ingested,
                window.urgent,
            ));
        }
        for (name, firing) in [
            ("scheduler: breaches, notify", &scheduler.notify),
            ("scheduler: breaches, escalate", &scheduler.escalate),
        ] {
            self.lines.push(format!(
                "{:<34} {:>7} {:>10.0} {:>8} {:>8} {:>8} {:>7} {:>9}   ({} breaches in {:.2} s after the clock jumped; wake-ups: {}; process CPU {:.2} s: {:.0} µs a breach)",
                name,
                "-",
                firing.per_second(),
                "-",
                "-",
                "-",
                "-",
                "-",
                firing.breaches,
                firing.seconds,
                firing.wakeups,
                firing.cpu_seconds,
                firing.cpu_seconds * 1e6 / firing.breaches.max(1) as f64,
            ));
        }
        self.lines.push(format!(
            "{:<34} {:>7} {:>10} {:>8.3} {:>8.3} {:>8} {:>7} {:>9}   ({} calls with {} clocks pending; escalated {} of {})",
            "scheduler: next_sla_fire query",
            1,
            "-",
            scheduler.query_us(50.0) / 1000.0,
            scheduler.query_us(99.0) / 1000.0,
            "-",
            "-",
            "-",
            scheduler.next_fire_us.len(),
            scheduler.pending_clocks,
            scheduler.escalated,
            scheduler.escalate.conversations,
        ));
        for (query, plan) in &scheduler.plans {
            self.lines.push(format!("  query plan, {query}: {}", plan.join("; ")));
        }
    }

    pub fn updates(&mut self, updates: &UpdatesFigures) {
        self.json.insert("updates".into(), updates.to_json());
        let render = &updates.render;
        for language in LANGUAGES {
            for &channel in switchboard::channels::registry::REGISTERED {
                let pooled = render.pooled(language, channel);
                let slowest = render.slowest(language, channel);
                self.lines.push(format!(
                    "{:<34} {:>7} {:>10.0} {:>8} {:>8} {:>8} {:>7} {:>9}   ({} renders of 9 events: p50 {:.1} / p99 {:.1} µs a render; slowest {} p50 {:.1} µs)",
                    format!("updates: render {language}, {channel}"),
                    1,
                    1e9 / pooled.mean(),
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    pooled.len(),
                    pooled.value_at_quantile(0.5) as f64 / 1000.0,
                    pooled.value_at_quantile(0.99) as f64 / 1000.0,
                    slowest.map_or("-", |cell| cell.event.as_str()),
                    slowest.map_or(0.0, |cell| cell.ns.value_at_quantile(0.5) as f64 / 1000.0),
                ));
            }
        }
        self.lines.push(format!(
            "  updates: config load (templates compiled and rendered with samples): updates off {:.1} ms, built-in English {:.1} ms, English and Thai {:.1} ms",
            render.load_off_ms, render.load_en_ms, render.load_th_ms,
        ));
        let kib = |bytes: f64| bytes / 1024.0;
        for (name, run) in [
            ("updates: ingest, updates off", &updates.off),
            ("updates: ingest, received on", &updates.on),
        ] {
            self.lines.push(format!(
                "{:<34} {:>7} {:>10.0} {:>8} {:>8} {:>8} {:>7} {:>9}   ({} conversations in {:.2} s, batches of {}: {:.1} µs wall, writer thread {:.1} µs CPU a conversation; store {:.0} KiB per 1,000)",
                name,
                1,
                run.ingest_per_second(),
                "-",
                "-",
                "-",
                "-",
                "-",
                run.conversations,
                run.ingest_seconds,
                crate::scheduler::SEED_BATCH,
                run.ingest_wall_us(),
                run.ingest_writer_us(),
                kib(run.per_thousand(run.bytes_after_ingest)),
            ));
        }
        for (name, run) in [
            ("updates: resolve, updates off", &updates.off),
            ("updates: resolve, resolved+csat on", &updates.on),
        ] {
            self.lines.push(format!(
                "{:<34} {:>7} {:>10.0} {:>8.3} {:>8.3} {:>8} {:>7} {:>9}   (one call at a time: mean {:.0} µs; writer thread {:.1} µs CPU a resolve; store {:.0} KiB per 1,000 after)",
                name,
                1,
                run.resolves_per_second(),
                run.resolve_us.value_at_quantile(0.5) as f64 / 1000.0,
                run.resolve_us.value_at_quantile(0.99) as f64 / 1000.0,
                "-",
                "-",
                "-",
                run.resolve_mean_us(),
                run.resolve_writer_us(),
                kib(run.per_thousand(run.bytes_after_resolve)),
            ));
        }
        let (off, on) = (&updates.off, &updates.on);
        let growth: Vec<String> = updates
            .growth()
            .iter()
            .take(5)
            .map(|(name, bytes)| format!("{name} +{:.0} KiB", kib(*bytes)))
            .collect();
        self.lines.push(format!(
            "  updates added: ingest {:+.1} µs wall, {:+.1} µs writer CPU a conversation; resolve {:+.0} µs mean, {:+.1} µs writer CPU; store per 1,000 conversations {:+.0} KiB after ingest, {:+.0} KiB after resolve ({})",
            on.ingest_wall_us() - off.ingest_wall_us(),
            on.ingest_writer_us() - off.ingest_writer_us(),
            on.resolve_mean_us() - off.resolve_mean_us(),
            on.resolve_writer_us() - off.resolve_writer_us(),
            kib(on.per_thousand(on.bytes_after_ingest) - off.per_thousand(off.bytes_after_ingest)),
            kib(on.per_thousand(on.bytes_after_resolve) - off.per_thousand(off.bytes_after_resolve)),
            growth.join(", "),
        ));
    }

    pub fn outbound(&mut self, figures: &OutboundFigures) {
        self.json.insert("outbound".into(), figures.to_json());
        for (name, drain) in [
            ("outbound: backlog drain", &figures.backlog),
            ("outbound: backlog, inbox cap 32", &figures.backlog_wider),
            ("outbound: delivered while queueing", &figures.concurrent),
        ] {
            let how = if drain.backlog {
                format!(
                    "{} queued with the receiver holding ({} held), then {:.2} s from its opening to the last",
                    drain.ingest.accepted, drain.held, drain.seconds
                )
            } else {
                format!(
                    "{} queued while delivering, {:.2} s from the first sent to the last received; {} in by the last 202 ({:.0}/s), the rest in {:.2} s after ({:.0}/s)",
                    drain.ingest.accepted,
                    drain.seconds,
                    drain.delivered_while_queueing,
                    drain.per_second_while_queueing(),
                    drain.tail_seconds,
                    drain.per_second_after_queueing(),
                )
            };
            self.lines.push(format!(
                "{:<34} {:>7} {:>10.0} {:>8} {:>8} {:>8} {:>7} {:>9.1}   ({how}; queueing {:.0}/s by {} clients; first to last {:.0}/s; daemon CPU {:.2} s, writer thread {:.2} s = {:.0} µs a message, this program {:.2} s; {} missing, {} twice)",
                name,
                "-",
                drain.per_second(),
                "-",
                "-",
                "-",
                drain.ingest.errors + drain.missing(),
                drain.peak_rss_mib,
                drain.ingest.per_second(),
                drain.ingest.clients,
                drain.per_second_first_to_last(),
                drain.daemon_cpu_seconds,
                drain.writer_cpu_seconds,
                drain.writer_us_per_message(),
                drain.bench_cpu_seconds,
                drain.missing(),
                drain.duplicates,
            ));
        }
        let paced = |name: &str, paced: &Paced, what: &str, rest: String| {
            format!(
                "{:<34} {:>7} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>9.1}   ({what}; max {:.2} ms; the request, from when due: p50 {:.2} / p99 {:.2} ms; request due -> received p50 {:.2} / p99 {:.2} ms; {} received before the answer was read, {} missing{rest})",
                name,
                paced.load.clients,
                paced.load.per_second(),
                paced.ms(50.0),
                paced.ms(99.0),
                paced.ms(99.9),
                paced.load.errors + paced.missing,
                paced.peak_rss_mib,
                paced.after_answer_us.max() as f64 / 1000.0,
                paced.load.percentile_ms(50.0),
                paced.load.percentile_ms(99.0),
                ms(&paced.after_send_us, 50.0),
                ms(&paced.after_send_us, 99.0),
                paced.before_answer,
                paced.missing,
            )
        };
        self.lines.push(paced(
            "outbound: reply 201 -> received",
            &figures.replies,
            &format!("over {} conversations", outbound::REPLY_CONVERSATIONS),
            String::new(),
        ));
        let bare = &figures.bare;
        self.lines.push(format!(
            "{:<34} {:>7} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>9}   (this program POSTing a callback-sized body to its receiver, sent -> received; max {:.2} ms)",
            "outbound: bare POST -> received",
            bare.load.clients,
            bare.load.per_second(),
            ms(&bare.one_way_us, 50.0),
            ms(&bare.one_way_us, 99.0),
            ms(&bare.one_way_us, 99.9),
            bare.load.errors + (bare.load.accepted - bare.one_way_us.len()),
            "-",
            bare.one_way_us.max() as f64 / 1000.0,
        ));
        for run in &figures.isolation {
            let other = match run.second {
                outbound::Second::Idle => String::new(),
                outbound::Second::Up => format!(
                    "; the other: {} queued, {} sent",
                    run.other_queued,
                    run.other_rows("sent")
                ),
                outbound::Second::Down { .. } => format!(
                    "; the other: {} queued before, {} during, {} attempts, {} still scheduled, {} failed, {}",
                    run.other_backlog,
                    run.other_queued,
                    run.other_attempts,
                    run.other_rows("scheduled"),
                    run.other_rows("failed"),
                    if run.other_paused {
                        "paused at the end"
                    } else {
                        "NOT PAUSED at the end"
                    },
                ),
            };
            self.lines.push(paced(
                run.second.label(),
                &run.shop,
                "202 -> acknowledgement received",
                other,
            ));
        }
        self.lines.push(format!(
            "  outbound: outbox.concurrency {}, inbox_concurrency {} unless said, breaker_failures {} (the defaults); {} messages per throughput run; paced runs {:.0}/s by {} clients",
            outbound::CONCURRENCY,
            outbound::INBOX_CONCURRENCY,
            outbound::BREAKER_FAILURES,
            figures.messages,
            outbound::PACED_RATE,
            outbound::PACED_CLIENTS,
        ));
    }

    pub fn stream(&mut self, stream: &StreamFigures) {
        self.json.insert("stream".into(), stream.to_json());
        let verdict = |met: bool| if met { "met" } else { "MISSED" };
        self.lines.push(format!(
            "{:<34} {:>7} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>9.1}   (202 -> read by the last agent, {:.0}/s offered; max {:.2} ms; each agent p50 {:.2} / p99 {:.2} ms; target p99 < {TARGET_P99_MS:.0} ms: {})",
            "stream: 202 -> every agent read",
            stream.agents,
            stream.load.per_second(),
            stream.last_ms(50.0),
            stream.last_ms(99.0),
            stream.last_ms(99.9),
            stream.load.errors + stream.messages_missed,
            stream.rss_peak_load_mib,
            stream.offered_per_second,
            stream.last_max_ms(),
            stream.each_ms(50.0),
            stream.each_ms(99.0),
            verdict(stream.meets_latency()),
        ));
        self.lines.push(format!(
            "  stream: {} posted, {} acknowledged (202 p50 {:.2} / p99 {:.2} ms from due); each agent read {}..{} of them, {} of {} agents all; {} messages missed by some agent ({} reads missing), {} unknown, {} twice, {} unreadable; {} streams ended early{}",
            stream.load.accepted + stream.load.errors,
            stream.acknowledged,
            stream.load.percentile_ms(50.0),
            stream.load.percentile_ms(99.0),
            stream.received_min,
            stream.received_max,
            stream.agents_complete,
            stream.agents,
            stream.messages_missed,
            stream.reads_missing,
            stream.unknown_reads,
            stream.duplicate_reads,
            stream.unreadable,
            stream.streams_ended,
            if stream.stream_failures.is_empty() {
                String::new()
            } else {
                format!(" ({})", stream.stream_failures.join("; "))
            },
        ));
        self.lines.push(format!(
            "  stream: daemon RSS {:.1} MiB before connecting, {:.1} MiB with {} agents subscribed: {:.1} KiB per agent (target < {TARGET_KIB_PER_AGENT:.0}: {}); peak {:.1} MiB under load, {:.1} MiB after",
            stream.rss_before_mib,
            stream.rss_connected_mib,
            stream.agents,
            stream.kib_per_agent(),
            verdict(stream.meets_memory()),
            stream.rss_peak_load_mib,
            stream.rss_after_load_mib,
        ));
        let kinds: Vec<String> = stream
            .events_by_kind
            .iter()
            .map(|(kind, count)| format!("{kind} {count}"))
            .collect();
        self.lines.push(format!(
            "  stream: agents created in {:.1} s; stream.ready after the first connect p50 {:.0} / max {:.0} ms ({} listen-queue overflows meanwhile); the last reads {:.2} s after posting ended; CPU in the {:.1} s of load: daemon {:.1} s, this program {:.1} s, other processes {:.1} s; events (all agents): {}; {} keep-alives",
            stream.agent_setup_seconds,
            stream.ready_us.value_at_quantile(0.5) as f64 / 1000.0,
            stream.ready_us.max() as f64 / 1000.0,
            stream
                .listen_overflows
                .map_or_else(|| "-".to_owned(), |count| count.to_string()),
            stream.drain_seconds,
            stream.load_seconds,
            stream.daemon_cpu_seconds,
            stream.bench_cpu_seconds,
            stream.other_cpu_seconds(),
            kinds.join(", "),
            stream.comments,
        ));
    }

    pub fn print(&self) {
        println!();
        for line in &self.lines {
            println!("{line}");
        }
        if let Some(idle) = self.json.get("idle_rss_mib") {
            println!("\ndaemon idle RSS: {idle:.1} MiB");
        }
        let per_100k = self
            .json
            .get("ingest")
            .and_then(|runs| runs.as_array()?.last()?["store_bytes_per_100k_messages"].as_f64());
        if let Some(per_100k) = per_100k {
            println!("store size: {:.1} MiB per 100,000 messages", per_100k / 1024.0 / 1024.0);
        }
        println!("durability: {}", self.json["durability"].as_str().unwrap_or_default());
        for (store, figures) in self.json.get("stores").and_then(Value::as_object).into_iter().flatten() {
            let per_100k = figures
                .get("ingest")
                .and_then(|runs| runs.as_array()?.last()?["store_bytes_per_100k_messages"].as_f64());
            if let Some(per_100k) = per_100k {
                println!(
                    "{store}: store size {:.1} MiB per 100,000 messages",
                    per_100k / 1024.0 / 1024.0
                );
            }
            println!(
                "{store}: durability: {}",
                figures["durability"].as_str().unwrap_or_default()
            );
        }
    }

    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(&Value::Object(self.json.clone()))?)?;
        Ok(())
    }
}
