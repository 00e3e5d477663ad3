-- Finding a person: a trigram index over what an agent knows of them (name, email
-- address, phone, Telegram username, every channel's id of them), one row a contact
-- (rowid: the contact's id), rewritten by triggers when any of it changes. A new
-- contact is indexed with its first identity, which ingest writes right after it.
CREATE VIEW contact_search_terms (id, terms) AS
    SELECT id, concat_ws(' ', name, email, CAST(json_extract(metadata, '$.phone') AS TEXT),
                         CAST(json_extract(metadata, '$.telegram_username') AS TEXT),
                         (SELECT group_concat(external_id, ' ') FROM contact_identities WHERE contact_id = contacts.id))
    FROM contacts;
CREATE VIRTUAL TABLE contact_search USING fts5(terms, tokenize = 'trigram');
CREATE TRIGGER contact_search_contact AFTER UPDATE OF name, email, metadata ON contacts BEGIN
    DELETE FROM contact_search WHERE rowid = new.id;
    INSERT INTO contact_search (rowid, terms) SELECT id, terms FROM contact_search_terms WHERE id = new.id;
END;
CREATE TRIGGER contact_search_identity AFTER INSERT ON contact_identities BEGIN
    DELETE FROM contact_search WHERE rowid = new.contact_id;
    INSERT INTO contact_search (rowid, terms) SELECT id, terms FROM contact_search_terms WHERE id = new.contact_id;
END;
-- A merge moves identities; an erasure renames them.
CREATE TRIGGER contact_search_identity_moved AFTER UPDATE OF contact_id, external_id ON contact_identities BEGIN
    DELETE FROM contact_search WHERE rowid IN (old.contact_id, new.contact_id);
    INSERT INTO contact_search (rowid, terms)
        SELECT id, terms FROM contact_search_terms WHERE id IN (old.contact_id, new.contact_id);
END;
INSERT INTO contact_search (rowid, terms) SELECT id, terms FROM contact_search_terms;
-- A contact's likely duplicates: the same address or phone number.
CREATE INDEX contacts_email ON contacts (LOWER(email)) WHERE email IS NOT NULL;
CREATE INDEX contacts_phone ON contacts (CAST(json_extract(metadata, '$.phone') AS TEXT))
    WHERE json_extract(metadata, '$.phone') IS NOT NULL;
