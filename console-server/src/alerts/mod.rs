//! Alerts that reach staff who are not looking: rules in `console.toml`
//! ([`rules`]), alerts written with the record that raised them
//! ([`crate::store::alerts`]), and their delivery by mail and webhook with
//! retries ([`sender`]); what an alert says is in [`message`], and school
//! hours, which a rule may wait for, in [`hours`].

pub mod hours;
pub mod message;
pub mod rule_book;
pub mod rules;
pub mod sender;
