//! Standard spelling of a chat-speak line ("ur" to "your", "dont" to
//! "don't", "wanna" to "want to"), the other way from
//! [`crate::chatspeak`].
//!
//! Only for training the semantic layer's head (`wordlists semantic train
//! --standard-spelling`): each labelled line is then learnt in the
//! spelling it was written in and in this one, so the head judges a line
//! by what it says rather than by how it is spelt. The shipped head,
//! trained on chat-speak alone, reads the same risky lines written out in
//! standard spelling far less well; trained with this it reads both
//! better but flags far more ordinary prose, so it is not shipped (see
//! the README). The matcher never uses it.

/// Chat-speak words and their standard spelling (the model reads lower
/// case, so case is not restored).
const STANDARD: &[(&str, &str)] = &[
    ("u", "you"),
    ("ya", "you"),
    ("ur", "your"),
    ("urself", "yourself"),
    ("youre", "you're"),
    ("r", "are"),
    ("im", "i'm"),
    ("ive", "i've"),
    ("ill", "i'll"),
    ("id", "i'd"),
    ("dont", "don't"),
    ("cant", "can't"),
    ("wont", "won't"),
    ("didnt", "didn't"),
    ("doesnt", "doesn't"),
    ("isnt", "isn't"),
    ("wasnt", "wasn't"),
    ("hes", "he's"),
    ("shes", "she's"),
    ("thats", "that's"),
    ("whats", "what's"),
    ("theyre", "they're"),
    ("wanna", "want to"),
    ("gonna", "going to"),
    ("gotta", "got to"),
    ("pls", "please"),
    ("plz", "please"),
    ("rn", "right now"),
    ("tmrw", "tomorrow"),
    ("tmr", "tomorrow"),
    ("bc", "because"),
    ("cos", "because"),
    ("coz", "because"),
    ("ppl", "people"),
    ("abt", "about"),
    ("msg", "message"),
    ("txt", "text"),
    ("b4", "before"),
    ("thx", "thanks"),
    ("idk", "i don't know"),
    ("tbh", "to be honest"),
    ("ngl", "not going to lie"),
    ("wat", "what"),
    ("wot", "what"),
    ("luv", "love"),
    ("sum1", "someone"),
    ("some1", "someone"),
    ("any1", "anyone"),
    ("every1", "everyone"),
    ("no1", "no one"),
    ("2nite", "tonight"),
    ("tonite", "tonight"),
    ("yh", "yeah"),
    ("k", "ok"),
];

/// `line` in standard spelling: each word (split at spaces, punctuation
/// after it kept) that is chat-speak replaced, and a full stop at the end unless it ends in one,
/// a question mark or an exclamation mark.
pub fn standard(line: &str) -> String {
    let mut out: String = line
        .split(' ')
        .map(|w| {
            // The word without the punctuation after it ("tmrw?").
            let bare = w.trim_end_matches(|c: char| c.is_ascii_punctuation());
            match STANDARD
                .iter()
                .find(|(chat, _)| bare.eq_ignore_ascii_case(chat))
            {
                Some((_, std)) => format!("{std}{}", &w[bare.len()..]),
                None => w.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    if !out.ends_with(['.', '?', '!']) {
        out.push('.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::standard;

    #[test]
    fn chat_speak_is_written_out() {
        assert_eq!(
            standard("r u home alone rn dont tell ur mum"),
            "are you home alone right now don't tell your mum."
        );
        assert_eq!(
            standard("im gonna do it tmrw?"),
            "i'm going to do it tomorrow?"
        );
    }

    #[test]
    fn ordinary_words_are_left_alone() {
        assert_eq!(
            standard("the cat sat on the mat."),
            "the cat sat on the mat."
        );
        // Only whole words: "ur" inside "your" or "urgent" is not chat-speak.
        assert_eq!(standard("urgent news"), "urgent news.");
    }
}
