//! The crate's integration tests, gathered in one binary (one link of the whole tree, not one per file).

mod cli;
mod coupons;
mod offers;
mod scan;
mod sync;
