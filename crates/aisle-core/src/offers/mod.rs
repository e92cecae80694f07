//! Offers and coupons: which of the store's active offers a member should
//! get and why, and the coupons that carry them to the till.
//!
//! Data flows one way: [`features`] summarizes a member's history,
//! [`model`] turns it into P(redeem) for an offer, [`engine`] ranks the
//! eligible offers by expected value under each offer's [`rules`] (a pure
//! function of its inputs, the clock included), [`issue`] re-checks the rules
//! in the transaction that issues a [`coupon`] instance through the
//! [`ledger`], which also redeems it exactly once; [`eval`] measures the model
//! against baselines on real campaigns.

pub mod coupon;
pub mod engine;
pub mod eval;
pub mod features;
pub mod issue;
pub mod ledger;
pub mod model;
pub mod rules;
