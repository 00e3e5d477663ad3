//! Contacts and their channel identities.

use switchboard_connector_core::ChannelKind;

use super::{PgTx, column};
use crate::store::StoreResult;
use crate::store::columns::json_column;
use crate::store::columns::to_json;
use crate::store::records::*;
use crate::store::tx::*;

impl ContactTx for PgTx<'_> {
    fn identity(&mut self, inbox_id: i64, external_id: &str) -> StoreResult<Option<ContactRecord>> {
        let row = self.row(
            sqlx::query(
                "SELECT ci.id AS identity_id, c.id AS contact_id, c.name, c.email, c.language, c.metadata,
                        ci.unreachable_reason IS NOT NULL AS unreachable
                 FROM contact_identities ci JOIN contacts c ON c.id = ci.contact_id
                 WHERE ci.inbox_id = $1 AND ci.external_id = $2",
            )
            .bind(inbox_id)
            .bind(external_id),
        )?;
        row.map(|row| {
            Ok(ContactRecord {
                contact_id: column(&row, "contact_id")?,
                identity_id: column(&row, "identity_id")?,
                name: column(&row, "name")?,
                email: column(&row, "email")?,
                language: column(&row, "language")?,
                metadata: json_column(&column::<String>(&row, "metadata")?)?,
                unreachable: column(&row, "unreachable")?,
            })
        })
        .transpose()
    }

    fn contact_of_channel_identity(&mut self, channel: ChannelKind, external_id: &str) -> StoreResult<Option<i64>> {
        let row = self.row(
            sqlx::query(
                "SELECT contact_id FROM contact_identities WHERE channel = $1 AND external_id = $2 ORDER BY id LIMIT 1",
            )
            .bind(channel.as_str())
            .bind(external_id),
        )?;
        row.map(|row| column(&row, "contact_id")).transpose()
    }

    fn contacts_with_address(&mut self, email: Option<&str>, phone: Option<&str>) -> StoreResult<Vec<i64>> {
        // Each arm matches its expression index (migration 0005).
        let rows = self.rows(
            sqlx::query(
                "SELECT id FROM (
                     SELECT id FROM contacts WHERE email IS NOT NULL AND LOWER(email) = LOWER($1)
                     UNION
                     SELECT id FROM contacts WHERE metadata::jsonb ? 'phone' AND (metadata::jsonb ->> 'phone') = $2
                 ) found JOIN contacts USING (id)
                 WHERE merged_into IS NULL AND erased_at IS NULL ORDER BY id LIMIT 2",
            )
            .bind(email)
            .bind(phone),
        )?;
        rows.iter().map(|row| column(row, "id")).collect()
    }

    fn insert_contact(&mut self, record: &ContactRecord, now: i64) -> StoreResult<i64> {
        let row = self.one(
            sqlx::query(
                "INSERT INTO contacts (name, email, language, metadata, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
            )
            .bind(record.name.as_deref())
            .bind(record.email.as_deref())
            .bind(record.language.as_deref())
            .bind(to_json(&record.metadata, "{}"))
            .bind(now),
        )?;
        column(&row, "id")
    }

    fn insert_identity(&mut self, contact_id: i64, inbox: &InboxRef, external_id: &str, now: i64) -> StoreResult<i64> {
        let row = self.one(
            sqlx::query(
                "INSERT INTO contact_identities (contact_id, inbox_id, channel, external_id, created_at)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(contact_id)
            .bind(inbox.id)
            .bind(inbox.channel.as_str())
            .bind(external_id)
            .bind(now),
        )?;
        column(&row, "id")
    }

    fn update_contact(&mut self, record: &ContactRecord, now: i64) -> StoreResult<()> {
        self.execute(
            sqlx::query(
                "UPDATE contacts SET name = $1, email = $2, language = $3, metadata = $4, updated_at = $5 WHERE id = $6",
            )
            .bind(record.name.as_deref())
            .bind(record.email.as_deref())
            .bind(record.language.as_deref())
            .bind(to_json(&record.metadata, "{}"))
            .bind(now)
            .bind(record.contact_id),
        )?;
        Ok(())
    }

    fn set_reachability(&mut self, identity: IdentityRef<'_>, reason: Option<&str>, now: i64) -> StoreResult<bool> {
        let at = reason.map(|_| now);
        let changed = match identity {
            IdentityRef::Id(id) => self.execute(
                sqlx::query("UPDATE contact_identities SET unreachable_reason = $1, unreachable_at = $2 WHERE id = $3")
                    .bind(reason)
                    .bind(at)
                    .bind(id),
            )?,
            IdentityRef::External { inbox_id, external_id } => self.execute(
                sqlx::query(
                    "UPDATE contact_identities SET unreachable_reason = $1, unreachable_at = $2
                     WHERE inbox_id = $3 AND external_id = $4",
                )
                .bind(reason)
                .bind(at)
                .bind(inbox_id)
                .bind(external_id),
            )?,
            IdentityRef::OfConversation(conversation_id) => self.execute(
                sqlx::query(
                    "UPDATE contact_identities SET unreachable_reason = $1, unreachable_at = $2
                     WHERE id = (SELECT identity_id FROM conversations WHERE id = $3)",
                )
                .bind(reason)
                .bind(at)
                .bind(conversation_id),
            )?,
        };
        Ok(changed > 0)
    }

    fn set_updates_opt_out(&mut self, contact_id: i64, opted_out: bool, now: i64) -> StoreResult<bool> {
        let changed = self.execute(
            sqlx::query(
                "UPDATE contacts SET updates_opted_out_at = $1, updated_at = $2
                 WHERE id = $3 AND (updates_opted_out_at IS NULL) = $4",
            )
            .bind(opted_out.then_some(now))
            .bind(now)
            .bind(contact_id)
            .bind(opted_out),
        )?;
        Ok(changed > 0)
    }

    fn contact(&mut self, id: i64) -> StoreResult<Option<StoredContact>> {
        let row = self.row(
            sqlx::query(
                "SELECT name, email, language, metadata, time_zone, updates_opted_out_at IS NOT NULL AS opted_out,
                        erased_at IS NOT NULL AS erased, merged_into
                 FROM contacts WHERE id = $1",
            )
            .bind(id),
        )?;
        row.map(|row| {
            Ok(StoredContact {
                record: ContactRecord {
                    contact_id: id,
                    identity_id: 0,
                    name: column(&row, "name")?,
                    email: column(&row, "email")?,
                    language: column(&row, "language")?,
                    metadata: json_column(&column::<String>(&row, "metadata")?)?,
                    unreachable: false,
                },
                time_zone: column(&row, "time_zone")?,
                updates_opted_out: column(&row, "opted_out")?,
                erased: column(&row, "erased")?,
                merged_into: column(&row, "merged_into")?,
            })
        })
        .transpose()
    }

    fn set_contact_time_zone(&mut self, id: i64, time_zone: Option<&str>, now: i64) -> StoreResult<()> {
        self.execute(
            sqlx::query("UPDATE contacts SET time_zone = $1, updated_at = $2 WHERE id = $3")
                .bind(time_zone)
                .bind(now)
                .bind(id),
        )?;
        Ok(())
    }

    fn move_contact(&mut self, from: i64, into: i64, now: i64) -> StoreResult<MovedContact> {
        let identities = self.execute(
            sqlx::query("UPDATE contact_identities SET contact_id = $2 WHERE contact_id = $1")
                .bind(from)
                .bind(into),
        )?;
        let mut conversations = Vec::new();
        for row in self.rows(
            sqlx::query("UPDATE conversations SET contact_id = $2, updated_at = $3 WHERE contact_id = $1 RETURNING id")
                .bind(from)
                .bind(into)
                .bind(now),
        )? {
            conversations.push(column::<i64>(&row, "id")?);
        }
        conversations.sort_unstable();
        // Through the conversations' index: what the person wrote is in their conversations.
        for (table, who) in [("messages", "author"), ("events", "actor")] {
            let moved = format!(
                "UPDATE {table} SET {who}_id = $2
                 WHERE conversation_id IN (SELECT id FROM conversations WHERE contact_id = $2)
                   AND {who}_kind = 'contact' AND {who}_id = $1"
            );
            self.execute(sqlx::query(&moved).bind(from).bind(into))?;
        }
        self.execute(
            sqlx::query("UPDATE contacts SET merged_into = $2, updated_at = $3 WHERE merged_into = $1")
                .bind(from)
                .bind(into)
                .bind(now),
        )?;
        self.execute(
            sqlx::query(
                "UPDATE contacts SET merged_into = $2, merged_at = $3, updated_at = $3, name = NULL, email = NULL,
                        language = NULL, value_tier = NULL, flags = '[]', metadata = '{}', time_zone = NULL
                 WHERE id = $1",
            )
            .bind(from)
            .bind(into)
            .bind(now),
        )?;
        Ok(MovedContact {
            identities,
            conversations,
        })
    }
}
