//! Email: a support mailbox in a private Dovecot holds N customer mails when the daemon
//! first starts; it imports them (the IMAP backfill), then idles, and new mail arrives
//! one at a time. Acknowledgements leave over SMTP to a relay that delivers them into
//! the customers' Dovecot mailboxes, as they would leave through a real MTA.
//!
//! Timed: the backfill, from the daemon's process start until the last of the N mails
//! is committed; the acknowledgements, until the last one was accepted over SMTP; then,
//! on a daemon with nothing left to do, each of M live mails from its LMTP delivery to
//! its commit (IMAP IDLE, the path a running desk takes). Before that, for comparison,
//! another daemon on a fresh store imports the same mailbox with acknowledgements off:
//! the relay and Dovecot's LMTP, which take the acknowledgements, share the machine's two
//! cores with the daemon here, where a real MTA would not. Not timed: generating and
//! delivering the N mails. Progress is read from the daemon's store, read-only and
//! polled every few milliseconds (WAL: a reader never blocks the writer).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use base64::Engine;
use hdrhistogram::Histogram;
use rusqlite::{Connection, OpenFlags};
use serde_json::{Value, json};
use switchboard_test_mailservers::{Dovecot, SmtpRelay};

use crate::daemon::Daemon;
use crate::load;
use crate::workloads::mix;

/// Mails delivered while the daemon runs, one at a time, each timed to its commit (by
/// default: a hundred, so the 99th percentile is not simply the maximum).
pub const LIVE_MAILS: usize = 100;
const SUPPORT: &str = "support@test.local";
/// Distinct customers. Their addresses are plus-addresses of two Dovecot users
/// (`customer+alice.keller@test.local`): every acknowledgement is accepted by the relay
/// and delivered, where an unknown address would be refused (550) and fail for good.
const SENDERS: u64 = 100;
const FIRST_NAMES: [&str; 10] = [
    "Alice", "Bruno", "Chiara", "Dmitri", "Elif", "Farah", "Gustav", "Hana", "Ines", "Jonas",
];
const LAST_NAMES: [&str; 10] = [
    "Keller",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Quintana",
    "Rossi",
    "Schmidt",
    "Tanaka",
];
/// Shares of mails, per cent: replies (when the sender wrote before), and the formats.
const REPLY_PERCENT: u64 = 20;
const ATTACHMENT_PERCENT: u64 = 10;
const ALTERNATIVE_PERCENT: u64 = 40;
/// The attachment's decoded size: a scanned receipt or a photo of the damage.
const ATTACHMENT_BYTES: usize = 30 * 1024;
/// A poll of the store does not hold up the daemon (another process, a WAL reader), but
/// it takes CPU from the same two cores: often enough for the timings, no more.
const BACKFILL_POLL: Duration = Duration::from_millis(5);
const LIVE_POLL: Duration = Duration::from_millis(1);

/// New conversations' subjects and first lines; `{order}` makes each subject unique,
/// so a new mail opens a conversation rather than joining one by topic.
const TOPICS: [(&str, &str); 8] = [
    (
        "Order {order} has not arrived",
        "I ordered two weeks ago (order {order}) and the tracking page still says the parcel is in transit.\n\
         Could you check with the carrier where it is? I need it before the weekend.",
    ),
    (
        "Refund for order {order}",
        "I sent order {order} back ten days ago, the return was signed for on Monday, but I have not\n\
         received the refund yet. How long does it usually take?",
    ),
    (
        "Wrong size delivered, order {order}",
        "The jacket in order {order} arrived in size M, I ordered L. Can you send the right size and a\n\
         return label for this one?",
    ),
    (
        "Invoice with VAT number for order {order}",
        "Could you send me an invoice for order {order} with our company's VAT number DE123456789?\n\
         Our accounting cannot book the receipt without it.",
    ),
    (
        "Damaged item in order {order}",
        "The lamp in order {order} arrived with a cracked shade. I attached a photo of the box and the\n\
         damage. Can you replace it?",
    ),
    (
        "Change delivery address for order {order}",
        "I am moving next week. Can order {order} still go to my new address, Gartenstrasse 12, Berlin?",
    ),
    (
        "Rechnung zu Bestellung {order}",
        "Guten Tag,\n\nauf der Rechnung zu Bestellung {order} ist der Betrag doppelt abgebucht worden.\n\
         Bitte erstatten Sie die zweite Zahlung.",
    ),
    (
        "Charged twice for order {order}",
        "My card statement shows two payments for order {order}. Please refund one of them.",
    ),
];
/// A customer following up on their own mail.
const FOLLOW_UPS: [&str; 4] = [
    "Any news on this? I am still waiting for an answer.",
    "I forgot to mention: the order number is in the subject. Thanks!",
    "Sorry to insist, but this is getting urgent.",
    "Never mind the address question, but the rest still stands.",
];

/// What kind of body a mail has.
#[derive(Clone, Copy)]
enum Format {
    Plain,
    /// multipart/alternative, text and HTML.
    Alternative,
    /// multipart/mixed, text and a base64 attachment.
    Attachment,
}

/// The mails delivered, by kind.
#[derive(Default)]
pub struct MailMix {
    pub plain: u64,
    pub alternative: u64,
    pub attachment: u64,
    pub replies: u64,
    pub senders: u64,
    pub bytes: u64,
}

impl MailMix {
    fn to_json(&self) -> Value {
        json!({
            "plain_text": self.plain,
            "text_and_html": self.alternative,
            "with_attachment": self.attachment,
            "attachment_bytes": ATTACHMENT_BYTES,
            "replies": self.replies,
            "senders": self.senders,
            "bytes": self.bytes,
        })
    }

    /// `2,000 mails from 100 senders: 50 % plain text, …`.
    pub fn describe(&self, mails: u64) -> String {
        let share = |n: u64| n as f64 * 100.0 / mails.max(1) as f64;
        format!(
            "{mails} mails from {} senders, {:.0} KiB on average: {:.0}% plain text, {:.0}% text+HTML, \
             {:.0}% with a {} KiB attachment; {:.0}% replies",
            self.senders,
            self.bytes as f64 / mails.max(1) as f64 / 1024.0,
            share(self.plain),
            share(self.alternative),
            share(self.attachment),
            ATTACHMENT_BYTES / 1024,
            share(self.replies),
        )
    }
}

/// A sender's latest mail, for a reply to follow it.
struct Sent {
    message_id: String,
    subject: String,
    references: String,
    text: String,
    date: String,
}

/// One delivered mail.
struct Mail {
    raw: Vec<u8>,
    message_id: String,
    /// The Message-ID this mail replies to.
    answers: Option<String>,
}

/// The customers' mail, deterministic by index so runs are comparable.
struct Mails {
    next: u64,
    latest: Vec<Option<Sent>>,
    mix: MailMix,
}

impl Mails {
    fn new() -> Mails {
        Mails {
            next: 0,
            latest: (0..SENDERS).map(|_| None).collect(),
            mix: MailMix::default(),
        }
    }

    fn next(&mut self) -> Mail {
        let index = self.next;
        self.next += 1;
        let draw = mix(index ^ 0x6d61_696c);
        let sender = draw % SENDERS;
        let first = FIRST_NAMES[(sender % 10) as usize];
        let last = LAST_NAMES[(sender / 10 % 10) as usize];
        let user = if sender.is_multiple_of(2) { "customer" } else { "other" };
        let address = format!("{user}+{}.{}@test.local", first.to_lowercase(), last.to_lowercase());
        let name = format!("{first} {last}");
        let format = match (draw >> 24) % 100 {
            n if n < ATTACHMENT_PERCENT => Format::Attachment,
            n if n < ATTACHMENT_PERCENT + ALTERNATIVE_PERCENT => Format::Alternative,
            _ => Format::Plain,
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let date = rfc2822(now);
        let message_id = format!("{index:06}.{:08x}@mua.example.net", draw >> 32);
        let order = 100_000 + index;

        let previous = self.latest[sender as usize].as_ref();
        let reply = previous.filter(|_| (draw >> 16) % 100 < REPLY_PERCENT);
        let (subject, text, headers, answers, references) = match reply {
            Some(previous) => {
                let follow_up = FOLLOW_UPS[((draw >> 40) % FOLLOW_UPS.len() as u64) as usize];
                let quoted: String = previous.text.lines().map(|line| format!("> {line}\n")).collect();
                let text = format!(
                    "{follow_up}\n\n{name}\n\nOn {}, {name} <{address}> wrote:\n{quoted}",
                    previous.date
                );
                let references = format!("{} <{}>", previous.references, previous.message_id)
                    .trim()
                    .to_owned();
                let headers = format!("In-Reply-To: <{}>\nReferences: {references}\n", previous.message_id);
                (
                    previous.subject.clone(),
                    text,
                    headers,
                    Some(previous.message_id.clone()),
                    references,
                )
            }
            None => {
                let (subject, body) = TOPICS[((draw >> 40) % TOPICS.len() as u64) as usize];
                let order = order.to_string();
                let text = format!(
                    "Hello,\n\n{}\n\nBest regards,\n{name}\n",
                    body.replace("{order}", &order)
                );
                (
                    subject.replace("{order}", &order),
                    text,
                    String::new(),
                    None,
                    String::new(),
                )
            }
        };
        let shown_subject = if answers.is_some() {
            format!("Re: {subject}")
        } else {
            subject.clone()
        };
        let mut raw = format!(
            "From: {name} <{address}>\nTo: Support <{SUPPORT}>\nSubject: {shown_subject}\nDate: {date}\n\
             Message-ID: <{message_id}>\n{headers}MIME-Version: 1.0\n"
        );
        match format {
            Format::Plain => {
                self.mix.plain += 1;
                raw.push_str("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n");
                raw.push_str(&text);
            }
            Format::Alternative => {
                self.mix.alternative += 1;
                let html: String = text
                    .split("\n\n")
                    .map(|paragraph| format!("<p>{}</p>\n", html_escape(paragraph).replace('\n', "<br>\n")))
                    .collect();
                raw.push_str(&format!(
                    "Content-Type: multipart/alternative; boundary=\"alt-{index}\"\n\n\
                     --alt-{index}\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n\
                     {text}\n--alt-{index}\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n\
                     <html><head><meta charset=\"utf-8\"></head><body style=\"font-family: sans-serif\">\n{html}\
                     </body></html>\n--alt-{index}--\n"
                ));
            }
            Format::Attachment => {
                self.mix.attachment += 1;
                // Distinct bytes per mail: the store keeps one copy of identical blobs.
                let data: Vec<u8> = (0..ATTACHMENT_BYTES.div_ceil(8) as u64)
                    .flat_map(|word| mix(index << 32 ^ word).to_le_bytes())
                    .take(ATTACHMENT_BYTES)
                    .collect();
                let encoded = base64::engine::general_purpose::STANDARD.encode(&data);
                let lines: Vec<&str> = encoded
                    .as_bytes()
                    .chunks(76)
                    .map(|line| std::str::from_utf8(line).expect("base64 is ASCII"))
                    .collect();
                raw.push_str(&format!(
                    "Content-Type: multipart/mixed; boundary=\"mixed-{index}\"\n\n\
                     --mixed-{index}\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n\
                     {text}\n--mixed-{index}\nContent-Type: image/jpeg; name=\"photo-{order}.jpg\"\n\
                     Content-Disposition: attachment; filename=\"photo-{order}.jpg\"\n\
                     Content-Transfer-Encoding: base64\n\n{}\n--mixed-{index}--\n",
                    lines.join("\n")
                ));
            }
        }
        if answers.is_some() {
            self.mix.replies += 1;
        }
        if self.latest[sender as usize].is_none() {
            self.mix.senders += 1;
        }
        self.mix.bytes += raw.len() as u64;
        self.latest[sender as usize] = Some(Sent {
            message_id: message_id.clone(),
            subject,
            references,
            text,
            date,
        });
        Mail {
            raw: raw.into_bytes(),
            message_id,
            answers,
        }
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// `Tue, 24 Nov 2026 10:00:00 +0000` for a Unix time, in UTC.
fn rfc2822(unix: i64) -> String {
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (days, seconds) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil: years start in March, so leap days come last.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} +0000",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[month as usize - 1],
        seconds / 3600,
        seconds % 3600 / 60,
        seconds % 60
    )
}

/// The daemon's config: one email inbox, the shipped defaults otherwise (FULL
/// durability, the acknowledgement on unless `acknowledge` is false), loopback only.
fn config(dir: &Path, imap_port: u16, smtp_port: u16, acknowledge: bool) -> anyhow::Result<String> {
    let password = dir.join("imap-password");
    std::fs::write(&password, format!("{}\n", switchboard_test_mailservers::PASSWORD))?;
    Ok(crate::daemon::config_with(
        &dir.join("switchboard.db"),
        &format!(
            r#"
[inboxes.mail]
name = "Support mail"
updates_off = {updates_off}

[inboxes.mail.email]
address = "{SUPPORT}"
display_name = "Support"
imap = {{ host = "127.0.0.1", port = {imap_port}, security = "plain", password_file = "{password}" }}
smtp = {{ host = "127.0.0.1", port = {smtp_port}, security = "plain" }}
backfill = "7d"
backfill_unseen_only = true

[[rules]]
name = "billing"
when = {{ text = '(?i)\b(refunds?|invoices?|charged|rechnung)\b' }}
then = {{ team = "billing" }}
"#,
            password = password.display(),
            updates_off = if acknowledge { "[]" } else { r#"["received"]"# },
        ),
    ))
}

/// The daemon's store, opened read-only beside the running daemon.
struct Store(Connection);

impl Store {
    fn open(path: &Path) -> anyhow::Result<Store> {
        let connection = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("opening {} read-only", path.display()))?;
        Ok(Store(connection))
    }

    fn count(&self, sql: &str) -> anyhow::Result<u64> {
        Ok(self.0.query_row(sql, [], |row| row.get::<_, i64>(0))? as u64)
    }

    fn inbound(&self) -> anyhow::Result<u64> {
        self.count("SELECT COUNT(*) FROM messages WHERE direction = 'inbound'")
    }

    /// Whether the mail with this Message-ID is stored: one index lookup, where counting
    /// reads every message row (about 170 µs at 2,000 mails), too much to do every
    /// millisecond. Acknowledgements have Message-IDs too, hence the direction.
    fn has(&self, message_id: &str) -> anyhow::Result<bool> {
        Ok(self.0.query_row(
            "SELECT EXISTS (SELECT 1 FROM messages WHERE inbox_id = (SELECT id FROM inboxes WHERE key = 'mail')
                            AND external_id = ?1 AND direction = 'inbound')",
            [message_id],
            |row| row.get(0),
        )?)
    }

    /// Acknowledgements not yet accepted by the SMTP server, nor failed for good.
    fn unsent(&self) -> anyhow::Result<u64> {
        self.count("SELECT COUNT(*) FROM outbox WHERE status IN ('scheduled', 'in_flight')")
    }

    /// The conversation of each stored mail, by Message-ID.
    fn conversations_by_message_id(&self) -> anyhow::Result<HashMap<String, i64>> {
        let mut statement = self
            .0
            .prepare("SELECT external_id, conversation_id FROM messages WHERE direction = 'inbound'")?;
        let rows = statement.query_map([], |row| Ok((row.get::<_, Option<String>>(0)?, row.get::<_, i64>(1)?)))?;
        let mut map = HashMap::new();
        for row in rows {
            if let (Some(id), conversation) = row? {
                map.insert(id.trim_matches(['<', '>']).to_owned(), conversation);
            }
        }
        Ok(map)
    }
}

/// Polls `done` every `interval` until it holds; returns when it was first seen to.
async fn until(
    what: &str,
    deadline: Duration,
    interval: Duration,
    mut done: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<Instant> {
    let started = Instant::now();
    loop {
        if done()? {
            return Ok(Instant::now());
        }
        if started.elapsed() > deadline {
            bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(interval).await;
    }
}

pub struct Acknowledgements {
    /// Sent by `all_sent_seconds`: the backfill's.
    pub backfill_sent: u64,
    pub queued: u64,
    pub sent: u64,
    pub failed: u64,
    /// Mails the SMTP relay accepted.
    pub relay_accepted: u64,
    /// From the daemon's start until the backfill's last acknowledgement left.
    pub all_sent_seconds: f64,
}

/// A daemon's first start on the mailbox.
pub struct Backfill {
    pub acknowledge: bool,
    pub mails: u64,
    /// From the daemon's process start to `/readyz`.
    pub ready_seconds: f64,
    /// From the daemon's process start until every mail was committed.
    pub seconds: f64,
    /// Inbound messages stored when the last one was seen.
    pub stored: u64,
    /// The daemon's CPU time (all threads, user and system) over those seconds.
    pub cpu_seconds: f64,
    pub rss_mib: f64,
}

impl Backfill {
    pub fn per_second(&self) -> f64 {
        self.mails as f64 / self.seconds
    }

    fn to_json(&self) -> Value {
        json!({
            "acknowledgements": self.acknowledge,
            "seconds_from_start": self.seconds,
            "ready_seconds": self.ready_seconds,
            "per_second": self.per_second().round(),
            "daemon_cpu_seconds": self.cpu_seconds,
            "stored_inbound": self.stored,
            "store_matches_delivered": self.stored == self.mails,
            "rss_mib": self.rss_mib,
        })
    }
}

pub struct EmailFigures {
    /// Mails in the mailbox when the daemon started.
    pub mails: u64,
    pub mix: MailMix,
    pub delivery_seconds: f64,
    /// The measured start: acknowledgements on, as shipped.
    pub backfill: Backfill,
    /// The same mailbox imported by a daemon that sends no acknowledgements: what the
    /// SMTP side (here the relay and Dovecot's LMTP, on the same two cores) costs.
    pub backfill_without_acks: Backfill,
    pub peak_rss_without_acks_mib: f64,
    /// Delivery (LMTP done) to commit, each live mail alone.
    pub live_us: Histogram<u64>,
    pub live_mails: u64,
    pub conversations: u64,
    /// Replies stored in the conversation of the mail they answer.
    pub replies_threaded: u64,
    pub replies: u64,
    pub acknowledgements: Acknowledgements,
    pub peak_rss_mib: f64,
    pub store_bytes: u64,
}

impl EmailFigures {
    pub fn live_ms(&self, percentile: f64) -> f64 {
        self.live_us.value_at_quantile(percentile / 100.0) as f64 / 1000.0
    }

    pub fn to_json(&self) -> Value {
        let acks = &self.acknowledgements;
        json!({
            "description": "the daemon's first start on a Dovecot mailbox holding N unseen mails (IMAP backfill, acknowledgements over SMTP to a relay into Dovecot), then M mails delivered one at a time while it idles (IMAP IDLE); the same backfill once more, acknowledgements off, on a fresh store",
            "mails": self.mails,
            "mix": self.mix.to_json(),
            "delivery_seconds_untimed": self.delivery_seconds,
            "backfill": self.backfill.to_json(),
            "backfill_without_acknowledgements": self.backfill_without_acks.to_json(),
            "peak_rss_without_acknowledgements_mib": self.peak_rss_without_acks_mib,
            "acknowledgements": {
                "sent_for_the_backfill": acks.backfill_sent,
                "per_second_from_start": (acks.backfill_sent as f64 / acks.all_sent_seconds).round(),
                "queued": acks.queued,
                "sent": acks.sent,
                "failed": acks.failed,
                "relay_accepted": acks.relay_accepted,
                "all_sent_seconds_from_start": acks.all_sent_seconds,
            },
            "live": {
                "mails": self.live_mails,
                "timed": self.live_us.len(),
                "p50_ms": self.live_ms(50.0),
                "p99_ms": self.live_ms(99.0),
                "max_ms": self.live_us.max() as f64 / 1000.0,
            },
            "conversations": self.conversations,
            "replies": self.replies,
            "replies_threaded": self.replies_threaded,
            "peak_rss_mib": self.peak_rss_mib,
            "store_bytes": self.store_bytes,
            "store_bytes_per_mail": self.store_bytes / (self.mails + self.live_mails).max(1),
        })
    }
}

/// Starts a daemon on a fresh store in `dir` and returns once it stored `mails`.
async fn first_start(
    binary: &Path,
    dir: &Path,
    dovecot: &Dovecot,
    smtp_port: u16,
    acknowledge: bool,
    mails: u64,
) -> anyhow::Result<(Daemon, Store, Instant, Backfill)> {
    std::fs::write(
        dir.join("switchboard.toml"),
        config(dir, dovecot.imap_port(), smtp_port, acknowledge)?,
    )?;
    let started = Instant::now();
    let daemon = Daemon::start_existing(binary, dir).await?;
    let ready_seconds = started.elapsed().as_secs_f64();
    let store = Store::open(&daemon.database())?;
    let done = until("the backfill", deadline(mails), BACKFILL_POLL, || {
        Ok(store.inbound()? >= mails)
    })
    .await;
    let done = done.with_context(|| format!("{} of {mails} mails stored", store.inbound().unwrap_or(0)))?;
    let backfill = Backfill {
        acknowledge,
        mails,
        ready_seconds,
        seconds: done.duration_since(started).as_secs_f64(),
        stored: store.inbound()?,
        cpu_seconds: daemon.process.cpu_seconds(),
        rss_mib: daemon.process.rss_mib().0,
    };
    Ok((daemon, store, started, backfill))
}

/// A generous bound for `mails` to be imported: a debug daemon on a busy machine.
fn deadline(mails: u64) -> Duration {
    Duration::from_secs(60) + Duration::from_millis(50) * u32::try_from(mails).unwrap_or(u32::MAX / 50)
}

pub async fn run(binary: &Path, mails: u64, live_mails: usize) -> anyhow::Result<EmailFigures> {
    let dovecot = Dovecot::start().await;
    let relay = SmtpRelay::start(&dovecot).await;

    let mut generator = Mails::new();
    let mut answered: Vec<(String, String)> = Vec::new();
    let delivering = Instant::now();
    for _ in 0..mails {
        let mail = generator.next();
        answered.extend(mail.answers.map(|answers| (mail.message_id, answers)));
        dovecot.deliver(SUPPORT, &mail.raw).await;
    }
    let delivery_seconds = delivering.elapsed().as_secs_f64();
    let mix = std::mem::take(&mut generator.mix);

    // First the comparison, acknowledgements off: the daemon reads without marking
    // mail seen (BODY.PEEK), so the measured start below finds the mailbox as this one
    // did, with Dovecot's caches as warm as after the delivery.
    let quiet_dir = tempfile::tempdir()?;
    let (daemon, store, _, backfill_without_acks) =
        first_start(binary, quiet_dir.path(), &dovecot, relay.port(), false, mails).await?;
    let peak_rss_without_acks_mib = daemon.process.rss_mib().1.max(backfill_without_acks.rss_mib);
    drop(store);
    daemon.process.stop()?;

    let dir = tempfile::tempdir()?;
    let (daemon, store, started, backfill) =
        first_start(binary, dir.path(), &dovecot, relay.port(), true, mails).await?;
    let all_sent = until("the acknowledgements", deadline(mails), BACKFILL_POLL, || {
        Ok(store.unsent()? == 0)
    })
    .await?;
    let all_sent_seconds = all_sent.duration_since(started).as_secs_f64();
    let backfill_sent = store.count("SELECT COUNT(*) FROM outbox WHERE status = 'sent'")?;

    let mut live_us = load::histogram();
    for _ in 0..live_mails {
        let mail = generator.next();
        dovecot.deliver(SUPPORT, &mail.raw).await;
        let delivered = Instant::now();
        let stored_at = until("a live mail", Duration::from_secs(30), LIVE_POLL, || {
            store.has(&mail.message_id)
        })
        .await?;
        live_us.saturating_record(stored_at.duration_since(delivered).as_micros() as u64);
        answered.extend(mail.answers.map(|answers| (mail.message_id, answers)));
    }
    until(
        "the live mails' acknowledgements",
        deadline(mails),
        BACKFILL_POLL,
        || Ok(store.unsent()? == 0),
    )
    .await?;

    let total = mails + live_mails as u64;
    ensure!(
        store.inbound()? == total,
        "{} inbound messages stored for {total} mails",
        store.inbound()?
    );
    let conversations = store.count("SELECT COUNT(*) FROM conversations")?;
    let by_id = store.conversations_by_message_id()?;
    let replies_threaded = answered
        .iter()
        .filter(|(reply, original)| by_id.get(reply).is_some_and(|c| Some(c) == by_id.get(original)))
        .count() as u64;
    let acknowledgements = Acknowledgements {
        backfill_sent,
        queued: store.count("SELECT COUNT(*) FROM outbox")?,
        sent: store.count("SELECT COUNT(*) FROM outbox WHERE status = 'sent'")?,
        failed: store.count("SELECT COUNT(*) FROM outbox WHERE status = 'failed'")?,
        relay_accepted: relay.sent().len() as u64,
        all_sent_seconds,
    };
    // The kernel's RSS counters are approximate (per-CPU batches): a high-water mark
    // read later came out 0.1 MiB under the RSS read after the backfill.
    let peak_rss_mib = daemon.process.rss_mib().1.max(backfill.rss_mib);
    drop(store);
    let database = daemon.database();
    daemon.process.stop()?;
    // The daemon's last connection to close checkpoints the WAL into the file, but it
    // does not always run before the process exits (about one stop in two left a WAL of
    // 5 – 16 MiB behind here): fold in what is left, so the size is the data's.
    Connection::open(&database)?.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    let store_bytes = std::fs::metadata(&database)?.len();
    Ok(EmailFigures {
        mails,
        replies: answered.len() as u64,
        mix,
        delivery_seconds,
        backfill,
        backfill_without_acks,
        peak_rss_without_acks_mib,
        live_us,
        live_mails: live_mails as u64,
        conversations,
        replies_threaded,
        acknowledgements,
        peak_rss_mib,
        store_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc_2822() {
        assert_eq!(rfc2822(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc2822(1_795_514_400), "Tue, 24 Nov 2026 10:00:00 +0000");
        assert_eq!(rfc2822(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
    }
}
