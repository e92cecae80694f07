//! On-device recommendations: "Buy again" (items a member repeats, ranked by
//! when they are due) and "Discover" (items new to them), each with a reason a
//! person understands, plus "often bought together" and non-personal lists.
//!
//! Train apart from serve: [`history`] reads purchases into dense arrays,
//! models are fitted from them into a versioned artifact, and a pure serving
//! function ranks, filters and explains. [`eval`] measures everything against
//! the [`baseline`]s in the same run.

pub mod artifact;
pub mod baseline;
pub mod eval;
pub mod history;
pub mod model;
pub mod serve;
pub mod trees;
