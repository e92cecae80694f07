//! The crate's integration tests, gathered in one binary (one link of the whole tree, not one per file).

mod clienteling;
mod hq_storage;
mod identify;
mod import;
mod kiosk;
mod offers;
mod recommend;
