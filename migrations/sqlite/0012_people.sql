-- People at the console: passwords set through one-time links, sessions, a lockout
-- after failed sign-ins, and deactivation (which ends every session and token).
ALTER TABLE agents ADD COLUMN active INTEGER NOT NULL DEFAULT 1;
-- argon2id in the PHC string format; NULL until the agent follows their link.
ALTER TABLE agents ADD COLUMN password_hash TEXT;
ALTER TABLE agents ADD COLUMN failed_sign_ins INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN locked_until INTEGER;

-- One-time links to set a password. Only the SHA-256 of the token is kept; a new link
-- replaces the agent's unused ones.
CREATE TABLE sign_in_links (
    token_hash  BLOB    PRIMARY KEY,
    agent_id    INTEGER NOT NULL REFERENCES agents (id),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);
CREATE INDEX sign_in_links_agent ON sign_in_links (agent_id);

-- Console sessions, by the SHA-256 of the cookie's value; each carries the token its
-- state-changing requests must repeat (CSRF).
CREATE TABLE sessions (
    token_hash  BLOB    PRIMARY KEY,
    agent_id    INTEGER NOT NULL REFERENCES agents (id),
    csrf_token  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX sessions_agent ON sessions (agent_id);
