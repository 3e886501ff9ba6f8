//! The school's console server: enrolls laptops, takes in what their agents
//! send without losing or doubling it, keeps it, and serves it to staff.
//!
//! - [`data_dir`]: the data directory (CA, certificates, database, images);
//! - [`settings`]: the settings file, `console.toml`;
//! - [`store`]: storage traits, on SQLite or PostgreSQL;
//! - [`migrate`]: a school's SQLite console copied into a trust's PostgreSQL;
//! - [`agent_listener`]: enrollment and device sessions over TLS;
//! - [`ingest`]: checking records and storing them in batches before acks;
//! - [`alerts`]: alerts by mail and webhook to staff who are not looking;
//! - [`policy`]: the policy pushed to agents, with the AUP texts;
//! - [`mis_import`]: the school's MIS export, for the register of users;
//! - [`api`], [`https`]: the JSON API over HTTPS;
//! - [`console`]: everything wired together, with graceful shutdown;
//! - [`enrollment`]: minting enrollment tokens; [`secret`]: tokens and hashes;
//! - [`web`]: the web console for staff; [`csv`]: safe CSV exports;
//! - [`demo`]: the newcomer's first run.

pub mod agent_listener;
pub mod alerts;
pub mod api;
pub mod backup;
pub mod client_address;
pub mod console;
pub mod csv;
pub mod data_dir;
#[cfg(feature = "demo")]
pub mod demo;
pub mod enrollment;
pub mod error;
pub mod group_policy;
pub mod https;
pub mod ingest;
pub mod layers_cache;
pub mod mail;
pub mod migrate;
pub mod mis_import;
pub mod policy;
pub mod policy_service;
pub mod rate;
pub mod report_pdf;
pub mod school_week;
pub mod secret;
pub mod settings;
pub mod site_report;
pub mod storage_health;
pub mod store;
pub mod subject_access;
#[doc(hidden)]
pub mod test_database;
pub mod web;
pub mod web_certificate;
pub mod weekly_mail;
