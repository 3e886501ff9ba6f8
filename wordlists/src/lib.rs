//! Term libraries for safeguarding, and the engine that matches them.
//!
//! ```
//! use wordlists::{Libraries, MatcherBuilder};
//! let matcher = MatcherBuilder::new(Libraries::builtin()?).build()?;
//! let hits = matcher.scan("i want to k1ll mys3lf");
//! assert!(hits.iter().any(|h| h.entry.term == "kill myself" && h.severity == 5));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - [`chatspeak`]: how pupils spell a library's words;
//! - [`fold`]: what one character means (case, accents, look-alikes);
//! - [`normalize`]: the exact normaliser, with offsets into the original;
//! - [`skeleton`]: the coarse form the automaton runs over;
//! - [`verify`]: the letter-by-letter check behind every hit;
//! - [`walk`]: the skeleton walk over raw text that finds candidates;
//! - [`library`]: the TOML format and the built-in libraries;
//! - [`matcher`]: the engine;
//! - [`detect`]: phone numbers, emails, postcodes and addresses;
//! - [`domains`]: website categories and the host of an address;
//! - [`stream`]: typed text, key by key, with editing keys respected;
//! - [`semantic`]: risk in ordinary words, judged by a sentence encoder
//!   ([`minilm`], tokenised by [`wordpiece`]) and a trained classifier.
//!
//! No I/O happens here; the `wordlists` binary reads files.

pub mod chatspeak;
pub mod detect;
pub mod domains;
pub mod fold;
pub mod library;
pub mod matcher;
pub mod minilm;
pub mod normalize;
pub mod semantic;
pub mod skeleton;
pub mod spelling;
pub mod stream;
pub mod verify;
pub mod walk;
pub mod wordpiece;

pub use library::{Category, Entry, Libraries, LibraryError, Rule};
pub use matcher::{BuildError, Hit, Matcher, MatcherBuilder};
pub use stream::{Committed, Key, KeyStream};
