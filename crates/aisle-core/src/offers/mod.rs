//! Offers and coupons: which of the store's active offers a member should
//! get, and why.
//!
//! Data flows one way: [`features`] summarizes a member's history,
//! [`model`] turns it into P(redeem) for an offer, [`engine`] ranks the
//! eligible offers by expected value under each offer's [`rules`] (a pure
//! function of its inputs, the clock included), and [`eval`] measures the
//! model against baselines on real campaigns.

pub mod engine;
pub mod eval;
pub mod features;
pub mod model;
pub mod rules;
