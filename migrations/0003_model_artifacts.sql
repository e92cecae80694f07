-- 0003: fitted model artifacts, kept in the replica so a store serves offline.
--
-- An artifact is fitted here (`aisle train`) or at HQ and shipped by sync.
-- Serving uses the newest artifact of a kind that verifies (format version and
-- SHA-256 of the bytes); a corrupt or incompatible newest one is reported and
-- the previous one keeps serving.

CREATE TABLE model_artifacts (
    artifact_id    INTEGER PRIMARY KEY,
    kind           TEXT NOT NULL CHECK (kind IN ('recommend')),
    format_version INTEGER NOT NULL,
    created_at     TEXT NOT NULL,
    -- The model saw purchases strictly before this time.
    trained_until  TEXT NOT NULL,
    sha256         TEXT NOT NULL,
    size_bytes     INTEGER NOT NULL,
    source         TEXT NOT NULL DEFAULT 'local' CHECK (source IN ('local', 'hq')),
    bytes          BLOB NOT NULL
) STRICT;
CREATE INDEX model_artifacts_kind ON model_artifacts (kind, artifact_id);
