//! Contacts and their channel identities.

use rusqlite::{OptionalExtension, params};
use switchboard_connector_core::ChannelKind;

use super::SqliteTx;
use crate::store::StoreResult;
use crate::store::columns::json_column;
use crate::store::columns::to_json;
use crate::store::records::*;
use crate::store::tx::*;

impl ContactTx for SqliteTx<'_> {
    fn identity(&mut self, inbox_id: i64, external_id: &str) -> StoreResult<Option<ContactRecord>> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT ci.id, c.id, c.name, c.email, c.language, c.metadata, ci.unreachable_reason IS NOT NULL
                 FROM contact_identities ci JOIN contacts c ON c.id = ci.contact_id
                 WHERE ci.inbox_id = ?1 AND ci.external_id = ?2",
            )?
            .query_row(params![inbox_id, external_id], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get::<_, String>(5)?,
                    row.get(6)?,
                ))
            })
            .optional()?;
        row.map(
            |(identity_id, contact_id, name, email, language, metadata, unreachable)| {
                Ok(ContactRecord {
                    contact_id,
                    identity_id,
                    name,
                    email,
                    language,
                    metadata: json_column(&metadata)?,
                    unreachable,
                })
            },
        )
        .transpose()
    }

    fn contact_of_channel_identity(&mut self, channel: ChannelKind, external_id: &str) -> StoreResult<Option<i64>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT contact_id FROM contact_identities WHERE channel = ?1 AND external_id = ?2 ORDER BY id LIMIT 1",
            )?
            .query_row(params![channel.as_str(), external_id], |row| row.get(0))
            .optional()?)
    }

    fn contacts_with_address(&mut self, email: Option<&str>, phone: Option<&str>) -> StoreResult<Vec<i64>> {
        // Each arm matches its expression index (migration 0017).
        Ok(self
            .conn
            .prepare_cached(
                "SELECT id FROM (
                     SELECT id FROM contacts WHERE email IS NOT NULL AND LOWER(email) = LOWER(?1)
                     UNION
                     SELECT id FROM contacts WHERE json_extract(metadata, '$.phone') IS NOT NULL
                         AND CAST(json_extract(metadata, '$.phone') AS TEXT) = ?2
                 ) found JOIN contacts USING (id)
                 WHERE merged_into IS NULL AND erased_at IS NULL ORDER BY id LIMIT 2",
            )?
            .query_map(params![email, phone], |row| row.get(0))?
            .collect::<Result<_, _>>()?)
    }

    fn insert_contact(&mut self, record: &ContactRecord, now: i64) -> StoreResult<i64> {
        Ok(self
            .conn
            .prepare_cached(
                "INSERT INTO contacts (name, email, language, metadata, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5) RETURNING id",
            )?
            .query_row(
                params![
                    record.name,
                    record.email,
                    record.language,
                    to_json(&record.metadata, "{}"),
                    now
                ],
                |row| row.get(0),
            )?)
    }

    fn insert_identity(&mut self, contact_id: i64, inbox: &InboxRef, external_id: &str, now: i64) -> StoreResult<i64> {
        Ok(self
            .conn
            .prepare_cached(
                "INSERT INTO contact_identities (contact_id, inbox_id, channel, external_id, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
            )?
            .query_row(
                params![contact_id, inbox.id, inbox.channel.as_str(), external_id, now],
                |row| row.get(0),
            )?)
    }

    fn update_contact(&mut self, record: &ContactRecord, now: i64) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "UPDATE contacts SET name = ?1, email = ?2, language = ?3, metadata = ?4, updated_at = ?5 WHERE id = ?6",
            )?
            .execute(params![
                record.name,
                record.email,
                record.language,
                to_json(&record.metadata, "{}"),
                now,
                record.contact_id
            ])?;
        Ok(())
    }

    fn set_reachability(&mut self, identity: IdentityRef<'_>, reason: Option<&str>, now: i64) -> StoreResult<bool> {
        let at = reason.map(|_| now);
        let changed = match identity {
            IdentityRef::Id(id) => self
                .conn
                .prepare_cached(
                    "UPDATE contact_identities SET unreachable_reason = ?1, unreachable_at = ?2 WHERE id = ?3",
                )?
                .execute(params![reason, at, id])?,
            IdentityRef::External { inbox_id, external_id } => self
                .conn
                .prepare_cached(
                    "UPDATE contact_identities SET unreachable_reason = ?1, unreachable_at = ?2
                     WHERE inbox_id = ?3 AND external_id = ?4",
                )?
                .execute(params![reason, at, inbox_id, external_id])?,
            IdentityRef::OfConversation(conversation_id) => self
                .conn
                .prepare_cached(
                    "UPDATE contact_identities SET unreachable_reason = ?1, unreachable_at = ?2
                     WHERE id = (SELECT identity_id FROM conversations WHERE id = ?3)",
                )?
                .execute(params![reason, at, conversation_id])?,
        };
        Ok(changed > 0)
    }

    fn set_updates_opt_out(&mut self, contact_id: i64, opted_out: bool, now: i64) -> StoreResult<bool> {
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE contacts SET updates_opted_out_at = ?1, updated_at = ?2
                 WHERE id = ?3 AND (updates_opted_out_at IS NULL) = ?4",
            )?
            .execute(params![opted_out.then_some(now), now, contact_id, opted_out])?;
        Ok(changed > 0)
    }

    fn contact(&mut self, id: i64) -> StoreResult<Option<StoredContact>> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT name, email, language, metadata, time_zone, updates_opted_out_at IS NOT NULL,
                        erased_at IS NOT NULL, merged_into
                 FROM contacts WHERE id = ?1",
            )?
            .query_row([id], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get::<_, String>(3)?,
                    row.get(4)?,
                    row.get(5)?,
                    row.get(6)?,
                    row.get(7)?,
                ))
            })
            .optional()?;
        row.map(
            |(name, email, language, metadata, time_zone, updates_opted_out, erased, merged_into)| {
                Ok(StoredContact {
                    record: ContactRecord {
                        contact_id: id,
                        identity_id: 0,
                        name,
                        email,
                        language,
                        metadata: json_column(&metadata)?,
                        unreachable: false,
                    },
                    time_zone,
                    updates_opted_out,
                    erased,
                    merged_into,
                })
            },
        )
        .transpose()
    }

    fn set_contact_time_zone(&mut self, id: i64, time_zone: Option<&str>, now: i64) -> StoreResult<()> {
        self.conn
            .prepare_cached("UPDATE contacts SET time_zone = ?1, updated_at = ?2 WHERE id = ?3")?
            .execute(params![time_zone, now, id])?;
        Ok(())
    }

    fn move_contact(&mut self, from: i64, into: i64, now: i64) -> StoreResult<MovedContact> {
        let identities = self
            .conn
            .prepare_cached("UPDATE contact_identities SET contact_id = ?2 WHERE contact_id = ?1")?
            .execute([from, into])? as u64;
        let mut conversations: Vec<i64> = self
            .conn
            .prepare_cached(
                "UPDATE conversations SET contact_id = ?2, updated_at = ?3 WHERE contact_id = ?1 RETURNING id",
            )?
            .query_map([from, into, now], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        conversations.sort_unstable();
        // Through the conversations' index: what the person wrote is in their conversations.
        for (table, who) in [("messages", "author"), ("events", "actor")] {
            self.conn
                .prepare_cached(&format!(
                    "UPDATE {table} SET {who}_id = ?2
                     WHERE conversation_id IN (SELECT id FROM conversations WHERE contact_id = ?2)
                       AND {who}_kind = 'contact' AND {who}_id = ?1"
                ))?
                .execute([from, into])?;
        }
        self.conn
            .prepare_cached("UPDATE contacts SET merged_into = ?2, updated_at = ?3 WHERE merged_into = ?1")?
            .execute([from, into, now])?;
        self.conn
            .prepare_cached(
                "UPDATE contacts SET merged_into = ?2, merged_at = ?3, updated_at = ?3, name = NULL, email = NULL,
                        language = NULL, value_tier = NULL, flags = '[]', metadata = '{}', time_zone = NULL
                 WHERE id = ?1",
            )?
            .execute([from, into, now])?;
        Ok(MovedContact {
            identities,
            conversations,
        })
    }
}
