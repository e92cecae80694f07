-- 0004: identifying members offline (issue 5).
--
-- member_keys: the public halves of the Ed25519 keys that members' phones sign
-- their rotating app codes with (docs/PROTOCOL.md, "Member codes"). HQ
-- provisions them with the member's record; the private halves never leave
-- the phones. A member may hold several during a rotation; the one with the
-- highest key_id verifies.
CREATE TABLE member_keys (
    member_id  INTEGER NOT NULL REFERENCES members (member_id) ON DELETE CASCADE,
    key_id     INTEGER NOT NULL,
    public_key BLOB NOT NULL CHECK (length(public_key) = 32),
    created_at TEXT NOT NULL,
    PRIMARY KEY (member_id, key_id)
) STRICT, WITHOUT ROWID;

-- code_replays: the app codes accepted here, one row per member and time
-- window (Ed25519 signatures are deterministic, so a member's code for a
-- window is always the same text: a second sighting is a replay). Rows of
-- windows that can no longer verify are pruned as codes are checked.
CREATE TABLE code_replays (
    member_id   INTEGER NOT NULL,
    code_window INTEGER NOT NULL,
    seen_at     TEXT NOT NULL,
    device      TEXT NOT NULL,
    PRIMARY KEY (member_id, code_window)
) STRICT, WITHOUT ROWID;
CREATE INDEX code_replays_window ON code_replays (code_window);

-- Associate look-up by phone: the phone as typed, less spaces, dashes,
-- parentheses and dots, with a leading 00 read as +. aisle-core turns a typed
-- phone into E.164 and asks for the few stored forms that mean that number.
ALTER TABLE members ADD COLUMN phone_key TEXT GENERATED ALWAYS AS (
    CASE
        WHEN phone IS NULL THEN NULL
        WHEN substr(replace(replace(replace(replace(replace(phone, ' ', ''), '-', ''), '(', ''), ')', ''), '.', ''), 1, 2) = '00'
            THEN '+' || substr(replace(replace(replace(replace(replace(phone, ' ', ''), '-', ''), '(', ''), ')', ''), '.', ''), 3)
        ELSE replace(replace(replace(replace(replace(phone, ' ', ''), '-', ''), '(', ''), ')', ''), '.', '')
    END
) VIRTUAL;
CREATE INDEX members_phone_key ON members (phone_key);

-- Associate look-up by e-mail, case-insensitive (ASCII) and exact.
CREATE INDEX members_email_lower ON members (lower(email));
