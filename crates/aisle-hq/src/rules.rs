//! HQ's conflict rules: what a store's event does to HQ's master records,
//! as pure functions of the records as they stand, the event and the clock.
//! Storage reads the records, asks these, and writes what they answer; every
//! storage backend applies the same rules.

use aisle_core::time::Timestamp;
use aisle_proto::MemberRecord;
use aisle_proto::events::{ConsentName, StoreEvent};

/// What an event does to its member's master record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberEffect {
    /// Save this record (and send it back to the stores holding the member).
    Save(Box<MemberRecord>),
    /// Erase the member.
    Erase,
    /// Keep the associate's note.
    AddNote,
    /// Kept as a fact in the event log; the master record does not change.
    Fact,
}

/// Whether [`member_effect`] needs the member's whole record for `event`
/// (most events, a kiosk visit above all, need only to know that HQ holds
/// the member).
pub fn needs_record(event: &StoreEvent) -> bool {
    matches!(
        event,
        StoreEvent::PreferencesSet(_) | StoreEvent::ConsentChanged(_)
    )
}

/// The effect of `event` on its member: `held` says HQ holds the member and
/// has not erased them (an erased or unknown member's events are only kept
/// as facts); `member` is their record where [`needs_record`] says so.
pub fn member_effect(
    held: bool,
    member: Option<&MemberRecord>,
    event: &StoreEvent,
    now: Timestamp,
) -> MemberEffect {
    if !held {
        return MemberEffect::Fact;
    }
    match (event, member) {
        (StoreEvent::PreferencesSet(_) | StoreEvent::ConsentChanged(_), None) => MemberEffect::Fact,
        (StoreEvent::PreferencesSet(set), Some(member)) => {
            let mut saved = member.clone();
            saved.preferences = set.preferences.clone();
            saved.preferences.sort();
            saved.preferences.dedup();
            saved.updated_at = now.to_string();
            MemberEffect::Save(Box::new(saved))
        }
        (StoreEvent::ConsentChanged(change), Some(member)) => {
            let mut saved = member.clone();
            let (flag, flag_at) = match change.consent {
                ConsentName::Personalization => (
                    &mut saved.consent_personalization,
                    &mut saved.consent_personalization_at,
                ),
                ConsentName::Marketing => (
                    &mut saved.consent_marketing,
                    &mut saved.consent_marketing_at,
                ),
            };
            if let Some((granted, at)) =
                consent_decision(flag_at.as_deref(), change.granted, &change.at)
            {
                *flag = granted;
                *flag_at = Some(at);
                saved.updated_at = now.to_string();
            }
            // Saved (and sent back) either way: a store whose edit lost gets
            // HQ's record, so it never keeps a state HQ refused.
            MemberEffect::Save(Box::new(saved))
        }
        (StoreEvent::AssociateNote(_), _) => MemberEffect::AddNote,
        (StoreEvent::ErasureRequested(_), _) => MemberEffect::Erase,
        // A visit is kept as a fact: its member is already in the store's
        // partition (HQ refuses a visit of anyone else before this).
        (
            StoreEvent::KioskVisit(_)
            | StoreEvent::CouponIssued(_)
            | StoreEvent::CouponRedeemed(_)
            | StoreEvent::CouponSentToApp(_)
            | StoreEvent::ProfileViewed(_),
            _,
        ) => MemberEffect::Fact,
    }
}

/// A consent decision made at `at` over the one recorded at `recorded_at`:
/// a withdrawal always wins; a grant wins only over an older decision (or
/// none). The new (flag, time), or `None` when the record keeps its own.
pub fn consent_decision(
    recorded_at: Option<&str>,
    granted: bool,
    at: &str,
) -> Option<(bool, String)> {
    let newer = recorded_at.is_none_or(|old| at >= old);
    (!granted || newer).then(|| (granted && newer, at.to_owned()))
}

/// One redemption of a coupon instance, as HQ counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redemption {
    pub store_id: i64,
    /// `YYYY-MM-DD HH:MM:SS`, the till's clock.
    pub at: String,
    pub till_id: Option<String>,
    pub value_cents: Option<i64>,
}

/// Two redemptions of one instance: the earliest counts, the other is an
/// over-redemption. `arriving_wins` when the one arriving now is earlier
/// than the one HQ counted (a store that was offline reports late).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverRedemption {
    pub counted: Redemption,
    pub over: Redemption,
    pub arriving_wins: bool,
}

/// Which of two redemptions of one instance counts.
pub fn over_redemption(counted: Redemption, arriving: Redemption) -> OverRedemption {
    if arriving.at < counted.at {
        OverRedemption {
            counted: arriving,
            over: counted,
            arriving_wins: true,
        }
    } else {
        OverRedemption {
            counted,
            over: arriving,
            arriving_wins: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aisle_core::time::lit::ts;
    use aisle_proto::events::{
        AssociateNote, ConsentChanged, ErasureRequested, KioskVisit, PreferencesSet,
    };

    fn member() -> MemberRecord {
        MemberRecord {
            member_id: 7,
            given_name: Some("Ada".into()),
            family_name: None,
            display_name: None,
            phone: None,
            email: None,
            home_store_id: Some(1),
            tier: "standard".into(),
            consent_personalization: true,
            consent_personalization_at: Some("2026-01-10 10:00:00".into()),
            consent_marketing: false,
            consent_marketing_at: None,
            enrolled_on: None,
            updated_at: "2026-01-10 10:00:00".into(),
            cards: Vec::new(),
            preferences: Vec::new(),
            code_keys: None,
            coupons: None,
        }
    }

    fn consent(granted: bool, at: &str) -> StoreEvent {
        StoreEvent::ConsentChanged(ConsentChanged {
            member_id: 7,
            consent: ConsentName::Personalization,
            granted,
            at: at.into(),
            by: None,
            role: None,
        })
    }

    fn saved(effect: MemberEffect) -> MemberRecord {
        match effect {
            MemberEffect::Save(member) => *member,
            other => panic!("expected a save, got {other:?}"),
        }
    }

    #[test]
    fn a_withdrawal_always_wins_and_a_grant_only_over_an_older_decision() {
        let now = ts("2026-02-01 09:00:00");
        // An older withdrawal still withdraws.
        let after = saved(member_effect(
            true,
            Some(&member()),
            &consent(false, "2026-01-01 08:00:00"),
            now,
        ));
        assert!(!after.consent_personalization);
        assert_eq!(after.updated_at, now.to_string());
        // An older grant over a newer withdrawal changes nothing, but the
        // record is still sent back.
        let mut withdrawn = member();
        withdrawn.consent_personalization = false;
        let kept = saved(member_effect(
            true,
            Some(&withdrawn),
            &consent(true, "2026-01-05 08:00:00"),
            now,
        ));
        assert_eq!(kept, withdrawn);
        // A newer grant wins.
        let granted = saved(member_effect(
            true,
            Some(&withdrawn),
            &consent(true, "2026-01-20 08:00:00"),
            now,
        ));
        assert!(granted.consent_personalization);
        assert_eq!(
            granted.consent_personalization_at.as_deref(),
            Some("2026-01-20 08:00:00")
        );
        // The first decision ever is taken whatever it says.
        assert_eq!(
            consent_decision(None, true, "2020-01-01 00:00:00"),
            Some((true, "2020-01-01 00:00:00".into()))
        );
    }

    #[test]
    fn preferences_are_kept_sorted_once_each() {
        let event = StoreEvent::PreferencesSet(PreferencesSet {
            member_id: 7,
            preferences: vec![
                aisle_proto::Preference {
                    kind: "dietary".into(),
                    value: "vegan".into(),
                },
                aisle_proto::Preference {
                    kind: "brand".into(),
                    value: "own".into(),
                },
                aisle_proto::Preference {
                    kind: "dietary".into(),
                    value: "vegan".into(),
                },
            ],
        });
        let after = saved(member_effect(
            true,
            Some(&member()),
            &event,
            ts("2026-02-01 09:00:00"),
        ));
        let kinds: Vec<&str> = after.preferences.iter().map(|p| p.kind.as_str()).collect();
        assert_eq!(kinds, ["brand", "dietary"]);
    }

    #[test]
    fn an_unknown_or_erased_members_events_are_facts_and_erasure_notes_and_visits_have_their_effect()
     {
        let now = ts("2026-02-01 09:00:00");
        assert_eq!(
            member_effect(false, None, &consent(true, "2026-03-01 00:00:00"), now),
            MemberEffect::Fact
        );
        let erase = StoreEvent::ErasureRequested(ErasureRequested {
            member_id: 7,
            requested_by: "staff:1002".into(),
            role: Some("manager".into()),
        });
        assert_eq!(
            member_effect(true, Some(&member()), &erase, now),
            MemberEffect::Erase
        );
        let note = StoreEvent::AssociateNote(AssociateNote {
            member_id: 7,
            author: "A-17".into(),
            body: "likes tea".into(),
        });
        assert_eq!(
            member_effect(true, Some(&member()), &note, now),
            MemberEffect::AddNote
        );
        let visit = StoreEvent::KioskVisit(KioskVisit {
            member_id: 7,
            store_id: Some(1),
            at: "2026-02-01 08:00:00".into(),
        });
        assert_eq!(
            member_effect(true, Some(&member()), &visit, now),
            MemberEffect::Fact
        );
    }

    #[test]
    fn the_earliest_redemption_counts_whichever_arrives_first() {
        let at = |time: &str, store_id: i64| Redemption {
            store_id,
            at: time.into(),
            till_id: Some(format!("till-{store_id}")),
            value_cents: Some(300),
        };
        let first = at("2026-02-01 10:00:00", 1);
        let earlier = at("2026-02-01 09:00:00", 2);
        let later = at("2026-02-01 11:00:00", 3);
        let judged = over_redemption(first.clone(), earlier.clone());
        assert!(judged.arriving_wins);
        assert_eq!((judged.counted, judged.over), (earlier, first.clone()));
        let judged = over_redemption(first.clone(), later.clone());
        assert!(!judged.arriving_wins);
        assert_eq!((judged.counted, judged.over), (first, later));
    }
}
