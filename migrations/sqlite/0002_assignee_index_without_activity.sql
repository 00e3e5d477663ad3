-- An agent's own queue is small enough to sort when read. Keyed on last_activity_at,
-- this index moved with every message of an assigned conversation: one more page
-- written at a random place per message, for a sort it spares on a short list.
DROP INDEX conversations_assignee;
CREATE INDEX conversations_assignee ON conversations (assignee_id);
