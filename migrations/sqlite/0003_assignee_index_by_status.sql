-- An agent's queue is read by status ("my open conversations"): one range of this
-- index. Status and assignee change rarely, so, like 0002's, it stays put while
-- messages arrive.
DROP INDEX conversations_assignee;
CREATE INDEX conversations_assignee ON conversations (assignee_id, status);
