//! Automated status updates (issue 7): what rendering costs, and what the updates add to
//! new conversations and to resolutions in the store.
//!
//! Like `routing` and `scheduler` this measures the daemon's library in this process: an
//! update is rendered and written inside the transaction of the change that causes it, on
//! the store's one writer thread, so only a direct measurement shows its cost apart from
//! HTTP.
//!
//! - Rendering: [`UpdatePolicy::render`] of every event on each channel, with the built-in
//!   English templates ([`UpdatePolicy::defaults`]) and with a Thai set configured in TOML
//!   (`[updates.templates.EVENT.th]`: subject, text and Telegram markdown for every event,
//!   HTML for `resolved` and `csat`). A render produces what the channel sends: the text,
//!   plus the subject and HTML on email, plus the MarkdownV2 on Telegram. The variables are
//!   built here as the store fills them for a contact with a name (the library's sample
//!   values are private). Renders run for `--seconds` in all, split evenly between the
//!   languages, events and channels.
//! - Through the store: two stores (fresh temporary folders) with the same config but the
//!   `[updates]` table: `events = []`, and none (the defaults: `received`, `resolved` and
//!   `csat` among others). N new conversations are ingested through
//!   `Service::ingest_in_order` in batches of 500 (with updates, each is one more message
//!   and outbox row: `received`), then an agent resolves each through
//!   `Service::update_conversation` and the detail read back, one call at a time as agents do (with updates, two more
//!   messages and outbox rows, two `status_updates_sent` rows and a CSAT token). Timed: the
//!   wall clock, and the CPU of the store's writer thread (`sqlite-writer`, read from
//!   `/proc/self/task`), where updates are rendered and written. A resolve's wall time is
//!   the whole call: its transaction with its fsync, then the conversation's detail read
//!   back (as the API returns it).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use switchboard::auth::hash_token;
use switchboard::clock::{Clock, SystemClock};
use switchboard::domain::lifecycle::ConversationChanges;
use switchboard::domain::updates::{
    AgentVars, ContactVars, ConversationVars, CsatVars, InboxVars, NextOpen, SlaVars, TeamVars, UpdateEvent,
    UpdatePolicy, UpdateVars,
};
use switchboard::model::{Role, Status};
use switchboard::store::NewAgent;
use switchboard_connector_core::ChannelKind;

use crate::daemon::{SECRET, process_cpu_seconds};
use crate::scheduler::{Intake, SEED_BATCH};

/// Renders of each (language, event, channel) before timing starts.
const WARMUP_RENDERS: usize = 20;
/// Renders of each (language, event, channel) at least, however short `--seconds`.
const MIN_RENDERS: u64 = 100;
/// Loads of the config timed to tell what compiling and checking the templates costs
/// at start; the fastest counts.
const COMPILE_RUNS: usize = 5;
/// The store's `[updates]` table with updates off; with them on there is none.
const UPDATES_OFF: &str = "[updates]\nevents = []\n";

/// One team with an SLA policy (so `received` names its first-response target), one
/// webhook inbox; `updates` is the `[updates]` table and its templates, if any.
fn config(database: &Path, updates: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
[storage]
url = "sqlite://{database}"
[log]
level = "warn"
[routing]
default_team = "support"

[sla_policies.standard]
time = "calendar"
warning = 0.8
first_response = "4h"
resolution = "3days"
on_breach = ["notify"]

[teams.support]
name = "Support"
sla = "standard"

[inboxes.shop.webhook]
secret = "{SECRET}"
callback_url = "http://127.0.0.1:9/unused"

{updates}
"#,
        database = database.display()
    )
}

/// A Thai template set for every event, as a desk in Thailand would write it: a subject
/// (email), the text, MarkdownV2 for Telegram (no reserved character outside variables,
/// which are escaped), HTML for `resolved` and `csat`. The day is named in Thai from
/// `next_open.weekday_number`.
const THAI_TEMPLATES: &str = r#"
[updates.templates.received.th]
subject = "เราได้รับข้อความของคุณแล้ว"
text = '''
สวัสดี{% if contact.name %}คุณ{{ contact.name }}{% endif %}

เราได้รับข้อความของคุณแล้ว หมายเลขอ้างอิงของคุณคือ {{ conversation.reference }} ทีม {{ team.name }} จะติดต่อกลับ{% if sla.first_response %}ภายใน {{ sla.first_response }}{% else %}โดยเร็วที่สุด{% endif %}'''
markdown = '''
สวัสดี{% if contact.name %}คุณ{{ contact.name }}{% endif %}

เราได้รับข้อความของคุณแล้ว หมายเลขอ้างอิงของคุณคือ *{{ conversation.reference }}* ทีม {{ team.name }} จะติดต่อกลับ{% if sla.first_response %}ภายใน {{ sla.first_response }}{% else %}โดยเร็วที่สุด{% endif %}'''

[updates.templates.greeting.th]
subject = "ยินดีต้อนรับ"
text = 'สวัสดี{% if contact.name %}คุณ{{ contact.name }}{% endif %} พิมพ์คำถามของคุณที่นี่ แล้วเราจะตอบในแชทนี้ หมายเลขอ้างอิงของคุณคือ {{ conversation.reference }}'
markdown = 'สวัสดี{% if contact.name %}คุณ{{ contact.name }}{% endif %} พิมพ์คำถามของคุณที่นี่ แล้วเราจะตอบในแชทนี้ หมายเลขอ้างอิงของคุณคือ *{{ conversation.reference }}*'

[updates.templates.out_of_hours.th]
subject = "เราได้รับข้อความของคุณแล้ว"
text = '''
{% set days = ["", "วันจันทร์", "วันอังคาร", "วันพุธ", "วันพฤหัสบดี", "วันศุกร์", "วันเสาร์", "วันอาทิตย์"] %}สวัสดี{% if contact.name %}คุณ{{ contact.name }}{% endif %}

ขอบคุณสำหรับข้อความของคุณ ({{ conversation.reference }}) ขณะนี้ทีม {{ team.name }} อยู่นอกเวลาทำการ เราจะกลับมา{{ days[next_open.weekday_number] }}ที่ {{ next_open.date }} เวลา {{ next_open.time }} น. ({{ next_open.time_zone }}) และจะตอบคุณในเวลานั้น'''
markdown = '''
{% set days = ["", "วันจันทร์", "วันอังคาร", "วันพุธ", "วันพฤหัสบดี", "วันศุกร์", "วันเสาร์", "วันอาทิตย์"] %}สวัสดี{% if contact.name %}คุณ{{ contact.name }}{% endif %}

ขอบคุณสำหรับข้อความของคุณ *{{ conversation.reference }}* ขณะนี้ทีม {{ team.name }} อยู่นอกเวลาทำการ เราจะกลับมา{{ days[next_open.weekday_number] }}ที่ {{ next_open.date }} เวลา {{ next_open.time }} {{ next_open.time_zone }} และจะตอบคุณในเวลานั้น'''

[updates.templates.assigned.th]
subject = "มีเจ้าหน้าที่ดูแลเรื่องของคุณแล้ว"
text = '''
สวัสดี{% if contact.name %}คุณ{{ contact.name }}{% endif %}

{% if agent %}คุณ{{ agent.name }}{% else %}เจ้าหน้าที่ทีม {{ team.name }}{% endif %}กำลังดูแลเรื่อง {{ conversation.reference }} ของคุณ'''
markdown = '''
สวัสดี{% if contact.name %}คุณ{{ contact.name }}{% endif %}

{% if agent %}คุณ{{ agent.name }}{% else %}เจ้าหน้าที่ทีม {{ team.name }}{% endif %}กำลังดูแลเรื่อง *{{ conversation.reference }}* ของคุณ'''

[updates.templates.escalated.th]
subject = "เรื่องของคุณถูกส่งต่อแล้ว"
text = '''
สวัสดี{% if contact.name %}คุณ{{ contact.name }}{% endif %}

เราได้ส่งต่อเรื่อง {{ conversation.reference }} ของคุณให้ทีม {{ team.name }} ซึ่งจะดูแลต่อจากนี้'''
markdown = '''
สวัสดี{% if contact.name %}คุณ{{ contact.name }}{% endif %}

เราได้ส่งต่อเรื่อง *{{ conversation.reference }}* ของคุณให้ทีม {{ team.name }} ซึ่งจะดูแลต่อจากนี้'''

[updates.templates.waiting_reminder.th]
subject = "เรากำลังรอคำตอบจากคุณ"
text = '''
สวัสดี{% if contact.name %}คุณ{{ contact.name }}{% endif %}

เรากำลังรอคำตอบของคุณเกี่ยวกับเรื่อง {{ conversation.reference }} ตอบกลับข้อความนี้เพื่อดำเนินการต่อ'''
markdown = '''
สวัสดี{% if contact.name %}คุณ{{ contact.name }}{% endif %}

เรากำลังรอคำตอบของคุณเกี่ยวกับเรื่อง *{{ conversation.reference }}* ตอบกลับข้อความนี้เพื่อดำเนินการต่อ'''

[updates.templates.resolved.th]
subject = "เรื่องของคุณได้รับการแก้ไขแล้ว"
text = '''
สวัสดี{% if contact.name %}คุณ{{ contact.name }}{% endif %}

เรื่อง {{ conversation.reference }} ของคุณได้รับการแก้ไขแล้ว หากยังมีปัญหา ตอบกลับข้อความนี้ได้เลย'''
html = '<p>สวัสดี{% if contact.name %}คุณ{{ contact.name }}{% endif %}</p><p>เรื่อง <b>{{ conversation.reference }}</b> ของคุณได้รับการแก้ไขแล้ว หากยังมีปัญหา ตอบกลับข้อความนี้ได้เลย</p>'
markdown = '''
สวัสดี{% if contact.name %}คุณ{{ contact.name }}{% endif %}

เรื่อง *{{ conversation.reference }}* ของคุณได้รับการแก้ไขแล้ว หากยังมีปัญหา ตอบกลับข้อความนี้ได้เลย'''

[updates.templates.auto_closed.th]
subject = "เรื่องของคุณถูกปิดแล้ว"
text = '''
สวัสดี{% if contact.name %}คุณ{{ contact.name }}{% endif %}

เราไม่ได้รับคำตอบจากคุณ จึงปิดเรื่อง {{ conversation.reference }} แล้ว ตอบกลับได้ทุกเมื่อเพื่อเปิดเรื่องอีกครั้ง'''
markdown = '''
สวัสดี{% if contact.name %}คุณ{{ contact.name }}{% endif %}

เราไม่ได้รับคำตอบจากคุณ จึงปิดเรื่อง *{{ conversation.reference }}* แล้ว ตอบกลับได้ทุกเมื่อเพื่อเปิดเรื่องอีกครั้ง'''

[updates.templates.csat.th]
subject = "เราช่วยคุณได้ดีแค่ไหน"
text = '''
คุณพึงพอใจกับความช่วยเหลือในเรื่อง {{ conversation.reference }} มากน้อยเพียงใด {% if channel == "telegram" %}แตะคะแนนจาก 1 (ไม่พอใจ) ถึง 5 (พอใจมาก){% elif csat.links %}เลือกคะแนนจาก 1 (ไม่พอใจ) ถึง 5 (พอใจมาก):
{% for link in csat.links %}
{{ loop.index }}: {{ link }}{% endfor %}

หรือตอบกลับด้วยตัวเลข{% else %}ตอบกลับด้วยตัวเลขจาก 1 (ไม่พอใจ) ถึง 5 (พอใจมาก){% endif %}'''
html = '<p>คุณพึงพอใจกับความช่วยเหลือในเรื่อง {{ conversation.reference }} มากน้อยเพียงใด</p>{% if csat.links %}<p>{% for link in csat.links %}<a href="{{ link }}">{{ loop.index }}</a> {% endfor %}</p><p>1 คือไม่พอใจ 5 คือพอใจมาก หรือตอบกลับด้วยตัวเลข</p>{% else %}<p>ตอบกลับด้วยตัวเลขจาก 1 (ไม่พอใจ) ถึง 5 (พอใจมาก)</p>{% endif %}'
markdown = 'คุณพึงพอใจกับความช่วยเหลือในเรื่อง *{{ conversation.reference }}* มากน้อยเพียงใด แตะคะแนนจาก 1 ถึง 5 ด้านล่าง'
"#;

/// The languages rendered: the built-in English set, and the Thai one configured above.
pub const LANGUAGES: [&str; 2] = ["en", "th"];

/// What the store would fill in for a contact who gave a name, on `channel`: a subject
/// and an email address on email only, the agent once someone holds the conversation,
/// the team's SLA targets, the next opening in Bangkok, five CSAT links on email (a desk
/// with `csat.public_url`).
fn vars(event: UpdateEvent, channel: ChannelKind, language: &str) -> UpdateVars {
    let email = channel == switchboard::channels::registry::known::EMAIL;
    let (name, subject) = match language {
        "th" => ("สมชาย ใจดี", "สั่งซื้อแล้วยังไม่ได้รับสินค้า"),
        _ => ("Ada Lovelace", "Order not delivered"),
    };
    let held = matches!(
        event,
        UpdateEvent::Assigned | UpdateEvent::WaitingReminder | UpdateEvent::Resolved | UpdateEvent::Csat
    );
    let status = match event {
        UpdateEvent::WaitingReminder => "pending",
        UpdateEvent::Resolved | UpdateEvent::AutoClosed | UpdateEvent::Csat => "resolved",
        _ => "open",
    };
    // Monday 2026-11-30 09:00 in Bangkok.
    let next_open = (event == UpdateEvent::OutOfHours).then(|| NextOpen::at(1_796_004_000_000, "Asia/Bangkok"));
    UpdateVars {
        event: event.as_str(),
        channel,
        contact: ContactVars {
            name: Some(name.to_owned()),
            email: email.then(|| "customer@example.com".to_owned()),
            language: Some(language.to_owned()),
        },
        conversation: ConversationVars {
            id: 48_213,
            reference: "#48213".into(),
            subject: email.then(|| subject.to_owned()),
            status: status.into(),
            priority: "normal".into(),
        },
        team: TeamVars {
            key: "support".into(),
            name: "Support".into(),
        },
        agent: held.then(|| AgentVars { name: "Ana".into() }),
        sla: SlaVars {
            first_response: Some("4h".into()),
            resolution: Some("3days".into()),
        },
        inbox: InboxVars {
            key: "shop".into(),
            name: "Shop".into(),
        },
        next_open: next_open.flatten(),
        csat: (event == UpdateEvent::Csat).then(|| CsatVars {
            links: if email {
                (1..=5)
                    .map(|score| format!("https://support.example.com/csat/Xq3vN0b-8kT2pLm4Rw9sYc1A?score={score}"))
                    .collect()
            } else {
                Vec::new()
            },
        }),
    }
}

/// One language, event and channel, rendered over and over.
pub struct RenderCell {
    pub language: &'static str,
    pub event: UpdateEvent,
    pub channel: ChannelKind,
    /// Nanoseconds per render.
    pub ns: Histogram<u64>,
    /// Parts a render produces: the text, and a subject, HTML or MarkdownV2.
    pub parts: usize,
    /// Characters of the rendered text.
    pub text_chars: usize,
}

pub struct RenderFigures {
    pub cells: Vec<RenderCell>,
    /// Loading and validating the store's config with updates off, with the built-in
    /// English set, and with the Thai set besides: the templates are compiled and
    /// rendered with samples at every start.
    pub load_off_ms: f64,
    pub load_en_ms: f64,
    pub load_th_ms: f64,
}

/// Nanoseconds up to a minute. Bounded: `saturating_record` clamps a value above an
/// auto-resizing histogram's current range instead of growing it.
fn render_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

fn us(histogram: &Histogram<u64>, percentile: f64) -> f64 {
    histogram.value_at_quantile(percentile / 100.0) as f64 / 1000.0
}

impl RenderFigures {
    /// Every event of `language` on `channel`, together.
    pub fn pooled(&self, language: &str, channel: ChannelKind) -> Histogram<u64> {
        let mut pooled = render_histogram();
        for cell in self
            .cells
            .iter()
            .filter(|cell| cell.language == language && cell.channel == channel)
        {
            pooled.add(&cell.ns).expect("histograms of the same precision");
        }
        pooled
    }

    /// The event whose median render is slowest in `language` on `channel`.
    pub fn slowest(&self, language: &str, channel: ChannelKind) -> Option<&RenderCell> {
        self.cells
            .iter()
            .filter(|cell| cell.language == language && cell.channel == channel)
            .max_by_key(|cell| cell.ns.value_at_quantile(0.5))
    }

    fn to_json(&self) -> Value {
        let pooled: Vec<Value> = LANGUAGES
            .iter()
            .flat_map(|language| {
                switchboard::channels::registry::REGISTERED
                    .iter()
                    .map(|&channel| (*language, channel))
            })
            .map(|(language, channel)| {
                let pooled = self.pooled(language, channel);
                json!({
                    "language": language,
                    "channel": channel.as_str(),
                    "renders": pooled.len(),
                    "mean_us": round(pooled.mean() / 1000.0),
                    "p50_us": round(us(&pooled, 50.0)),
                    "p99_us": round(us(&pooled, 99.0)),
                    "max_us": round(pooled.max() as f64 / 1000.0),
                })
            })
            .collect();
        let cells: Vec<Value> = self
            .cells
            .iter()
            .map(|cell| {
                json!({
                    "language": cell.language,
                    "event": cell.event.as_str(),
                    "channel": cell.channel.as_str(),
                    "parts": cell.parts,
                    "text_chars": cell.text_chars,
                    "renders": cell.ns.len(),
                    "p50_us": round(us(&cell.ns, 50.0)),
                    "p99_us": round(us(&cell.ns, 99.0)),
                })
            })
            .collect();
        json!({
            "description": "UpdatePolicy::render per event and channel: the text, plus subject and HTML on email, plus MarkdownV2 on Telegram; built-in English (UpdatePolicy::defaults) and a configured Thai set",
            "config_load_ms": {
                "updates_off": round(self.load_off_ms),
                "built_in_english": round(self.load_en_ms),
                "english_and_thai": round(self.load_th_ms),
            },
            "by_language_and_channel": pooled,
            "by_event": cells,
        })
    }
}

/// One store through ingest and resolution, with updates on or off.
pub struct StoreRun {
    pub conversations: u64,
    pub ingest_seconds: f64,
    pub ingest_writer_cpu: f64,
    pub ingest_process_cpu: f64,
    pub resolve_seconds: f64,
    /// Microseconds per `update_conversation` call.
    pub resolve_us: Histogram<u64>,
    pub resolve_writer_cpu: f64,
    pub resolve_process_cpu: f64,
    /// Pages in use times the page size (the WAL's committed pages included).
    pub bytes_after_ingest: u64,
    pub bytes_after_resolve: u64,
    /// The file after the store closed (the WAL checkpointed into it).
    pub file_bytes: u64,
    /// Bytes of each table and index after resolution (SQLite's `dbstat`).
    pub objects: BTreeMap<String, u64>,
    pub rows: Rows,
}

/// Row counts after resolution, to check the run did what it says.
pub struct Rows {
    pub resolved: u64,
    pub status_update_messages: u64,
    pub outbox: u64,
    pub status_updates_sent: u64,
    pub csat_tokens: u64,
}

impl StoreRun {
    pub fn ingest_per_second(&self) -> f64 {
        self.conversations as f64 / self.ingest_seconds
    }

    pub fn ingest_wall_us(&self) -> f64 {
        self.ingest_seconds * 1e6 / self.conversations as f64
    }

    pub fn ingest_writer_us(&self) -> f64 {
        self.ingest_writer_cpu * 1e6 / self.conversations as f64
    }

    pub fn resolves_per_second(&self) -> f64 {
        self.conversations as f64 / self.resolve_seconds
    }

    pub fn resolve_mean_us(&self) -> f64 {
        self.resolve_us.mean()
    }

    pub fn resolve_writer_us(&self) -> f64 {
        self.resolve_writer_cpu * 1e6 / self.conversations as f64
    }

    pub fn per_thousand(&self, bytes: u64) -> f64 {
        bytes as f64 * 1000.0 / self.conversations as f64
    }

    fn to_json(&self) -> Value {
        json!({
            "ingest": {
                "seconds": round(self.ingest_seconds),
                "per_second": self.ingest_per_second().round(),
                "wall_us_per_conversation": round(self.ingest_wall_us()),
                "writer_thread_cpu_seconds": round(self.ingest_writer_cpu),
                "writer_thread_cpu_us_per_conversation": round(self.ingest_writer_us()),
                "process_cpu_seconds": round(self.ingest_process_cpu),
            },
            "resolve": {
                "calls": self.resolve_us.len(),
                "seconds": round(self.resolve_seconds),
                "per_second": self.resolves_per_second().round(),
                "mean_us": round(self.resolve_mean_us()),
                "p50_us": self.resolve_us.value_at_quantile(0.5),
                "p99_us": self.resolve_us.value_at_quantile(0.99),
                "max_us": self.resolve_us.max(),
                "writer_thread_cpu_seconds": round(self.resolve_writer_cpu),
                "writer_thread_cpu_us_per_resolve": round(self.resolve_writer_us()),
                "process_cpu_seconds": round(self.resolve_process_cpu),
            },
            "store_bytes": {
                "after_ingest": self.bytes_after_ingest,
                "after_resolve": self.bytes_after_resolve,
                "file_after_close": self.file_bytes,
                "per_1000_conversations_after_ingest": self.per_thousand(self.bytes_after_ingest).round(),
                "per_1000_conversations_after_resolve": self.per_thousand(self.bytes_after_resolve).round(),
                "by_table_and_index": self.objects,
            },
            "rows": {
                "resolved_conversations": self.rows.resolved,
                "status_update_messages": self.rows.status_update_messages,
                "outbox": self.rows.outbox,
                "status_updates_sent": self.rows.status_updates_sent,
                "csat_tokens": self.rows.csat_tokens,
            },
        })
    }
}

pub struct UpdatesFigures {
    pub render: RenderFigures,
    pub off: StoreRun,
    pub on: StoreRun,
}

impl UpdatesFigures {
    /// Tables and indexes that grew most with updates on, bytes per 1,000 conversations.
    pub fn growth(&self) -> Vec<(String, f64)> {
        let mut growth: Vec<(String, f64)> = self
            .on
            .objects
            .iter()
            .map(|(name, &bytes)| {
                let before = self.off.objects.get(name).copied().unwrap_or(0);
                (
                    name.clone(),
                    self.on.per_thousand(bytes) - self.off.per_thousand(before),
                )
            })
            .filter(|(_, grown)| *grown > 0.0)
            .collect();
        growth.sort_by(|a, b| b.1.total_cmp(&a.1));
        growth
    }

    pub fn to_json(&self) -> Value {
        let (off, on) = (&self.off, &self.on);
        json!({
            "render": self.render.to_json(),
            "store": {
                "description": "Two stores with the same config but [updates]: events = [] (off) and the defaults (on: received, resolved, csat). Conversations ingested through Service::ingest_in_order in batches, then each resolved by Service::update_conversation one call at a time (its transaction and fsync, then the detail read back). Writer CPU is the store's sqlite-writer thread's, from /proc/self/task.",
                "conversations": off.conversations,
                "ingest_batch": SEED_BATCH,
                "updates_off": off.to_json(),
                "updates_on": on.to_json(),
                "added_by_updates": {
                    "ingest_wall_us_per_conversation": round(on.ingest_wall_us() - off.ingest_wall_us()),
                    "ingest_writer_cpu_us_per_conversation": round(on.ingest_writer_us() - off.ingest_writer_us()),
                    "resolve_mean_us": round(on.resolve_mean_us() - off.resolve_mean_us()),
                    "resolve_writer_cpu_us": round(on.resolve_writer_us() - off.resolve_writer_us()),
                    "bytes_per_1000_conversations_after_ingest":
                        (on.per_thousand(on.bytes_after_ingest) - off.per_thousand(off.bytes_after_ingest)).round(),
                    "bytes_per_1000_conversations_after_resolve":
                        (on.per_thousand(on.bytes_after_resolve) - off.per_thousand(off.bytes_after_resolve)).round(),
                    "by_table_and_index_per_1000_conversations": self.growth().into_iter()
                        .map(|(name, bytes)| (name, json!(bytes.round())))
                        .collect::<serde_json::Map<_, _>>(),
                },
            },
        })
    }
}

fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

pub async fn run(conversations: u64, budget: Duration) -> anyhow::Result<UpdatesFigures> {
    ensure!(conversations > 0, "--updates-conversations must be at least 1");
    let render = render(budget)?;
    let off = through_store(conversations, false).await?;
    let on = through_store(conversations, true).await?;
    Ok(UpdatesFigures { render, off, on })
}

/// The fastest of [`COMPILE_RUNS`] loads of the config with `updates`, and the last
/// load's settings.
fn load(updates: &str) -> anyhow::Result<(f64, switchboard::config::Settings)> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("switchboard.toml");
    std::fs::write(&path, config(&dir.path().join("switchboard.db"), updates))?;
    let mut fastest = f64::MAX;
    let mut settings = None;
    for _ in 0..COMPILE_RUNS {
        let started = Instant::now();
        let loaded = switchboard::config::load(&path)?;
        fastest = fastest.min(started.elapsed().as_secs_f64() * 1000.0);
        settings = Some(loaded);
    }
    Ok((fastest, settings.context("no config loaded")?))
}

fn render(budget: Duration) -> anyhow::Result<RenderFigures> {
    let (load_off_ms, _) = load(UPDATES_OFF)?;
    let (load_en_ms, _) = load("")?;
    let (load_th_ms, settings) = load(THAI_TEMPLATES)?;
    let english = UpdatePolicy::defaults();
    let thai: &UpdatePolicy = &settings.desk.updates;
    let policy_of = |language: &str| if language == "th" { thai } else { &english };
    for language in LANGUAGES {
        let policy = policy_of(language);
        let chosen = policy.language(UpdateEvent::Resolved, Some(language), "shop");
        ensure!(chosen == language, "a `{language}` contact gets `{chosen}` templates");
    }

    let cells = LANGUAGES.len() * UpdateEvent::ALL.len() * switchboard::channels::registry::REGISTERED.len();
    let per_cell = budget / cells as u32;
    let mut figures = Vec::with_capacity(cells);
    for language in LANGUAGES {
        let policy = policy_of(language);
        for event in UpdateEvent::ALL {
            for &channel in switchboard::channels::registry::REGISTERED {
                let vars = vars(event, channel, language);
                let rendered = policy
                    .render(event, language, &vars)
                    .map_err(|problem| anyhow::anyhow!("{language} {} on {channel}: {problem}", event.as_str()))?;
                ensure!(rendered.language == language, "rendered in {}", rendered.language);
                let parts = 1
                    + usize::from(rendered.subject.is_some())
                    + usize::from(rendered.html.is_some())
                    + usize::from(rendered.markdown_v2.is_some());
                for _ in 0..WARMUP_RENDERS {
                    black_box(policy.render(event, language, &vars).ok());
                }
                let mut ns = render_histogram();
                let started = Instant::now();
                while ns.len() < MIN_RENDERS || started.elapsed() < per_cell {
                    let before = Instant::now();
                    let rendered = black_box(policy.render(event, language, black_box(&vars)));
                    ns.saturating_record(before.elapsed().as_nanos() as u64);
                    drop(rendered);
                }
                figures.push(RenderCell {
                    language,
                    event,
                    channel,
                    ns,
                    parts,
                    text_chars: rendered.text.chars().count(),
                });
            }
        }
    }
    Ok(RenderFigures {
        cells: figures,
        load_off_ms,
        load_en_ms,
        load_th_ms,
    })
}

/// CPU of the store's writer thread so far. One store is open at a time here, so one
/// thread has the name.
fn writer_cpu_seconds() -> anyhow::Result<f64> {
    let mut writers = Vec::new();
    for task in std::fs::read_dir("/proc/self/task")? {
        let task = task?;
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == "sqlite-writer" {
            writers.push(task.file_name().to_string_lossy().into_owned());
        }
    }
    match writers.as_slice() {
        [tid] => Ok(process_cpu_seconds(format!("self/task/{tid}"))),
        other => bail!("{} threads named sqlite-writer, not one", other.len()),
    }
}

fn read_only(database: &Path) -> anyhow::Result<rusqlite::Connection> {
    Ok(rusqlite::Connection::open_with_flags(
        database,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?)
}

fn count(connection: &rusqlite::Connection, sql: &str) -> anyhow::Result<u64> {
    Ok(connection.query_row(sql, [], |row| row.get::<_, i64>(0))? as u64)
}

/// Pages in use times the page size, as a reader sees the store (WAL included).
fn used_bytes(database: &Path) -> anyhow::Result<u64> {
    let connection = read_only(database)?;
    let pages = count(&connection, "PRAGMA page_count")?;
    let free = count(&connection, "PRAGMA freelist_count")?;
    Ok((pages - free) * count(&connection, "PRAGMA page_size")?)
}

async fn through_store(conversations: u64, updates: bool) -> anyhow::Result<StoreRun> {
    let dir = tempfile::tempdir()?;
    let database = dir.path().join("switchboard.db");
    let config_path = dir.path().join("switchboard.toml");
    std::fs::write(&config_path, config(&database, if updates { "" } else { UPDATES_OFF }))?;
    let settings = switchboard::config::load(&config_path)?;
    let clock = SystemClock;
    // Not a `Send` future: awaited here, on the thread that blocks on the runtime.
    let opened = switchboard::server::open(&settings, &clock).await?;
    let (store, catalog) = (opened.service, opened.catalog);
    let agent_id = store
        .create_agent(
            NewAgent {
                name: "resolver".into(),
                role: Role::Supervisor,
                teams: vec!["support".into()],
                token_hash: hash_token("bench-updates"),
                first_token: Some("first".into()),
                capacity: None,
                // Not available: the queue assigns it nothing when a resolve drains it.
                available: false,
                languages: Vec::new(),
            },
            None,
            clock.now_ms(),
        )
        .await?;
    let intake = Intake {
        store: store.clone(),
        inbox: catalog.inboxes.get("shop").context("the shop inbox")?.clone(),
        router: Arc::clone(&settings.router),
    };

    let (writer, process) = (writer_cpu_seconds()?, process_cpu_seconds("self"));
    let started = Instant::now();
    intake
        .seed(&clock, None, "customer", conversations, |n| {
            format!("Hello, my order {n} has not arrived yet. Could someone look into it?")
        })
        .await?;
    let ingest_seconds = started.elapsed().as_secs_f64();
    let ingest_writer_cpu = writer_cpu_seconds()? - writer;
    let ingest_process_cpu = process_cpu_seconds("self") - process;
    let bytes_after_ingest = used_bytes(&database)?;

    let ids: Vec<i64> = {
        let connection = read_only(&database)?;
        let mut statement = connection.prepare("SELECT id FROM conversations ORDER BY id")?;
        statement.query_map([], |row| row.get(0))?.collect::<Result<_, _>>()?
    };
    ensure!(ids.len() as u64 == conversations, "{} conversations stored", ids.len());
    let changes = ConversationChanges {
        status: Some(Status::Resolved),
        ..ConversationChanges::default()
    };
    let mut resolve_us = crate::load::histogram();
    let (writer, process) = (writer_cpu_seconds()?, process_cpu_seconds("self"));
    let started = Instant::now();
    for id in ids {
        let before = Instant::now();
        store
            .update_conversation(id, agent_id, changes.clone(), clock.now_ms())
            .await?;
        let detail = opened.queries.conversation(id).await?;
        resolve_us.saturating_record(before.elapsed().as_micros() as u64);
        drop(detail);
    }
    let resolve_seconds = started.elapsed().as_secs_f64();
    let resolve_writer_cpu = writer_cpu_seconds()? - writer;
    let resolve_process_cpu = process_cpu_seconds("self") - process;
    let bytes_after_resolve = used_bytes(&database)?;

    let connection = read_only(&database)?;
    let rows = Rows {
        resolved: count(
            &connection,
            "SELECT COUNT(*) FROM conversations WHERE status = 'resolved'",
        )?,
        status_update_messages: count(
            &connection,
            "SELECT COUNT(*) FROM messages WHERE kind = 'status_update'",
        )?,
        outbox: count(&connection, "SELECT COUNT(*) FROM outbox")?,
        status_updates_sent: count(&connection, "SELECT COUNT(*) FROM status_updates_sent")?,
        csat_tokens: count(
            &connection,
            "SELECT COUNT(*) FROM conversations WHERE csat_token IS NOT NULL",
        )?,
    };
    let objects: BTreeMap<String, u64> = {
        let mut statement = connection.prepare("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")?;
        statement
            .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64)))?
            .collect::<Result<_, _>>()?
    };
    drop(connection);
    // The writer thread checkpoints and closes the file before the folder goes.
    drop(intake);
    drop(store);
    let file_bytes = std::fs::metadata(&database)?.len();
    Ok(StoreRun {
        conversations,
        ingest_seconds,
        ingest_writer_cpu,
        ingest_process_cpu,
        resolve_seconds,
        resolve_us,
        resolve_writer_cpu,
        resolve_process_cpu,
        bytes_after_ingest,
        bytes_after_resolve,
        file_bytes,
        objects,
        rows,
    })
}
