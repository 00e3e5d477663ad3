//! The export's archive: a gzip'd tar holding `contact-<id>/contact.json` (everything
//! stored about the person) and each attachment's bytes under
//! `contact-<id>/attachments/<attachment id>-<name>`, which the JSON names as `file`.
//! tar and gzip because every system opens them and flate2 was already in the build;
//! built in memory: one person's record, not the desk's.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

use crate::model::Timestamp;
use crate::store::ContactExport;

/// The export format's name and version, the JSON's first key.
pub const FORMAT: &str = "switchboard.contact-export/1";
/// The longest name part of an attachment's path in the archive.
const MAX_NAME: usize = 100;

/// How much an export holds, for the audit trail and the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub conversations: usize,
    pub messages: usize,
    pub attachments: usize,
    pub events: usize,
}

pub fn counts(export: &ContactExport) -> Counts {
    let conversations = &export.conversations;
    Counts {
        conversations: conversations.len(),
        messages: conversations.iter().map(|c| c.messages.len()).sum(),
        attachments: conversations
            .iter()
            .flat_map(|c| &c.messages)
            .map(|m| m.attachments.len())
            .sum(),
        events: conversations.iter().map(|c| c.events.len()).sum(),
    }
}

/// A file name safe as a path part on any system: letters, digits, `.`, `-`, `_` kept,
/// anything else `_`, no leading dot, bounded; the attachment id before it keeps names
/// unique.
fn safe_name(name: &str) -> String {
    let mut safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_NAME)
        .collect();
    while safe.starts_with('.') {
        safe.replace_range(..1, "_");
    }
    if safe.is_empty() { "file".into() } else { safe }
}

/// The archive's folder for the contact.
pub fn folder(contact_id: i64) -> String {
    format!("contact-{contact_id}")
}

/// The export's JSON document, with each attachment's path in the archive.
pub fn document(export: &ContactExport, now: i64) -> Value {
    let mut conversations = serde_json::to_value(&export.conversations).unwrap_or(Value::Array(Vec::new()));
    let files = export
        .conversations
        .iter()
        .flat_map(|c| &c.messages)
        .flat_map(|m| &m.attachments);
    let mut paths = files.map(|file| format!("attachments/{}-{}", file.id, safe_name(&file.filename)));
    // Walked in the same order as `files`: conversations, messages, attachments.
    if let Value::Array(conversations) = &mut conversations {
        for conversation in conversations {
            let Some(Value::Array(messages)) = conversation.get_mut("messages") else {
                continue;
            };
            for message in messages {
                let Some(Value::Array(attachments)) = message.get_mut("attachments") else {
                    continue;
                };
                for attachment in attachments {
                    if let (Value::Object(object), Some(path)) = (attachment, paths.next()) {
                        object.insert("file".into(), Value::String(path));
                    }
                }
            }
        }
    }
    json!({
        "format": FORMAT,
        "exported_at": Timestamp(now),
        "counts": counts(export),
        "contact": export.contact,
        "identities": export.identities,
        "conversations": conversations,
    })
}

/// The archive's bytes (`.tar.gz`).
pub fn archive(export: &ContactExport, now: i64) -> std::io::Result<Vec<u8>> {
    let folder = folder(export.contact.id);
    let mtime = u64::try_from(now / 1000).unwrap_or(0);
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    let mut add = |path: &str, bytes: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, format!("{folder}/{path}"), bytes)
    };
    let json = serde_json::to_vec_pretty(&document(export, now)).map_err(std::io::Error::other)?;
    add("contact.json", &json)?;
    for conversation in &export.conversations {
        for message in &conversation.messages {
            for file in &message.attachments {
                add(
                    &format!("attachments/{}-{}", file.id, safe_name(&file.filename)),
                    &file.data,
                )?;
            }
        }
    }
    let mut gzip = tar.into_inner()?;
    gzip.flush()?;
    gzip.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AttachmentDump, ContactDump, ConversationDump, MessageDump};
    use std::io::Read;

    fn export() -> ContactExport {
        let file = |id: i64, name: &str, data: &[u8]| AttachmentDump {
            id,
            filename: name.into(),
            content_type: "application/octet-stream".into(),
            size: data.len() as i64,
            sha256: "00".into(),
            data: data.to_vec(),
        };
        let message = MessageDump {
            id: 1,
            direction: "inbound".into(),
            kind: "message".into(),
            author_kind: "contact".into(),
            author_id: None,
            text: "my invoice".into(),
            html: None,
            external_id: Some("m1".into()),
            language: None,
            metadata: None,
            created_at: Timestamp(0),
            attachments: vec![file(7, "../../etc/passwd", b"root"), file(8, "faktura å.pdf", b"%PDF")],
        };
        ContactExport {
            contact: ContactDump {
                id: 42,
                name: Some("Ada".into()),
                email: None,
                language: None,
                value_tier: None,
                flags: json!([]),
                metadata: json!({}),
                created_at: Timestamp(0),
                updated_at: Timestamp(0),
                updates_opted_out_at: None,
                erased_at: None,
            },
            identities: vec![],
            conversations: vec![ConversationDump {
                id: 5,
                inbox: "shop".into(),
                channel: "webhook".into(),
                subject: None,
                thread_key: None,
                status: "open".into(),
                priority: "normal".into(),
                team: None,
                labels: json!([]),
                language: None,
                csat_score: None,
                csat_comment: None,
                created_at: Timestamp(0),
                resolved_at: None,
                erased_at: None,
                messages: vec![message],
                events: vec![],
            }],
        }
    }

    #[test]
    fn names_cannot_leave_the_folder_or_hide() {
        assert_eq!(safe_name("../../etc/passwd"), "_._.._etc_passwd");
        assert_eq!(safe_name(".bashrc"), "_bashrc");
        assert_eq!(safe_name(""), "file");
        assert_eq!(safe_name(&"a".repeat(500)).len(), MAX_NAME);
    }

    #[test]
    fn the_archive_holds_the_json_and_every_file_it_names() {
        let bytes = archive(&export(), 1_800_000_000_000).unwrap();
        let mut entries = std::collections::BTreeMap::new();
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
        for entry in tar.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            entries.insert(path, data);
        }
        let json: Value = serde_json::from_slice(&entries["contact-42/contact.json"]).unwrap();
        assert_eq!(json["format"], FORMAT);
        assert_eq!(json["counts"]["attachments"], 2);
        let attachments = &json["conversations"][0]["messages"][0]["attachments"];
        for (attachment, bytes) in attachments.as_array().unwrap().iter().zip([&b"root"[..], b"%PDF"]) {
            let path = format!("contact-42/{}", attachment["file"].as_str().unwrap());
            assert_eq!(entries[&path], bytes, "{path}");
        }
        assert_eq!(entries.len(), 3);
    }
}
