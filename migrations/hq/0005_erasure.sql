-- HQ 0005: an erasure leaves nothing (issue 18).
--
-- HQ keeps no member search index: nobody searches members by name at HQ,
-- and an FTS5 index keeps a deleted member's terms (names, phone digits,
-- e-mail parts) in its segments until they are merged, where an erasure
-- cannot reach them. The replica schema's index and its triggers go (a
-- later replica migration that touches them must skip HQ).
DROP TRIGGER member_search_after_member_insert;
DROP TRIGGER member_search_after_member_update;
DROP TRIGGER member_search_after_member_delete;
DROP TRIGGER member_search_after_card_insert;
DROP TRIGGER member_search_after_card_update;
DROP TRIGGER member_search_after_card_delete;
DROP TABLE member_search;
DROP VIEW member_search_source;

-- erasure_scrubs: erasures whose traces outside the transaction are still
-- to be removed: snapshot files that may hold the member's record, and the
-- write-ahead log's copies of the pages as they were before. HQ scrubs right
-- after an erasure commits, and on its next write if it stopped first.
CREATE TABLE erasure_scrubs (
    member_id   INTEGER PRIMARY KEY,
    erased_at   TEXT NOT NULL,
    scrubbed_at TEXT
) STRICT;
CREATE INDEX erasure_scrubs_pending ON erasure_scrubs (member_id) WHERE scrubbed_at IS NULL;
