//! Chat-speak: the spellings pupils use for the words of a library phrase
//! ("u" for you, "ur" for your, "wanna" for want to, "tmrw" for tomorrow).
//!
//! They are applied to the *terms*, not to the text: each normalised term
//! is expanded at build time into its chat-speak forms, which go into the
//! automaton beside it. So the fast pass is unchanged (no lookup per word
//! of the text), a hit's offsets are those of the words as written, and
//! "kill urself" and "kill yourself" are one entry found two ways.
//!
//! The table holds only spellings that are not ordinary English words in
//! another sense: "r" for are and "u" for you, but not "no" for know.
//! A term yields at most [`MAX_VARIANTS`] forms.

/// Most forms one term expands to (the written form included).
pub const MAX_VARIANTS: usize = 16;

/// Normalised words (or phrases) and the chat-speak forms pupils write
/// for them. Normalised: lower case, apostrophes dropped ("dont").
const SPELLINGS: &[(&str, &[&str])] = &[
    ("you", &["u", "ya"]),
    ("your", &["ur"]),
    ("youre", &["ur", "your"]),
    ("yourself", &["urself"]),
    ("are", &["r"]),
    ("want to", &["wanna"]),
    ("going to", &["gonna"]),
    ("got to", &["gotta"]),
    ("i am", &["im"]),
    ("i will", &["ill"]),
    ("i am going to", &["imma"]),
    ("tonight", &["tonite", "2nite"]),
    ("tomorrow", &["tmrw", "tmr", "tomoz"]),
    ("right now", &["rn"]),
    ("please", &["pls", "plz"]),
    ("because", &["bc", "cos", "coz"]),
    ("people", &["ppl"]),
    ("anyone", &["any1"]),
    ("no one", &["no1", "noone"]),
    ("someone", &["some1", "sum1"]),
    ("everyone", &["every1"]),
    ("trying to", &["tryna"]),
    ("love", &["luv"]),
    ("before", &["b4"]),
    ("really", &["rly"]),
    ("what", &["wat", "wot"]),
    ("about", &["abt"]),
    ("picture", &["pic"]),
    ("pictures", &["pics"]),
    ("suicide", &["sewerslide"]),
    ("message", &["msg"]),
    ("messages", &["msgs"]),
];

/// A normalised term (ASCII, words separated by one space) and its
/// chat-speak forms, the term itself first, without duplicates, at most
/// [`MAX_VARIANTS`]. Forms with fewer respellings come first, so a long
/// phrase keeps every one-word respelling before any of the combinations
/// the cap cuts off.
pub fn variants(term: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = vec![term.to_vec()];
    let mut seen: std::collections::HashSet<Vec<u8>> = out.iter().cloned().collect();
    // Breadth first: out[i] gives every form with one more respelling.
    let mut i = 0;
    while i < out.len() && out.len() < MAX_VARIANTS {
        let form = out[i].clone();
        let words: Vec<&[u8]> = form.split(|&b| b == b' ').collect();
        for at in 0..words.len() {
            for (from, to) in SPELLINGS {
                let key: Vec<&[u8]> = from.as_bytes().split(|&b| b == b' ').collect();
                if words.len() - at < key.len() || words[at..at + key.len()] != key[..] {
                    continue;
                }
                for alt in *to {
                    let mut v = words[..at].join(&b' ');
                    if !v.is_empty() {
                        v.push(b' ');
                    }
                    v.extend_from_slice(alt.as_bytes());
                    for w in &words[at + key.len()..] {
                        v.push(b' ');
                        v.extend_from_slice(w);
                    }
                    if out.len() < MAX_VARIANTS && seen.insert(v.clone()) {
                        out.push(v);
                    }
                }
            }
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(term: &str) -> Vec<String> {
        variants(term.as_bytes())
            .into_iter()
            .map(|b| String::from_utf8(b).unwrap())
            .collect()
    }

    #[test]
    fn the_written_form_comes_first() {
        assert_eq!(v("kill yourself")[0], "kill yourself");
        assert_eq!(v("grape"), ["grape"]);
    }

    #[test]
    fn words_and_phrases_get_their_chat_forms() {
        let mut forms = v("i want to kill myself");
        forms.extend(v("i am going to kill myself"));
        for want in ["i wanna kill myself", "im gonna kill myself"] {
            assert!(forms.contains(&want.to_owned()), "{want} in {forms:?}");
        }
        assert!(v("are you alone").contains(&"r u alone".to_owned()));
        let threat = v("i am going to kill you");
        assert!(threat.contains(&"imma kill you".to_owned()));
        assert!(threat.contains(&"imma kill u".to_owned()));
        assert!(threat.contains(&"i am gonna kill u".to_owned()));
    }

    #[test]
    fn expansion_is_bounded() {
        let forms = v("you your you your you your you your are are");
        assert!(forms.len() <= MAX_VARIANTS);
        assert_eq!(forms[0], "you your you your you your you your are are");
    }
}
