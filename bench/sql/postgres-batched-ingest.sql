-- What PostgreSQL alone costs per message when many messages share each statement and
-- transaction: the rows one new conversation writes (a contact, its identity, the
-- conversation, the message and its acknowledgement, three events, two clocks, the
-- outbox row and the update record) for `:b` messages at once, then the acknowledgements
-- claimed and settled as the dispatcher does. Not the daemon's SQL: an upper bound for a
-- design that ingests in batches. See BENCHMARKS.md, "What batching would buy".
\set n random(1, 2000000000)
BEGIN;
SELECT count(*) FROM messages WHERE inbox_id = 1 AND external_id = ANY (ARRAY(SELECT 'm' || :n || '-' || g FROM generate_series(1, :b) g));
SELECT count(*) FROM contact_identities WHERE inbox_id = 1 AND external_id = ANY (ARRAY(SELECT 'c' || :n || '-' || g FROM generate_series(1, :b) g));
WITH ct AS (INSERT INTO contacts (created_at, updated_at, language) SELECT 1, 1, 'en' FROM generate_series(1, :b) RETURNING id),
idn AS (INSERT INTO contact_identities (contact_id, inbox_id, channel, external_id, created_at)
        SELECT id, 1, 'webhook', 'c' || :n || '-' || id, 1 FROM ct RETURNING id, contact_id),
cv AS (INSERT INTO conversations (inbox_id, contact_id, identity_id, status, priority, team_id, created_at, updated_at, last_activity_at, queued_at, language)
       SELECT 1, contact_id, id, 'open', 'normal', 1, 1, 1, 1, 1, 'en' FROM idn RETURNING id),
mi AS (INSERT INTO messages (conversation_id, inbox_id, direction, kind, author_kind, text, external_id, language, created_at)
       SELECT id, 1, 'inbound', 'message', 'contact', 'Hello, my order 4411 has not arrived yet, could you check where it is?', 'm' || :n || '-' || id, 'en', 1 FROM cv RETURNING id),
mo AS (INSERT INTO messages (conversation_id, inbox_id, direction, kind, author_kind, text, language, metadata, created_at)
       SELECT id, 1, 'outbound', 'status_update', 'system', 'We received your message and will answer within the hour. Your reference: #8812', 'en', '{"event":"received","language":"en"}', 1 FROM cv RETURNING id, conversation_id),
ob AS (INSERT INTO outbox (message_id, conversation_id, inbox_id, status, next_attempt_at, expires_at, created_at, updated_at)
       SELECT id, conversation_id, 1, 'scheduled', 1, 99999999999999, 1, 1 FROM mo RETURNING 1),
ev AS (INSERT INTO events (conversation_id, kind, actor_kind, data, created_at)
       SELECT id, k, 'system', '{"team":"support","rule":"default","priority":"normal","reason":"no rule matched"}', 1 FROM cv, unnest(ARRAY['conversation.created','conversation.routed','message.received']) k RETURNING 1),
cl AS (INSERT INTO sla_clocks (conversation_id, kind, state, target_ms, warn_ms, running_since, started_at, warn_at, due_at, next_fire_at)
       SELECT id, k, 'running', 3600000, 2700000, 1, 1, 2700001, 3600001, 2700001 FROM cv, unnest(ARRAY['first_response','resolution']) k RETURNING 1),
su AS (INSERT INTO status_updates_sent (conversation_id, event, sent_at) SELECT id, 'received', 1 FROM cv RETURNING 1)
SELECT (SELECT count(*) FROM mi), (SELECT count(*) FROM ob), (SELECT count(*) FROM ev), (SELECT count(*) FROM cl), (SELECT count(*) FROM su);
COMMIT;
BEGIN;
UPDATE outbox SET status = 'in_flight', attempts = attempts + 1, lease_until = 2, lease_holder = 'h' || :client_id, updated_at = 2
 WHERE id IN (SELECT id FROM outbox WHERE status = 'scheduled' AND next_attempt_at <= 5 ORDER BY next_attempt_at, id LIMIT :b FOR UPDATE SKIP LOCKED);
COMMIT;
UPDATE outbox SET status = 'sent', sent_at = 3, lease_until = NULL, updated_at = 3 WHERE status = 'in_flight' AND lease_holder = 'h' || :client_id;
