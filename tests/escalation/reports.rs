//! Reports against the facts that made them: a morning of the desk seeded on a manual
//! clock through its three channels and the API. Emma writes through the webhook, Omar
//! by email (a private Dovecot that the daemon reads over IMAP, its replies through the
//! SMTP relay), and the outage comes from a Telegram chat (the fake Bot API); three
//! teams, replies on every channel, an escalation, a transfer, a resolution and a
//! reopening, a breach and a satisfaction answer. Every figure is checked against the
//! numbers the seeding itself implies, the figures of each channel and inbox against a
//! tally kept as the seeding went, each drill-down against its figure, and the CSV
//! against the JSON; the agents' replies are checked where they arrived (the relay, the
//! fake Bot API, the app's callback).

use std::collections::BTreeMap;
use std::sync::Mutex;

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard::model::Role;
use switchboard_connector_core::ChannelKind;
use switchboard_connector_email::{Limits, ParsedMail, parse};
use switchboard_test_mailservers::{CUSTOMER, DEADLINE, Dovecot, SUPPORT, SmtpRelay, eventually, mail};
use switchboard_test_telegram::{FakeTelegram, private_text};

use super::updates::{Callbacks, reply, setup};
use super::{BOT_INBOX, Desk, MAIL_INBOX, READER, Setup, at};

const MINUTE: i64 = 60_000;
const BOT_TOKEN: &str = "5000000001:AAHfake-token-for-the-shop-help-bot";
/// The Telegram chat the outage is reported from.
const OUTAGE_CHAT: i64 = 731_000_001;

fn figures_of<'a>(report: &'a Value, team: &str) -> &'a Value {
    &report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|group| group["key"] == team)
        .unwrap_or_else(|| panic!("no group {team} in {report}"))["figures"]
}

/// The channels the seeded desk has an inbox on.
const SEEDED_CHANNELS: [ChannelKind; 3] = [
    switchboard::channels::registry::known::WEBHOOK,
    switchboard::channels::registry::known::EMAIL,
    switchboard::channels::registry::known::TELEGRAM,
];

/// The key of the seeded desk's inbox on `channel`: its group's key in `by=inbox`.
fn inbox_of(channel: ChannelKind) -> &'static str {
    match channel.as_str() {
        "webhook" => "shop",
        "email" => MAIL_INBOX,
        "telegram" => BOT_INBOX,
        other => panic!("the seeded desk has no {other} inbox"),
    }
}

/// What the seeding did to one conversation.
struct Seeded {
    channel: ChannelKind,
    messages_in: u64,
    /// The agents' replies, in order.
    replies: Vec<String>,
    resolved: bool,
}

/// The desk and the customers' ends of its channels. Every customer message, reply and
/// resolution of the morning goes through here and is tallied per conversation: the
/// figures of each channel and inbox are summed from that tally, not from the report.
struct Morning<'a> {
    desk: &'a Desk,
    dovecot: &'a Dovecot,
    relay: &'a SmtpRelay,
    telegram: &'a FakeTelegram,
    seeded: Mutex<BTreeMap<i64, Seeded>>,
}

impl Morning<'_> {
    /// A customer's message in conversation `id` on `channel`: the first opens it.
    fn inbound(&self, id: i64, channel: ChannelKind) {
        let mut seeded = self.seeded.lock().unwrap();
        let conversation = seeded.entry(id).or_insert(Seeded {
            channel,
            messages_in: 0,
            replies: Vec::new(),
            resolved: false,
        });
        assert_eq!(conversation.channel, channel, "#{id} changed channels");
        conversation.messages_in += 1;
    }

    fn tally(&self, id: i64, change: impl FnOnce(&mut Seeded)) {
        let mut seeded = self.seeded.lock().unwrap();
        change(seeded.get_mut(&id).expect("a conversation the morning opened"));
    }

    /// A customer message through the signed webhook; returns its conversation.
    async fn webhook(&self, event: &str, from: &str, text: &str) -> i64 {
        let id = self.desk.customer(event, from, text, Value::Null).await;
        self.inbound(id, switchboard::channels::registry::known::WEBHOOK);
        id
    }

    /// A satisfaction answer from the app's rating screen, through the webhook.
    async fn webhook_rating(&self, event: &str, from: &str, id: i64, score: u8) {
        let (status, body) = self
            .desk
            .hook(json!({"id": event, "from": {"id": from}, "csat": {"conversation_id": id, "score": score}}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        self.inbound(id, switchboard::channels::registry::known::WEBHOOK);
    }

    /// Omar's mail saying `text`, delivered into the support mailbox as an MTA would;
    /// returns its conversation once the daemon has read it over IMAP.
    async fn mail(&self, subject: &str, message_id: &str, threading: &[(&str, &str)], text: &str) -> i64 {
        let raw = mail(&format!("Omar <{CUSTOMER}>"), subject, message_id, threading, text);
        self.dovecot.deliver(SUPPORT, &raw).await;
        let id = self
            .desk
            .arrived(switchboard::channels::registry::known::EMAIL.as_str(), text)
            .await;
        self.inbound(id, switchboard::channels::registry::known::EMAIL);
        id
    }

    /// A text in a private chat with the bot; returns its conversation once the daemon
    /// has polled it.
    async fn telegram(&self, chat: i64, message_id: i64, text: &str) -> i64 {
        self.telegram
            .push_update(BOT_TOKEN, private_text(chat, message_id, text));
        let id = self
            .desk
            .arrived(switchboard::channels::registry::known::TELEGRAM.as_str(), text)
            .await;
        self.inbound(id, switchboard::channels::registry::known::TELEGRAM);
        id
    }

    async fn reply(&self, id: i64, agent: &str, text: &str) {
        reply(self.desk, id, agent, text).await;
        self.tally(id, |seeded| seeded.replies.push(text.to_owned()));
    }

    async fn resolve(&self, id: i64) {
        self.desk.patch(id, READER, json!({"status": "resolved"})).await;
        self.tally(id, |seeded| seeded.resolved = true);
    }

    /// The agent's mail that the SMTP relay accepted saying `text`, parsed.
    async fn relayed(&self, text: &str) -> ParsedMail {
        eventually(&format!("the relay to take the mail `{text}`"), || async {
            self.relay.sent().into_iter().find_map(|raw| {
                let mail = parse(&raw, Limits::default()).unwrap();
                (mail.automated.is_none() && mail.text.contains(text)).then_some(mail)
            })
        })
        .await
    }

    /// The seeding's figures of one channel's group, as the report names them.
    fn figures(&self, channel: ChannelKind) -> Value {
        let seeded = self.seeded.lock().unwrap();
        let of = || seeded.values().filter(|seeded| seeded.channel == channel);
        json!({
            // Every conversation was opened this morning.
            "opened": of().count(),
            "resolved": of().filter(|seeded| seeded.resolved).count(),
            "messages_in": of().map(|seeded| seeded.messages_in).sum::<u64>(),
            "messages_out": of().map(|seeded| seeded.replies.len()).sum::<usize>(),
        })
    }

    /// The conversations of one channel, and those of them resolved.
    fn conversations(&self, channel: ChannelKind) -> (Vec<i64>, Vec<i64>) {
        let seeded = self.seeded.lock().unwrap();
        let of = || seeded.iter().filter(|(_, seeded)| seeded.channel == channel);
        (
            of().map(|(id, _)| *id).collect(),
            of().filter(|(_, seeded)| seeded.resolved).map(|(id, _)| *id).collect(),
        )
    }

    /// The agents' replies on one channel.
    fn replies(&self, channel: ChannelKind) -> Vec<String> {
        let seeded = self.seeded.lock().unwrap();
        seeded
            .values()
            .filter(|seeded| seeded.channel == channel)
            .flat_map(|seeded| seeded.replies.clone())
            .collect()
    }
}

#[tokio::test]
async fn every_report_figure_is_the_one_the_seeded_facts_imply_and_its_conversations_are_listed() {
    let callbacks = Callbacks::start().await;
    let dovecot = Dovecot::start().await;
    let relay = SmtpRelay::start(&dovecot).await;
    let telegram = FakeTelegram::start().await;
    telegram.add_bot(BOT_TOKEN, 5_000_000_001, "ShopHelpBot");
    let t0 = at("2026-11-30T09:00:00Z");
    let desk = Desk::start_with(
        t0,
        &[
            ("ana", "support", Role::Agent, true),
            ("ben", "billing", Role::Agent, false),
        ],
        &Setup {
            email: Some((&dovecot, &relay)),
            telegram: Some((&telegram, BOT_TOKEN)),
            ..setup(&callbacks)
        },
    )
    .await;
    let step = |minutes: i64| desk.clock.set(t0 + minutes * MINUTE);
    let morning = Morning {
        desk: &desk,
        dovecot: &dovecot,
        relay: &relay,
        telegram: &telegram,
        seeded: Mutex::new(BTreeMap::new()),
    };

    // 09:00 Emma on the app and Omar by mail; 09:30 an outage on Telegram goes to
    // technical (30 min SLA). Each message is stored at the clock's time when its
    // reader takes it: the clock stays until it has arrived.
    let parcel = morning.webhook("p-1", "emma", "Where is my parcel?").await;
    let charged = morning
        .mail("Order 5521", "c-1@omar.test", &[], "I was charged twice")
        .await;
    assert_eq!(desk.conversation(charged).await["team"]["key"], "billing");
    step(10);
    morning.reply(parcel, "ana", "It left the warehouse today.").await;
    // Emma writes again: she waits for a next response from 09:15.
    step(15);
    assert_eq!(
        morning.webhook("p-2", "emma", "Thanks! When will it arrive?").await,
        parcel
    );
    step(20);
    morning.reply(charged, "ben", "Refunding the second charge.").await;
    step(30);
    let outage = morning.telegram(OUTAGE_CHAT, 1, "The site is down for me").await;
    assert_eq!(desk.conversation(outage).await["team"]["key"], "technical");
    step(40);
    let (status, body) = desk
        .escalate(
            parcel,
            READER,
            json!({"to": {"tier": "next"}, "summary": "Courier lost it; needs L1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Answered at 09:45, thirty minutes after she asked.
    step(45);
    morning.reply(parcel, READER, "Tomorrow by noon.").await;
    step(50);
    morning.resolve(parcel).await;
    callbacks.wait(parcel, 1).await;
    step(55);
    // The outage's first response is at 80 % of its 30 minutes (09:54): warned now, and
    // seen before the clock moves on (a scheduler that first looks at 10:00 records the
    // breach alone).
    desk.events(outage, "sla.warning", 1).await;
    morning.webhook_rating("p-csat", "emma", parcel, 4).await;
    step(60);
    morning.resolve(charged).await;
    // Omar answers Ben's mail (as the relay took it for his mailbox): that reopens.
    step(65);
    let answered = morning.relayed("Refunding the second charge.").await;
    let answered_id = format!("<{}>", answered.message_id.unwrap());
    let threading = [
        ("In-Reply-To", answered_id.as_str()),
        ("References", &format!("<c-1@omar.test> {answered_id}")),
    ];
    let again = morning
        .mail(
            &answered.subject.unwrap(),
            "c-2@omar.test",
            &threading,
            "The second charge is still there",
        )
        .await;
    assert_eq!(again, charged);
    desk.patch(
        charged,
        READER,
        json!({"team": "support", "summary": "Card issue, not billing"}),
    )
    .await;
    // The outage waited past its 30 minutes: breached at 10:00; answered at 10:10, late,
    // and resolved at 10:20, never passed on.
    step(70);
    desk.events(outage, "sla.breached", 1).await;
    morning.reply(outage, READER, "Fixed: the site is back.").await;
    step(80);
    morning.resolve(outage).await;
    step(90);

    let range = "from=2026-11-30&to=2026-12-01&time_zone=Europe/Berlin";
    let report = desk.get(&format!("/reports/overview?{range}&by=team"), READER).await;
    let total = &report["total"];
    // What the seeding implies, conversation by conversation.
    assert_eq!(total["opened"], 3);
    assert_eq!(total["resolved"], 3, "each once resolved");
    assert_eq!(total["reopened"], 1, "charged, by Omar's second message");
    // Every duration falls in the office's hours (09:00-18:00 in Berlin): business time
    // is calendar time here (the unit tests and the next test cross a closing).
    let durations = |count: usize, median: i64, p90: i64, average: i64| {
        json!({
            "count": count,
            "median_ms": median, "p90_ms": p90, "average_ms": average,
            "business_median_ms": median, "business_p90_ms": p90, "business_average_ms": average,
        })
    };
    // Parcel in 10 minutes, charged in 20, the outage in 40 (09:30 → 10:10).
    assert_eq!(
        total["first_response"],
        durations(3, 20 * MINUTE, 40 * MINUTE, (10 + 20 + 40) * MINUTE / 3)
    );
    // Emma's question of 09:15, answered at 09:45.
    assert_eq!(
        total["next_response"],
        durations(1, 30 * MINUTE, 30 * MINUTE, 30 * MINUTE)
    );
    // Resolved now: parcel (09:00 → 09:50) and the outage (09:30 → 10:20); charged was
    // reopened.
    assert_eq!(total["resolution"], durations(2, 50 * MINUTE, 50 * MINUTE, 50 * MINUTE));
    assert_eq!(
        (total["escalations"].clone(), total["escalated"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(
        (
            total["escalations_hierarchical"].clone(),
            total["escalations_functional"].clone()
        ),
        (json!(1), json!(0)),
        "parcel went up a tier of support"
    );
    assert_eq!(
        (total["transfers"].clone(), total["transferred"].clone()),
        (json!(1), json!(1))
    );
    // An escalation passes a case on as a transfer does: only the outage was not.
    assert_eq!(total["resolved_without_transfer"], json!(1.0 / 3.0));
    // Parcel and charged were passed on once each, the outage never.
    assert_eq!(total["transfers_per_conversation"], json!(2.0 / 3.0));
    assert_eq!(total["sla_breaches"], 1);
    assert_eq!(total["breached"], 1);
    // First responses: parcel and charged within their hour, the outage past its 30
    // minutes (its late answer is decided by the breach, not met again). Emma's next
    // response within two hours; parcel resolved within its days.
    // The outage was warned at 80 % of its 30 minutes (09:54), seen at 09:55.
    let clock = |met: usize, breached: usize, share: Value, warnings: usize| json!({"met": met, "breached": breached, "share_met": share, "warnings": warnings});
    assert_eq!(total["sla"]["first_response"], clock(2, 1, json!(2.0 / 3.0), 1));
    assert_eq!(total["sla_warnings"], 1);
    assert_eq!(total["sla"]["next_response"], clock(1, 0, json!(1.0), 0));
    assert_eq!(total["sla"]["resolution"], clock(1, 0, json!(1.0), 0));
    // The desk's 30-day cap runs on every conversation: met by parcel and the outage
    // (charged's runs again since it reopened).
    assert_eq!(total["sla"]["max_open"], clock(2, 0, json!(1.0), 0));
    assert_eq!(
        total["breach_actions"],
        json!({"escalated": 0, "priority_raised": 0, "supervisors_notified": 1, "labelled_overdue": 0}),
        "the around-the-clock policy notifies"
    );
    // Four customer messages (Emma's two, Omar's mail, the outage's chat), Omar's second
    // mail and Emma's rating; four agents' replies (two to Emma, Ben's to Omar, the
    // outage's late one); the escalation's and the transfer's summaries as notes.
    assert_eq!(total["messages_in"], 6);
    assert_eq!(total["messages_out"], 4);
    assert_eq!(total["notes"], 2);
    assert_eq!(total["csat"]["answers"], 1);
    assert_eq!(total["csat"]["average"], 4.0);
    assert_eq!(total["csat"]["distribution"]["4"], 1);
    // Asked on each resolution: parcel, charged (before it reopened) and the outage.
    assert_eq!(total["csat"]["asked"], 3, "{}", total["csat"]);
    assert_eq!(total["csat"]["response_rate"], json!(1.0 / 3.0));

    // Grouped by each conversation's team now: parcel went up to support-l1, charged
    // moved to support, the outage stayed with technical.
    assert_eq!(figures_of(&report, "support-l1")["opened"], 1);
    assert_eq!(figures_of(&report, "support")["reopened"], 1);
    assert_eq!(figures_of(&report, "technical")["sla_breaches"], 1);
    let opened: u64 = report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|group| group["figures"]["opened"].as_u64().unwrap())
        .sum();
    assert_eq!(opened, 3, "the groups add up to the total");

    // Every conversation-naming figure lists exactly as many conversations as it counts.
    let expected: BTreeMap<&str, Vec<i64>> = BTreeMap::from([
        ("opened", vec![parcel, charged, outage]),
        ("resolved", vec![parcel, charged, outage]),
        ("reopened", vec![charged]),
        ("first_response", vec![parcel, charged, outage]),
        ("next_response", vec![parcel]),
        ("resolution", vec![parcel, outage]),
        ("escalated", vec![parcel]),
        ("transferred", vec![charged]),
        ("resolved_without_transfer", vec![outage]),
        ("breached", vec![outage]),
        ("csat_answers", vec![parcel]),
        ("csat_asked", vec![parcel, charged, outage]),
    ]);
    for (figure, ids) in &expected {
        let listed = desk
            .get(
                &format!("/reports/conversations?{range}&figure={figure}&limit=1"),
                READER,
            )
            .await;
        assert_eq!(listed["count"], ids.len(), "{figure}: {listed}");
        // Paged one at a time by `after`.
        let mut all: Vec<i64> = Vec::new();
        let mut after = 0;
        loop {
            let cursor = if after > 0 {
                format!("&after={after}")
            } else {
                String::new()
            };
            let page = desk
                .get(
                    &format!("/reports/conversations?{range}&figure={figure}&limit=1{cursor}"),
                    READER,
                )
                .await;
            let ids: Vec<i64> = page["conversation_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|id| id.as_i64().unwrap())
                .collect();
            all.extend(&ids);
            match page["next_after"].as_i64() {
                Some(next) => after = next,
                None => break,
            }
        }
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(all, sorted, "{figure}");
    }
    let technical = desk
        .get(
            &format!("/reports/conversations?{range}&figure=opened&by=team&group=technical"),
            READER,
        )
        .await;
    assert_eq!(technical["conversation_ids"], json!([outage]));

    // The CSV holds the JSON's numbers.
    let response = desk
        .http
        .get(desk.url(&format!("/api/v1/reports/overview?{range}&by=team&format=csv")))
        .bearer_auth(&desk.tokens[READER])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = response.text().await.unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(&header[..4], ["row", "group", "from", "to"]);
    let rows: BTreeMap<String, Vec<String>> = lines
        .map(|line| {
            let cells: Vec<String> = line.split(',').map(str::to_owned).collect();
            let label = if cells[0] == "total" {
                "total".to_owned()
            } else {
                cells[1].clone()
            };
            (label, cells)
        })
        .collect();
    let cell = |row: &str, column: &str| rows[row][header.iter().position(|name| *name == column).unwrap()].clone();
    assert_eq!(cell("total", "opened"), "3");
    assert_eq!(cell("total", "first_response_median_ms"), (20 * MINUTE).to_string());
    assert_eq!(cell("total", "resolved_without_transfer"), "0.3333");
    assert_eq!(cell("technical", "sla_breaches"), "1");
    assert_eq!(cell("total", "sla_first_response_share_met"), "0.6667");
    assert_eq!(cell("total", "next_response_median_ms"), (30 * MINUTE).to_string());
    assert_eq!(cell("total", "from"), "2026-11-29T23:00:00.000Z");
    assert_eq!(rows.len(), 1 + report["groups"].as_array().unwrap().len());

    // By the hour of Berlin's day: 24 buckets; each fact in the hour it happened.
    let hourly = desk
        .get(&format!("/reports/overview?{range}&interval=hour"), READER)
        .await;
    let series = hourly["series"].as_array().unwrap();
    assert_eq!(series.len(), 24);
    assert_eq!(series[0]["from"], "2026-11-29T23:00:00.000Z");
    let of = |hour: usize, figure: &str| series[hour]["figures"][figure].as_u64().unwrap();
    // 10:00 in Berlin is 09:00 UTC: all three opened then, parcel resolved at 09:50;
    // charged (10:00) and the outage (10:20) in the next hour.
    assert_eq!((of(10, "opened"), of(10, "resolved")), (3, 1));
    assert_eq!((of(11, "opened"), of(11, "resolved")), (0, 2));
    let opened: u64 = (0..24).map(|hour| of(hour, "opened")).sum();
    assert_eq!(opened, 3, "the buckets add up to the total");
    let messages: u64 = (0..24).map(|hour| of(hour, "messages_in")).sum();
    assert_eq!(messages, 6);
    let replies: u64 = (0..24).map(|hour| of(hour, "messages_out")).sum();
    assert_eq!(replies, 4);

    // By channel and by inbox (one inbox a channel here): each group's figures are the
    // tally of its own conversations, and its drill-down lists exactly them.
    for (by, key) in [
        ("channel", ChannelKind::as_str as fn(ChannelKind) -> &'static str),
        ("inbox", inbox_of),
    ] {
        let grouped = desk.get(&format!("/reports/overview?{range}&by={by}"), READER).await;
        assert_eq!(grouped["groups"].as_array().unwrap().len(), 3, "{grouped}");
        for channel in SEEDED_CHANNELS {
            let group = key(channel);
            let figures = figures_of(&grouped, group);
            let seen = json!({
                "opened": figures["opened"], "resolved": figures["resolved"],
                "messages_in": figures["messages_in"], "messages_out": figures["messages_out"],
            });
            assert_eq!(seen, morning.figures(channel), "{by} {group}");
            let (opened, resolved) = morning.conversations(channel);
            for (figure, ids) in [("opened", opened), ("resolved", resolved)] {
                let listed = desk
                    .get(
                        &format!("/reports/conversations?{range}&figure={figure}&by={by}&group={group}"),
                        READER,
                    )
                    .await;
                assert_eq!(listed["conversation_ids"], json!(ids), "{figure} of {by} {group}");
            }
        }
        assert_eq!(
            figures_of(&grouped, key(switchboard::channels::registry::known::EMAIL))["reopened"],
            1,
            "charged"
        );
    }
    // The tally adds up to the totals checked above.
    let tallied = |figure: &str| -> u64 {
        switchboard::channels::registry::REGISTERED
            .iter()
            .map(|channel| morning.figures(*channel)[figure].as_u64().unwrap())
            .sum()
    };
    assert_eq!(
        (tallied("opened"), tallied("messages_in"), tallied("messages_out")),
        (3, 6, 4)
    );

    // The queue now, per team the reader sees (an admin: every team).
    let queue = report["queue"].as_array().unwrap();
    let teams: Vec<&str> = queue.iter().map(|team| team["team"].as_str().unwrap()).collect();
    for team in ["support", "support-l1", "billing", "technical"] {
        assert!(teams.contains(&team), "{team} in {queue:?}");
    }
    // Waiting: the open conversations of the team nobody holds, as the list shows them.
    for team in queue {
        let key = team["team"].as_str().unwrap();
        let listed = desk
            .get(&format!("/conversations?team={key}&status=open&assignee=none"), READER)
            .await;
        assert_eq!(
            team["waiting"],
            listed["conversations"].as_array().unwrap().len(),
            "{team}"
        );
        assert_eq!(team["oldest_waiting_ms"].is_null(), team["waiting"] == 0, "{team}");
    }

    // The replies really left on their channels: Emma's reached the app, Ben's the SMTP
    // relay (Omar answered it above), the outage's the chat.
    for text in morning.replies(switchboard::channels::registry::known::WEBHOOK) {
        callbacks.wait_for_reply(parcel, &text).await;
    }
    for text in morning.replies(switchboard::channels::registry::known::EMAIL) {
        let mail = morning.relayed(&text).await;
        assert!(mail.subject.unwrap().ends_with(&format!("[#{charged}]")));
    }
    for text in morning.replies(switchboard::channels::registry::known::TELEGRAM) {
        telegram
            .wait_until(DEADLINE, &format!("the bot to send `{text}`"), |fake| {
                fake.sent_messages(BOT_TOKEN)
                    .into_iter()
                    .find(|sent| sent.chat_id() == Some(OUTAGE_CHAT) && sent.text().as_deref() == Some(text.as_str()))
            })
            .await;
    }

    // Agents do not read reports; bad parameters name themselves.
    let (status, _) = desk
        .call(reqwest::Method::GET, &format!("/reports/overview?{range}"), "ana", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for (query, field) in [
        ("from=2026-12-01&to=2026-11-30", "to"),
        ("from=yesterday&to=2026-12-01", "from"),
        ("from=2026-11-30&to=2026-12-01&by=mood", "by"),
        ("from=2026-11-30&to=2026-12-01&time_zone=Mars/Olympus", "time_zone"),
        ("from=2025-01-01&to=2026-12-01", "to"),
        ("from=2026-01-01&to=2026-12-01&interval=hour", "interval"),
        ("from=2026-11-30&to=2026-12-01&interval=fortnight", "interval"),
    ] {
        let (status, body) = desk
            .call(
                reqwest::Method::GET,
                &format!("/reports/overview?{query}"),
                READER,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("`{field}`")),
            "{body}"
        );
    }
    desk.stop().await;
}

#[tokio::test]
async fn a_response_across_a_closing_is_measured_in_the_teams_business_hours() {
    let callbacks = Callbacks::start().await;
    // Monday 17:50 in Berlin: ten minutes before billing's office closes at 18:00.
    let t0 = at("2026-11-30T16:50:00Z");
    let desk = Desk::start_with(t0, &[("ben", "billing", Role::Agent, true)], &setup(&callbacks)).await;
    let charged = desk.customer("c-1", "omar", "I was charged twice", Value::Null).await;
    // Answered on Tuesday at 09:10 and resolved at 09:40, Berlin time.
    desk.clock.set(at("2026-12-01T08:10:00Z"));
    let (status, body) = desk
        .call(
            reqwest::Method::POST,
            &format!("/conversations/{charged}/messages"),
            "ben",
            Some(json!({"text": "Refunded."})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    desk.clock.set(at("2026-12-01T08:40:00Z"));
    desk.patch(charged, "ben", json!({"status": "resolved"})).await;

    let report = desk
        .get(
            "/reports/overview?from=2026-11-30&to=2026-12-02&time_zone=Europe/Berlin&by=team",
            READER,
        )
        .await;
    let billing = figures_of(&report, "billing");
    // 15 h 20 min on the calendar; 10 minutes on Monday and 10 on Tuesday in the office.
    assert_eq!(billing["first_response"]["median_ms"], 920 * MINUTE);
    assert_eq!(billing["first_response"]["business_median_ms"], 20 * MINUTE);
    assert_eq!(billing["resolution"]["median_ms"], 950 * MINUTE);
    assert_eq!(billing["resolution"]["business_median_ms"], 50 * MINUTE);
    // The SLA's hour is business time too: met.
    assert_eq!(billing["sla"]["first_response"]["met"], 1);
    assert_eq!(billing["sla"]["first_response"]["share_met"], 1.0);
    desk.stop().await;
}
