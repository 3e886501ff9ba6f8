//! The capture the store tests build on: a self-harm hit ("kms", severity
//! 5) typed in a chat app. Tests change what they need with struct update
//! syntax (`Capture { context: …, ..capture(…) }`).

use protocol::{Capture, Screenshot, Source, UnixMillis};
use uuid::Uuid;

/// A fresh capture of `user`'s at `time` with `screenshot`.
pub fn capture(user: &str, time: UnixMillis, screenshot: Screenshot) -> Capture {
    Capture {
        id: Uuid::now_v7(),
        time,
        user: user.into(),
        source: Source::Typed,
        app: "chat".into(),
        window_title: "Chat".into(),
        url: None,
        term: "kms".into(),
        category: "self-harm".into(),
        severity: 5,
        context: "kms".into(),
        context_match: (0, 3),
        screenshot,
    }
}
