//! Test support shared by the app's integration tests.

pub mod webkit;
