//! The crate's integration tests, gathered in one binary (one link of the whole tree, not one per file).

mod camera;
mod crash;
mod flow;
mod models;
mod translations;
mod xvfb;
