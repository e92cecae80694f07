-- 0009: audit rows by action and actor, in time order (issue 19). The kiosk
-- asks on every card scan whether it is cooling down after a burst of
-- unknown cards, and counts its recent unknown cards: without this index each
-- question read the whole audit log.
CREATE INDEX audit_log_action ON audit_log (action, actor, at);
