//! Helpers the console's integration tests share.

pub mod postgres;
