-- 0002: full-text search over members for associates (name, card number, phone, e-mail).
--
-- A contentless FTS5 index (it stores only the index, not a second copy of the
-- text) kept current by triggers, so every writer - importers, sync, the tablet -
-- updates it in the same transaction as the profile. Erased members are never indexed.
-- Phones are indexed as typed, as bare digits and as their last ten digits, so
-- "555-0142", "5550142" and "6145550142" all find "+1 614-555-0142".

CREATE VIEW member_search_source (member_id, name, cards, phone, email) AS
SELECT member_id, name, cards,
       CASE WHEN phone IS NULL THEN NULL ELSE phone || ' ' || digits || ' ' || substr(digits, -10) END,
       email
FROM (
    SELECT m.member_id AS member_id,
           trim(coalesce(m.given_name, '') || ' ' || coalesce(m.family_name, '') || ' '
                || coalesce(m.display_name, '')) AS name,
           (SELECT group_concat(c.card_number, ' ') FROM member_cards AS c
            WHERE c.member_id = m.member_id) AS cards,
           m.phone AS phone,
           replace(replace(replace(replace(replace(replace(coalesce(m.phone, ''),
               ' ', ''), '-', ''), '+', ''), '(', ''), ')', ''), '.', '') AS digits,
           m.email AS email
    FROM members AS m
    WHERE m.erased_at IS NULL
);

CREATE VIRTUAL TABLE member_search USING fts5 (
    name, cards, phone, email,
    content = '',
    contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '1 2 3 4'
);

CREATE TRIGGER member_search_after_member_insert AFTER INSERT ON members BEGIN
    INSERT INTO member_search (rowid, name, cards, phone, email)
    SELECT member_id, name, cards, phone, email FROM member_search_source WHERE member_id = NEW.member_id;
END;

CREATE TRIGGER member_search_after_member_update
AFTER UPDATE OF given_name, family_name, display_name, phone, email, erased_at ON members BEGIN
    DELETE FROM member_search WHERE rowid = OLD.member_id;
    INSERT INTO member_search (rowid, name, cards, phone, email)
    SELECT member_id, name, cards, phone, email FROM member_search_source WHERE member_id = NEW.member_id;
END;

CREATE TRIGGER member_search_after_member_delete AFTER DELETE ON members BEGIN
    DELETE FROM member_search WHERE rowid = OLD.member_id;
END;

CREATE TRIGGER member_search_after_card_insert AFTER INSERT ON member_cards BEGIN
    DELETE FROM member_search WHERE rowid = NEW.member_id;
    INSERT INTO member_search (rowid, name, cards, phone, email)
    SELECT member_id, name, cards, phone, email FROM member_search_source WHERE member_id = NEW.member_id;
END;

CREATE TRIGGER member_search_after_card_update AFTER UPDATE ON member_cards BEGIN
    DELETE FROM member_search WHERE rowid IN (OLD.member_id, NEW.member_id);
    INSERT INTO member_search (rowid, name, cards, phone, email)
    SELECT member_id, name, cards, phone, email FROM member_search_source
    WHERE member_id IN (OLD.member_id, NEW.member_id);
END;

CREATE TRIGGER member_search_after_card_delete AFTER DELETE ON member_cards BEGIN
    DELETE FROM member_search WHERE rowid = OLD.member_id;
    INSERT INTO member_search (rowid, name, cards, phone, email)
    SELECT member_id, name, cards, phone, email FROM member_search_source WHERE member_id = OLD.member_id;
END;

-- Members that existed before this migration.
INSERT INTO member_search (rowid, name, cards, phone, email)
SELECT member_id, name, cards, phone, email FROM member_search_source;
