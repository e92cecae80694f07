//! The crate's integration tests, gathered in one binary (one link of the whole tree, not one per file).
mod support;

mod commands;
mod e2e_webkit;
