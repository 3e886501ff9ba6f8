//! Helpers the console's integration tests share. Each test binary uses
//! some of them, so what one binary leaves unused is no warning.
#![allow(dead_code)]

pub mod captures;
pub mod postgres;
pub mod stores;
