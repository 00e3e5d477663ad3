//! What the clients send: signed customer messages (with a chosen mix of new and
//! returning customers) and agents' queue queries.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use switchboard_connector_webhook::Secret;
use switchboard_connector_webhook::signature::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};

use crate::load::Workload;

/// SplitMix64: a deterministic, well-spread hash, so runs are repeatable without a
/// random number generator.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Customer messages of a support desk, in several languages; some match routing rules.
const TEXTS: &[&str] = &[
    "Hi, I was charged twice for order 1001, can you refund one of the payments?",
    "The app is not loading since this morning, I get error 503 on login.",
    "Where is my parcel? Tracking says delivered but nothing arrived.",
    "Can I change the delivery address of my order before it ships?",
    "Meine Rechnung vom März ist falsch, bitte korrigieren.",
    "Hola, necesito una factura con mi número de IVA.",
    "How do I reset my password? The reset link has expired.",
    "Thanks, that solved it!",
    "Do you ship to Norway, and how long does it take?",
    "The product arrived broken, the screen is cracked. What now?",
];

/// Who writes each message.
#[derive(Debug, Clone, Copy)]
pub enum Senders {
    /// A customer drawn from a base of this many: after the first message of each, the
    /// rest join their open conversation.
    Base(u64),
    /// This share of messages from customers never seen before (a new conversation each),
    /// the rest from a base of returning customers.
    Mixed { new_per_mille: u64, base: u64 },
    /// Every message from a new customer: every message opens a conversation.
    AllNew,
}

pub struct CustomerMessages {
    /// Keeps ids unique across the runs of one benchmark against one store.
    pub run: String,
    pub host: String,
    pub secret: Secret,
    pub senders: Senders,
}

impl CustomerMessages {
    fn sender(&self, client: usize, seq: u64) -> String {
        let draw = mix((client as u64) << 40 ^ seq);
        match self.senders {
            Senders::Base(size) => format!("customer-{}", draw % size),
            Senders::Mixed { new_per_mille, .. } if draw % 1000 < new_per_mille => {
                format!("new-{}-{client}-{seq}", self.run)
            }
            Senders::Mixed { base, .. } => format!("customer-{}", (draw >> 10) % base),
            Senders::AllNew => format!("new-{}-{client}-{seq}", self.run),
        }
    }
}

impl Workload for CustomerMessages {
    fn request(&self, client: usize, seq: u64) -> Request<Full<Bytes>> {
        let id = format!("{}-{client}-{seq}", self.run);
        let sender = self.sender(client, seq);
        let text = TEXTS[(mix(seq ^ client as u64) % TEXTS.len() as u64) as usize];
        let body = format!(
            r#"{{"id":"{id}","from":{{"id":"{sender}","name":"Customer {sender}"}},"text":"{text}","metadata":{{"plan":"pro"}}}}"#
        );
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let signature = self.secret.sign(&id, timestamp, body.as_bytes());
        Request::post("/hooks/shop")
            .header("host", &self.host)
            .header("content-type", "application/json")
            .header(HEADER_ID, &id)
            .header(HEADER_TIMESTAMP, timestamp.to_string())
            .header(HEADER_SIGNATURE, signature)
            .body(Full::new(Bytes::from(body)))
            .expect("a valid request")
    }

    fn accepted(&self, status: hyper::StatusCode) -> bool {
        status == hyper::StatusCode::ACCEPTED
    }
}

/// Agents looking at their team queues, newest activity first, as a console polls.
pub struct QueueQueries {
    pub host: String,
    pub token: String,
    /// Paths to cycle through.
    pub paths: Vec<String>,
}

impl QueueQueries {
    pub fn get(&self, path: &str) -> Request<Full<Bytes>> {
        Request::get(path)
            .header("host", &self.host)
            .header("authorization", format!("Bearer {}", self.token))
            .body(Full::new(Bytes::new()))
            .expect("a valid request")
    }
}

impl Workload for QueueQueries {
    fn request(&self, client: usize, seq: u64) -> Request<Full<Bytes>> {
        self.get(&self.paths[(mix(seq ^ (client as u64) << 32) % self.paths.len() as u64) as usize])
    }
}

/// 50 routing rules of the kind a support desk writes: keyword sets per topic and
/// language, a few on contact attributes. Most messages are matched late or not at all,
/// so the router does close to its worst case.
pub fn fifty_rules() -> String {
    let topics = [
        ("warranty", "warranty|guarantee|garantie|garantía"),
        ("returns", "return label|send it back|rücksendung|devolución"),
        ("subscription", "subscription|abo|suscripción|cancel my plan"),
        ("gift cards", "gift card|gutschein|tarjeta regalo"),
        ("b2b", "purchase order|net 30|bulk order|großbestellung"),
        ("privacy", "gdpr|delete my data|datenschutz|privacidad"),
        ("accessibility", "screen reader|accessibility|barrierefrei"),
        ("partnerships", "partnership|affiliate|reseller"),
        ("press", "journalist|press inquiry|interview request"),
        ("careers", "job opening|application|bewerbung"),
    ];
    let teams = ["support", "billing", "technical"];
    let mut rules = String::new();
    for index in 0..47 {
        let (topic, words) = topics[index % topics.len()];
        let team = teams[index % teams.len()];
        let condition = match index % 4 {
            0 => format!("text = '(?i)\\b({words})\\b', language = [\"en\", \"de\", \"es\"]"),
            1 => format!("text = '(?i)\\b({words})\\b', inbox = [\"shop\"]"),
            2 => format!("text = '(?i)\\b({words}) #{index}\\b'"),
            _ => format!("metadata = {{ segment = \"segment-{index}\" }}"),
        };
        rules.push_str(&format!(
            "[[rules]]\nname = \"{topic} {index}\"\nwhen = {{ {condition} }}\nthen = {{ team = \"{team}\", labels = [\"{topic}\"] }}\n\n"
        ));
    }
    rules.push_str(
        r#"[[rules]]
name = "outage"
when = { text = '(?i)\b(outage|is down|not loading|error 50\d)\b' }
then = { team = "technical", priority = "urgent", labels = ["outage"] }

[[rules]]
name = "billing"
when = { text = '(?i)\b(refunds?|invoices?|charged?|payment|rechnung|factura)\b' }
then = { team = "billing", priority = "high", labels = ["billing"] }

[[rules]]
name = "delivery"
when = { text = '(?i)\b(parcel|delivery|tracking|arrived broken|ship)\b' }
then = { team = "support", labels = ["delivery"] }
"#,
    );
    rules
}
