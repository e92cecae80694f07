//! Offers: personalized coupons, from the signed instance to its redemption at the till.

pub mod coupon;
pub mod ledger;
