//! Who may send an event, and whether HQ will apply it: decisions every
//! backend shares, over the few facts they read ([`Facts`]).

use aisle_proto::events::{RawEvent, RejectCode, Rejection};
use aisle_proto::{AssociateRecord, EventAck, RejectedEvent, StoreEvent};

use crate::storage::{Device, HqError};

/// What became of one uploaded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// Recorded before: acknowledged again, never applied twice.
    Duplicate,
    /// Quarantined, now or before.
    Rejected {
        code: String,
        reason: String,
    },
}

/// The answer to an upload: every event acknowledged (applied, seen before
/// or quarantined), duplicates counted, rejections with their reasons;
/// `record` decides each event in order.
pub fn acknowledge(
    events: &[RawEvent],
    mut record: impl FnMut(&RawEvent) -> Result<Outcome, HqError>,
) -> Result<EventAck, HqError> {
    let mut ack = EventAck {
        acknowledged: Vec::with_capacity(events.len()),
        duplicates: 0,
        rejected: Vec::new(),
    };
    for event in events {
        match record(event)? {
            Outcome::Applied => {}
            Outcome::Duplicate => ack.duplicates += 1,
            Outcome::Rejected { code, reason } => ack.rejected.push(RejectedEvent {
                key: event.idempotency_key.clone(),
                code,
                reason,
            }),
        }
        ack.acknowledged.push(event.idempotency_key.clone());
    }
    Ok(ack)
}

/// What the checks read of HQ's records, inside the recording transaction.
pub trait Facts {
    /// Whether `member_id` is in `store_id`'s partition.
    fn in_partition(&mut self, store_id: i64, member_id: i64) -> Result<bool, HqError>;
    /// HQ's record of an associate.
    fn associate(&mut self, staff_id: i64) -> Result<Option<AssociateRecord>, HqError>;
    /// Whether `device` signs coupons with `key_id`: one of its own
    /// registered keys, or a store-wide key of its store from before device keys.
    fn may_sign_with(&mut self, device: &Device, key_id: i64) -> Result<bool, HqError>;
    /// Whether HQ holds the member (an erased one too).
    fn member_known(&mut self, member_id: i64) -> Result<bool, HqError>;
    fn coupon_known(&mut self, coupon_id: i64) -> Result<bool, HqError>;
    fn store_known(&mut self, store_id: i64) -> Result<bool, HqError>;
}

/// Why `device` may not send `event`, if it may not (docs/PROTOCOL.md,
/// "Device kinds"): its kind does not send such events; the event names
/// another store than the device's; its member is outside the device's
/// store partition (a redemption excepted: a shopper redeems a signed
/// coupon anywhere); an erasure not requested by an active manager of the
/// store, or a consent grant not recorded by an active associate of the
/// store, in HQ's own records.
pub fn unauthorized(
    facts: &mut dyn Facts,
    device: &Device,
    event: &StoreEvent,
) -> Result<Option<Rejection>, HqError> {
    let kind = event.kind();
    if !device.kind.may_send(kind) {
        return Ok(Some(Rejection::new(
            RejectCode::NotAllowed,
            format!(
                "a {} may not send {} events",
                device.kind.name(),
                kind.name()
            ),
        )));
    }
    let named_store = match event {
        StoreEvent::KioskVisit(visit) => visit.store_id,
        StoreEvent::ProfileViewed(viewed) => Some(viewed.store_id),
        StoreEvent::CouponIssued(issued) => Some(issued.store_id),
        StoreEvent::CouponRedeemed(redeemed) => Some(redeemed.store_id),
        _ => None,
    };
    if let Some(named) = named_store
        && named != device.store_id
    {
        return Ok(Some(Rejection::new(
            RejectCode::WrongStore,
            format!(
                "the event names store {named}; this device belongs to store {}",
                device.store_id
            ),
        )));
    }
    let member_id = event.member_id();
    if !matches!(event, StoreEvent::CouponRedeemed(_))
        && !facts.in_partition(device.store_id, member_id)?
    {
        return Ok(Some(Rejection::new(
            RejectCode::OutsidePartition,
            format!(
                "member {member_id} is not in store {}'s partition",
                device.store_id
            ),
        )));
    }
    let acting = match event {
        StoreEvent::ErasureRequested(request) => Some((
            Some(request.requested_by.as_str()),
            request.role.as_deref(),
            aisle_proto::Role::Manager,
        )),
        StoreEvent::ConsentChanged(change) if change.granted => Some((
            change.by.as_deref(),
            change.role.as_deref(),
            aisle_proto::Role::Associate,
        )),
        _ => None,
    };
    if let Some((who, claimed_role, needed)) = acting
        && let Some(why) = associate_refusal(facts, device.store_id, who, claimed_role, needed)?
    {
        return Ok(Some(Rejection::new(RejectCode::NotAuthorized, why)));
    }
    if let StoreEvent::CouponIssued(issued) = event
        && !facts.may_sign_with(device, issued.key_id)?
    {
        return Ok(Some(Rejection::new(
            RejectCode::WrongKey,
            format!(
                "key {} of store {} is not this device's issuing key",
                issued.key_id, device.store_id
            ),
        )));
    }
    Ok(None)
}

/// Why the associate `who` (`staff:N`) may not act with `needed` at
/// `store_id`, by HQ's records, if they may not.
fn associate_refusal(
    facts: &mut dyn Facts,
    store_id: i64,
    who: Option<&str>,
    claimed_role: Option<&str>,
    needed: aisle_proto::Role,
) -> Result<Option<String>, HqError> {
    let Some(who) = who else {
        return Ok(Some(
            "no associate is named: HQ accepts this only from a signed-in associate".into(),
        ));
    };
    let Some(staff_id) = who
        .strip_prefix("staff:")
        .and_then(|n| n.parse::<i64>().ok())
    else {
        return Ok(Some(format!("{who:?} is not an associate (staff:N)")));
    };
    let Some(associate) = facts.associate(staff_id)? else {
        return Ok(Some(format!("HQ knows no associate {staff_id}")));
    };
    if !associate.active || associate.store_id != store_id {
        return Ok(Some(format!(
            "associate {staff_id} is not an active associate of store {store_id}"
        )));
    }
    if claimed_role.is_some_and(|claimed| claimed != associate.role.as_str()) {
        return Ok(Some(format!(
            "the store says associate {staff_id} is a {}; HQ's records say {}",
            claimed_role.unwrap_or_default(),
            associate.role.as_str()
        )));
    }
    if needed == aisle_proto::Role::Manager && associate.role != aisle_proto::Role::Manager {
        return Ok(Some(format!(
            "associate {staff_id} is not a manager: only a manager may do this"
        )));
    }
    Ok(None)
}

/// Why HQ will not apply a decoded event, if it will not: the store's own
/// rules ([`StoreEvent::check`]), then the master data: the member (an
/// erased one is known: their events are kept as facts), the coupon, the
/// stores, and the coupon formats the store's ledger uses.
pub fn refusal(facts: &mut dyn Facts, event: &StoreEvent) -> Result<Option<Rejection>, HqError> {
    if let Err(rejection) = event.check() {
        return Ok(Some(rejection));
    }
    let member_id = event.member_id();
    if !facts.member_known(member_id)? {
        return Ok(Some(Rejection::new(
            RejectCode::UnknownMember,
            format!("member {member_id} is not in HQ's master data"),
        )));
    }
    let (stores, coupon): (Vec<i64>, Option<(&str, i64, &str)>) = match event {
        StoreEvent::KioskVisit(visit) => (visit.store_id.into_iter().collect(), None),
        StoreEvent::ProfileViewed(viewed) => (vec![viewed.store_id], None),
        StoreEvent::CouponIssued(issued) => (
            vec![issued.store_id],
            Some((&issued.serial, issued.coupon_id, &issued.channel)),
        ),
        StoreEvent::CouponRedeemed(redeemed) => (
            vec![redeemed.store_id, redeemed.issuer_store_id],
            Some((&redeemed.serial, redeemed.coupon_id, &redeemed.channel)),
        ),
        StoreEvent::CouponSentToApp(sent) => {
            if !aisle_core::offers::coupon::is_serial(&sent.serial) {
                return Ok(Some(bad_serial(&sent.serial)));
            }
            (Vec::new(), None)
        }
        StoreEvent::PreferencesSet(_)
        | StoreEvent::ConsentChanged(_)
        | StoreEvent::AssociateNote(_)
        | StoreEvent::ErasureRequested(_) => (Vec::new(), None),
    };
    if let Some((serial, coupon_id, channel)) = coupon {
        if !aisle_core::offers::coupon::is_serial(serial) {
            return Ok(Some(bad_serial(serial)));
        }
        if aisle_core::offers::coupon::Channel::parse(channel).is_none() {
            return Ok(Some(Rejection::new(
                RejectCode::BadValue,
                format!("{channel:?} is not a coupon channel (kiosk, associate, till, import)"),
            )));
        }
        if !facts.coupon_known(coupon_id)? {
            return Ok(Some(Rejection::new(
                RejectCode::UnknownCoupon,
                format!("coupon {coupon_id} is not in HQ's catalog"),
            )));
        }
    }
    for store_id in stores {
        if !facts.store_known(store_id)? {
            return Ok(Some(Rejection::new(
                RejectCode::UnknownStore,
                format!("store {store_id} is not in HQ's master data"),
            )));
        }
    }
    Ok(None)
}

fn bad_serial(serial: &str) -> Rejection {
    Rejection::new(
        RejectCode::BadValue,
        format!("{serial:?} is not a coupon serial (16 digits)"),
    )
}
