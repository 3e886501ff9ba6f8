//! The built-in matcher, built once per fuzzing process.

use std::sync::OnceLock;

use wordlists::{Libraries, Matcher, MatcherBuilder};

pub fn matcher() -> &'static Matcher {
    static M: OnceLock<Matcher> = OnceLock::new();
    M.get_or_init(|| {
        MatcherBuilder::new(Libraries::builtin().expect("built-in libraries"))
            .build()
            .expect("matcher")
    })
}
