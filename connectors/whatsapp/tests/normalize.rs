//! Every WhatsApp fixture (real webhook bodies from pywa, see tests/fixtures/SOURCES.md)
//! normalizes without error, and what each kind becomes is asserted.

use std::path::{Path, PathBuf};

use serde_json::json;
use switchboard_connector_core::{DeliveryReport, DeliveryState, InboundMessage};
use switchboard_connector_whatsapp::{Item, MediaRef, normalize};

/// The phone number id every fixture is addressed to.
const NUMBER: &str = "1122334455667";

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn items(name: &str) -> Vec<Item> {
    let body = std::fs::read(dir().join(name)).unwrap_or_else(|err| panic!("{name}: {err}"));
    normalize(&body, NUMBER).unwrap_or_else(|err| panic!("{name}: {err}"))
}

fn message(name: &str) -> (InboundMessage, Option<MediaRef>) {
    match <[Item; 1]>::try_from(items(name)) {
        Ok([Item::Message { message, media }]) => (*message, media),
        Ok([other]) => panic!("{name}: expected a message, got {other:?}"),
        Err(items) => panic!("{name}: expected one item, got {items:?}"),
    }
}

fn ignored(name: &str) -> String {
    match <[Item; 1]>::try_from(items(name)) {
        Ok([Item::Ignored(reason)]) => reason,
        other => panic!("{name}: expected one ignored item, got {other:?}"),
    }
}

fn report(name: &str) -> DeliveryReport {
    match <[Item; 1]>::try_from(items(name)) {
        Ok([Item::Status(report)]) => report,
        other => panic!("{name}: expected one status, got {other:?}"),
    }
}

#[test]
fn every_fixture_normalizes_and_none_for_another_number() {
    let mut count = 0;
    for entry in std::fs::read_dir(dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "json") {
            continue;
        }
        let body = std::fs::read(&path).unwrap();
        let name = path.display();
        let items = normalize(&body, NUMBER).unwrap_or_else(|err| panic!("{name}: {err}"));
        assert!(!items.is_empty(), "{name}");
        let elsewhere = normalize(&body, "999").unwrap();
        assert!(
            elsewhere.iter().all(|item| matches!(item, Item::Ignored(_))),
            "{name}: {elsewhere:?}"
        );
        count += 1;
    }
    assert!(count >= 19, "only {count} fixtures");
}

#[test]
fn a_text_names_its_sender_by_phone_without_vouching() {
    let (message, media) = message("whatsapp-cloud-messages-text.json");
    assert_eq!(message.external_id, "wamid.xyzxyz");
    assert_eq!(message.text, "Body Text");
    assert_eq!(message.sender.external_id, "972987654321");
    assert_eq!(message.sender.phone.as_deref(), Some("+972987654321"));
    assert_eq!(message.sender.name.as_deref(), Some("Test Name"));
    assert!(!message.sender.phone_verified);
    assert_eq!(message.details["timestamp_ms"], json!(1_697_043_223_000i64));
    assert_eq!(media, None);
    assert_eq!(message.opt_out, None);
}

#[test]
fn a_reply_keeps_the_quoted_message_for_the_agent_without_threading_on_it() {
    let (message, _) = message("whatsapp-cloud-messages-reply-context.json");
    assert_eq!(message.text, "replied text");
    assert_eq!(message.details["quotes"], "wamid.xyzxyz==");
    assert!(message.hints.is_empty(), "{:?}", message.hints);
}

#[test]
fn media_messages_name_the_file_to_fetch() {
    let (image, media) = message("whatsapp-cloud-messages-image.json");
    assert_eq!(image.text, "");
    assert_eq!(
        media,
        Some(MediaRef {
            media_id: "65463453".into(),
            mime_type: "image/jpeg".into(),
            filename: "image-65463453.jpg".into(),
        })
    );

    let (voice, media) = message("whatsapp-cloud-messages-voice-audio.json");
    let media = media.unwrap();
    assert_eq!(media.mime_type, "audio/ogg; codecs=opus");
    assert_eq!(media.filename, "audio-1234567890987654321.ogg");
    assert_eq!(voice.details["voice"], json!(true));

    let (video, media) = message("whatsapp-cloud-messages-video.json");
    assert_eq!(video.text, "caption");
    assert_eq!(video.details["forwarded"], json!(true));
    assert_eq!(media.unwrap().filename, "video-765756756.mp4");

    let (document, media) = message("whatsapp-cloud-messages-document.json");
    assert_eq!(document.text, "caption");
    let media = media.unwrap();
    assert_eq!(
        (media.filename.as_str(), media.mime_type.as_str()),
        ("filename.pdf", "application/pdf")
    );

    let (sticker, media) = message("whatsapp-cloud-messages-sticker.json");
    assert_eq!(sticker.text, "[sticker]");
    assert_eq!(media.unwrap().mime_type, "image/webp");
}

#[test]
fn a_location_reads_as_text_and_keeps_its_numbers() {
    let (message, _) = message("whatsapp-cloud-messages-location.json");
    assert_eq!(
        message.text,
        "[location] Facebook HQ, 1 Hacker Way, Menlo Park, CA 94025 (37.4611978, -122.2164385)"
    );
    let location = &message.details["location"];
    assert_eq!(location["latitude"], json!(37.4611978));
    assert_eq!(location["longitude"], json!(-122.2164385));
    assert_eq!(location["name"], "Facebook HQ");
}

#[test]
fn shared_contacts_read_as_a_summary() {
    let (message, _) = message("whatsapp-cloud-messages-contacts.json");
    assert_eq!(
        message.text,
        "[contacts] Chandler Bing +1 555-555-5555; Monica +1 666-666-6666; Rachel Green +1 777-777-7777"
    );
    assert_eq!(message.details["contacts"].as_array().unwrap().len(), 3);
}

#[test]
fn buttons_that_are_not_csat_read_as_their_title() {
    let (button, _) = message("whatsapp-cloud-messages-interactive-button_reply.json");
    assert_eq!((button.text.as_str(), button.csat.clone()), ("title", None));
    assert_eq!(button.details["button_id"], "callback_data");
    assert_eq!(button.details["quotes"], "wamid.xyzxyz");

    let (list, _) = message("whatsapp-cloud-messages-interactive-list_reply.json");
    assert_eq!((list.text.as_str(), list.csat.clone()), ("title", None));

    let (quick, _) = message("whatsapp-cloud-messages-button-quick_reply.json");
    assert_eq!(quick.text, "title");
    assert_eq!(quick.details["button_payload"], "callback_data");
}

#[test]
fn a_reaction_says_which_emoji_on_which_message_and_its_removal_is_ignored() {
    let (message, _) = message("whatsapp-cloud-messages-reaction.json");
    assert_eq!(message.text, "[reaction] 😮 to message wamid.yzxyzx=");
    assert_eq!(
        message.details["reaction"],
        json!({"emoji": "😮", "message_id": "wamid.yzxyzx="})
    );
    assert!(ignored("whatsapp-cloud-messages-reaction-removed.json").contains("removed"));
}

#[test]
fn an_unsupported_message_is_ignored_with_its_reason() {
    assert!(ignored("whatsapp-cloud-messages-unsupported.json").contains("Message type unknown"));
}

#[test]
fn statuses_become_delivery_reports() {
    for (name, state, at) in [
        (
            "whatsapp-cloud-statuses-sent.json",
            DeliveryState::Sent,
            1_698_266_945_000,
        ),
        (
            "whatsapp-cloud-statuses-delivered.json",
            DeliveryState::Delivered,
            1_698_266_945_000,
        ),
        (
            "whatsapp-cloud-statuses-read.json",
            DeliveryState::Read,
            1_689_380_458_000,
        ),
    ] {
        assert_eq!(
            report(name),
            DeliveryReport {
                external_id: "wamid.xyzxyz".into(),
                state,
                error: None,
                at_ms: Some(at),
            },
            "{name}"
        );
    }
    let failed = report("whatsapp-cloud-statuses-failed.json");
    assert_eq!(failed.state, DeliveryState::Failed);
    assert_eq!(
        failed.error.as_deref(),
        Some(
            "130472 User's number is part of an experiment: Failed to send message because this user's phone number is part of an experiment"
        )
    );
}
