-- Feed positions are drawn from a sequence under the feed lock at commit
-- (docs/PROTOCOL.md, "The feed on PostgreSQL"): a sequence is read outside
-- the transaction's snapshot, so a writer that waited for the lock numbers
-- after the entries committed meanwhile instead of failing to serialize.
-- HQ realigns it with max(changes.seq) at every start (a restore or a
-- failover that brought the rows but an older sequence).
CREATE SEQUENCE changes_seq AS bigint MINVALUE 1;
SELECT setval('changes_seq', coalesce(max(seq), 0) + 1, false) FROM changes;
