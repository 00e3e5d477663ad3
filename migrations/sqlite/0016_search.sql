-- Conversation search: the text of every message (the customer's, replies, notes) and
-- every subject, indexed by trigrams, so a word is found inside text that
-- has no spaces between words (Thai), in any script, case aside. External content: the
-- index holds no second copy of the text, and triggers keep it in step (an erasure's
-- emptied text leaves the index too).
CREATE VIRTUAL TABLE message_search USING fts5(text, content = 'messages', content_rowid = 'id', tokenize = 'trigram');
-- Automated status updates are the desk's templates, not what anyone searches for, and
-- indexing them would double what ingest pays for search: they are left out. The
-- index holds exactly the other messages (so a `delete` always names indexed text).
CREATE TRIGGER message_search_insert AFTER INSERT ON messages WHEN new.kind <> 'status_update' BEGIN
    INSERT INTO message_search (rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER message_search_update AFTER UPDATE OF text ON messages WHEN old.kind <> 'status_update' BEGIN
    INSERT INTO message_search (message_search, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO message_search (rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER message_search_delete AFTER DELETE ON messages WHEN old.kind <> 'status_update' BEGIN
    INSERT INTO message_search (message_search, rowid, text) VALUES ('delete', old.id, old.text);
END;
INSERT INTO message_search (rowid, text) SELECT id, text FROM messages WHERE kind <> 'status_update';

CREATE VIRTUAL TABLE subject_search USING fts5(subject, content = 'conversations', content_rowid = 'id', tokenize = 'trigram');
CREATE TRIGGER subject_search_insert AFTER INSERT ON conversations WHEN new.subject IS NOT NULL BEGIN
    INSERT INTO subject_search (rowid, subject) VALUES (new.id, new.subject);
END;
CREATE TRIGGER subject_search_update AFTER UPDATE OF subject ON conversations BEGIN
    INSERT INTO subject_search (subject_search, rowid, subject) SELECT 'delete', old.id, old.subject
        WHERE old.subject IS NOT NULL;
    INSERT INTO subject_search (rowid, subject) SELECT new.id, new.subject WHERE new.subject IS NOT NULL;
END;
INSERT INTO subject_search (subject_search) VALUES ('rebuild');
