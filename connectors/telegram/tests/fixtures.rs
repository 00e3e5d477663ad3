//! Every Telegram fixture (real updates from public bot libraries, see
//! tests/fixtures/telegram/SOURCES.md) goes through normalization without a panic, and
//! what each kind becomes is asserted.

use std::path::{Path, PathBuf};

use serde_json::Value;
use switchboard_connector_telegram::{BotIdentity, Normalized, normalize};
use teloxide::types::Update;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/telegram")
}

fn bot() -> BotIdentity {
    BotIdentity {
        id: 5_000_000_001,
        username: "ShopHelpBot".into(),
    }
}

/// The update a fixture holds, with an `update_id` where the file left it out.
fn update(name: &str) -> Update {
    let mut json: Value = serde_json::from_str(&std::fs::read_to_string(dir().join(name)).unwrap()).unwrap();
    if json.get("update_id").is_none() {
        json["update_id"] = 1.into();
    }
    // From text: teloxide's update reader needs borrowed keys, which a `Value` lacks.
    serde_json::from_str(&json.to_string()).unwrap_or_else(|err| panic!("{name}: {err}"))
}

fn message(
    name: &str,
) -> (
    switchboard_connector_core::InboundMessage,
    Vec<switchboard_connector_telegram::FileRef>,
) {
    match normalize(&update(name), &bot()) {
        Normalized::Message { message, files, .. } => (*message, files),
        other => panic!("{name}: expected a message, got {other:?}"),
    }
}

#[test]
fn every_update_fixture_normalizes_without_a_panic() {
    let mut count = 0;
    for entry in std::fs::read_dir(dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if !name.contains("-update-") && !name.starts_with("nbt-") {
            continue;
        }
        let json: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        // The webhook samples file is a list of updates.
        let updates = match json {
            Value::Array(items) => items,
            one => vec![one],
        };
        for mut item in updates {
            if item.get("update_id").is_none() {
                item["update_id"] = 1.into();
            }
            if let Ok(update) = serde_json::from_str::<Update>(&item.to_string()) {
                let _ = normalize(&update, &bot());
                count += 1;
            }
        }
    }
    assert!(count >= 35, "only {count} updates read");
}

#[test]
fn a_private_text_is_a_message_of_its_sender() {
    let (message, files) = message("tlx-update-private-text.json");
    assert!(files.is_empty());
    assert!(message.thread.is_none(), "a private chat is its own conversation");
    assert!(!message.text.is_empty());
    let sender: u64 = message.sender.external_id.parse().unwrap();
    assert!(sender > 0);
    assert!(
        message.external_id.contains(':'),
        "chat:message key: {}",
        message.external_id
    );
}

#[test]
fn photos_documents_voice_and_video_are_files_to_fetch() {
    let (photo, files) = message("ntg-update-photo.json");
    assert_eq!(files.len(), 1, "only the largest size");
    assert_eq!(files[0].content_type, "image/jpeg");
    assert!(!photo.text.is_empty(), "the caption is the text");
    let (_, files) = message("ntg-update-document.json");
    assert_eq!(files.len(), 1);
    assert!(files[0].filename.ends_with(".pdf"), "{}", files[0].filename);
    assert_eq!(files[0].content_type, "application/pdf");
    let (_, files) = message("ntg-update-voice.json");
    assert_eq!(files[0].content_type, "audio/ogg");
    let (_, files) = message("ntg-update-video.json");
    assert_eq!(files.len(), 1);
}

#[test]
fn stickers_locations_and_contacts_become_text() {
    assert!(message("ntg-update-sticker.json").0.text.starts_with("[sticker"));
    let (location, _) = message("ntg-update-location.json");
    assert!(location.text.starts_with("[location]"), "{}", location.text);
    assert!(location.details.contains_key("location"));
    let (contact, _) = message("ntg-update-contact.json");
    assert!(contact.text.starts_with("[contact]"), "{}", contact.text);
}

#[test]
fn an_edit_names_the_message_it_replaces() {
    let (edit, _) = message("ntg-update-edited_message.json");
    let original = edit.edits.clone().expect("an edit");
    assert!(edit.external_id.starts_with(&original) && edit.external_id != original);
}

#[test]
fn forwards_say_where_they_come_from() {
    let (forward, _) = message("ntg-update-message_forward_origin.json");
    assert!(forward.text.starts_with("[forwarded from "), "{}", forward.text);
}

#[test]
fn group_messages_count_only_when_they_address_the_bot() {
    // A command in a forum topic: taken, and the topic kept.
    let (command, _) = message("tlx-update-supergroup-reply-bot_command-thread.json");
    let thread = command.thread.expect("a group conversation has a thread");
    assert!(thread.starts_with("chat:-100"), "{thread}");
    // A dice roll addressed to nobody: ignored.
    assert!(matches!(
        normalize(&update("tlx-update-supergroup-dice.json"), &bot()),
        Normalized::Ignored(_)
    ));
    // A pinned-message service message: ignored.
    assert!(matches!(
        normalize(&update("tlx-update-supergroup-pinned_message.json"), &bot()),
        Normalized::Ignored(_)
    ));
}

#[test]
fn a_blocked_bot_marks_the_customer_unreachable() {
    match normalize(&update("tlx-update-my_chat_member-kicked.json"), &bot()) {
        Normalized::Unreachable { external_id, .. } => assert!(external_id.parse::<i64>().is_ok()),
        other => panic!("expected unreachable, got {other:?}"),
    }
}

#[test]
fn button_presses_are_answered_and_recorded() {
    match normalize(&update("ntg-update-callback_query.json"), &bot()) {
        Normalized::Callback { query_id, message } => {
            assert!(!query_id.is_empty());
            assert!(message.text.starts_with("[button]"), "{}", message.text);
        }
        other => panic!("expected a callback, got {other:?}"),
    }
}

#[test]
fn channel_posts_and_unknown_kinds_are_skipped() {
    for name in [
        "ntg-update-channel_post.json",
        "ntg-update-edited_channel_post.json",
        "tlx-update-unknown-kind.json",
        "ntg-update-chat_join_request.json",
        "tlx-update-message_reaction.json",
    ] {
        assert!(
            matches!(normalize(&update(name), &bot()), Normalized::Ignored(_)),
            "{name}"
        );
    }
}
