-- An agent's own queue is read by status and is short enough to sort when read. Keyed on
-- last_activity_at, this index moved with every message of a conversation: one more page
-- written at a random place per message, for a sort it spares on a short list. Status
-- and assignee change rarely, so this index stays put while messages arrive.
DROP INDEX conversations_assignee;
CREATE INDEX conversations_assignee ON conversations (assignee_id, status);
