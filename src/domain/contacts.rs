//! Contacts as agents keep them: what they correct or add (name, language, time zone,
//! attributes, the flags routing rules read) and two contacts found to be one person,
//! merged. A contact's attributes are the same map webhooks fill (`metadata`): rules
//! read `flags` and `value_tier` there, so a flag an agent sets routes the next
//! conversation as one a webhook sent would.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::domain::events::{self, Actor, DomainEvent};
use crate::domain::ingest::MAX_CONTACT_METADATA_BYTES;
use crate::domain::{DeskError, DeskResult};
use crate::store::{StoredContact, Tx};

/// The attribute routing rules read a contact's flags from.
pub const FLAGS: &str = "flags";

/// What an agent changes of a contact: `Some(None)` clears a field; attributes set to
/// `None` are removed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContactPatch {
    pub name: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub language: Option<Option<String>>,
    pub time_zone: Option<Option<String>>,
    pub attributes: BTreeMap<String, Option<Value>>,
    /// Replaces the contact's flags (`vip`, `influencer`, `verified`, …).
    pub flags: Option<Vec<String>>,
}

/// Two contacts made one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    pub contact_id: i64,
    pub merged: i64,
    pub identities: u64,
    /// The conversations that changed hands.
    pub conversations: Vec<i64>,
}

/// A contact an agent may change: neither erased nor merged away.
fn live(tx: &mut dyn Tx, id: i64) -> DeskResult<StoredContact> {
    let contact = tx.contact(id)?.ok_or(DeskError::NotFound("contact"))?;
    if let Some(into) = contact.merged_into {
        return Err(DeskError::Conflict(format!(
            "contact #{id} was merged into #{into}; change that one"
        )));
    }
    if contact.erased {
        return Err(DeskError::Conflict(format!("contact #{id} was erased")));
    }
    Ok(contact)
}

fn weight(attributes: &BTreeMap<String, Value>) -> usize {
    attributes
        .iter()
        .map(|(key, value)| key.len() + value.to_string().len() + 4)
        .sum()
}

pub fn edit(tx: &mut dyn Tx, id: i64, patch: &ContactPatch, now: i64) -> DeskResult<()> {
    let mut contact = live(tx, id)?;
    let record = &mut contact.record;
    for (field, new) in [
        (&mut record.name, &patch.name),
        (&mut record.email, &patch.email),
        (&mut record.language, &patch.language),
    ] {
        if let Some(new) = new {
            field.clone_from(new);
        }
    }
    for (key, value) in &patch.attributes {
        match value {
            Some(value) => record.metadata.insert(key.clone(), value.clone()),
            None => record.metadata.remove(key),
        };
    }
    if let Some(flags) = &patch.flags {
        if flags.is_empty() {
            record.metadata.remove(FLAGS);
        } else {
            record.metadata.insert(FLAGS.into(), json!(flags));
        }
    }
    if weight(&record.metadata) > MAX_CONTACT_METADATA_BYTES {
        return Err(DeskError::Invalid {
            field: "attributes",
            problem: format!("would take the contact past {MAX_CONTACT_METADATA_BYTES} bytes of attributes"),
        });
    }
    tx.update_contact(record, now)?;
    if let Some(time_zone) = &patch.time_zone {
        tx.set_contact_time_zone(id, time_zone.as_deref(), now)?;
    }
    Ok(())
}

/// The flags of a contact's attributes: a list, or one string as webhooks may send it.
pub fn flags_of(attributes: &BTreeMap<String, Value>) -> Vec<String> {
    match attributes.get(FLAGS) {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Some(Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    }
}

/// `from` and `into` are one person: `into` keeps its fields and takes `from`'s where it
/// has none, both sets of flags, `from`'s attributes it lacks (within the size limit),
/// every identity and conversation (open ones stay open, each keeps the identity its
/// replies go to), and the customer's "no automated updates" if either said it. `from`
/// stays as a pointer to `into`. Every conversation of the person records who merged.
pub fn merge(tx: &mut dyn Tx, into: i64, from: i64, actor: Actor, now: i64) -> DeskResult<Merged> {
    if into == from {
        return Err(DeskError::Invalid {
            field: "from",
            problem: "names the contact itself".into(),
        });
    }
    let mut kept = live(tx, into)?;
    let gone = live(tx, from)?;
    let (record, other) = (&mut kept.record, &gone.record);
    for (field, theirs) in [
        (&mut record.name, &other.name),
        (&mut record.email, &other.email),
        (&mut record.language, &other.language),
    ] {
        if field.is_none() {
            field.clone_from(theirs);
        }
    }
    let mut flags = flags_of(&record.metadata);
    for flag in flags_of(&other.metadata) {
        if !flags.iter().any(|own| own.eq_ignore_ascii_case(&flag)) {
            flags.push(flag);
        }
    }
    let mut total = weight(&record.metadata);
    for (key, value) in &other.metadata {
        if key == FLAGS || record.metadata.contains_key(key) {
            continue;
        }
        let added = key.len() + value.to_string().len() + 4;
        if total + added > MAX_CONTACT_METADATA_BYTES {
            continue;
        }
        total += added;
        record.metadata.insert(key.clone(), value.clone());
    }
    if !flags.is_empty() {
        record.metadata.insert(FLAGS.into(), json!(flags));
    }
    tx.update_contact(record, now)?;
    if kept.time_zone.is_none() && gone.time_zone.is_some() {
        tx.set_contact_time_zone(into, gone.time_zone.as_deref(), now)?;
    }
    if gone.updates_opted_out && !kept.updates_opted_out {
        tx.set_updates_opt_out(into, true, now)?;
    }
    let moved = tx.move_contact(from, into, now)?;
    let event = [(actor, DomainEvent::ContactMerged { from, into })];
    for (conversation_id, _) in tx.contact_conversations(into)? {
        events::insert(tx, conversation_id, &event, now)?;
    }
    Ok(Merged {
        contact_id: into,
        merged: from,
        identities: moved.identities,
        conversations: moved.conversations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_come_as_a_list_or_as_one_string() {
        let mut attributes = BTreeMap::new();
        assert!(flags_of(&attributes).is_empty());
        attributes.insert(FLAGS.to_owned(), json!("vip"));
        assert_eq!(flags_of(&attributes), ["vip"]);
        attributes.insert(FLAGS.to_owned(), json!(["vip", 3, "influencer"]));
        assert_eq!(flags_of(&attributes), ["vip", "influencer"]);
    }
}
