//! The tokeniser of the semantic layer's model: BERT's uncased WordPiece.
//!
//! Text is lowercased, accents are dropped (NFD, marks removed), control
//! characters removed, and it is split at whitespace and around every
//! punctuation character. Each word is then cut greedily into the longest
//! pieces of the vocabulary, pieces after the first written `##piece`; a
//! word with no such cutting, or longer than [`MAX_WORD_CHARS`], becomes
//! `[UNK]`. The result is framed by `[CLS]` and `[SEP]`, as the model was
//! trained.

use std::collections::HashMap;

use thiserror::Error;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Longer words are one unknown piece, as in BERT.
pub const MAX_WORD_CHARS: usize = 100;

/// Reading a vocabulary failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum VocabError {
    /// The file is not the JSON of a Hugging Face `tokenizer.json`.
    #[error("the tokenizer file is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// It has no WordPiece vocabulary under `model.vocab`.
    #[error(
        "the tokenizer file has no WordPiece vocabulary (model.vocab): is it a BERT tokenizer?"
    )]
    NoVocab,
    /// A special token the model needs is missing.
    #[error("the vocabulary lacks the special token {0}")]
    Missing(&'static str),
}

/// A WordPiece vocabulary and the ids of its special tokens.
#[derive(Debug)]
pub struct WordPiece {
    ids: HashMap<String, u32>,
    cls: u32,
    sep: u32,
    unk: u32,
    len: usize,
}

impl WordPiece {
    /// Reads the vocabulary of a Hugging Face `tokenizer.json`.
    pub fn from_tokenizer_json(json: &str) -> Result<WordPiece, VocabError> {
        #[derive(serde::Deserialize)]
        struct File {
            model: Model,
        }
        #[derive(serde::Deserialize)]
        struct Model {
            vocab: Option<HashMap<String, u32>>,
        }
        let file: File = serde_json::from_str(json)?;
        let ids = file.model.vocab.ok_or(VocabError::NoVocab)?;
        let get = |t: &'static str| ids.get(t).copied().ok_or(VocabError::Missing(t));
        let (cls, sep, unk) = (get("[CLS]")?, get("[SEP]")?, get("[UNK]")?);
        let len = ids.values().map(|&i| i as usize + 1).max().unwrap_or(0);
        Ok(WordPiece {
            ids,
            cls,
            sep,
            unk,
            len,
        })
    }

    /// One more than the largest id: the rows the model's embedding table
    /// must have.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the vocabulary is empty (it never is once read).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The ids of `text`, framed by `[CLS]` and `[SEP]`, at most `max`
    /// in all (the words past it are left out).
    pub fn encode(&self, text: &str, max: usize) -> Vec<u32> {
        let mut out = vec![self.cls];
        let room = max.saturating_sub(1);
        // `max` tokens never need more of the text than this (each word is
        // at least one token, of at most MAX_WORD_CHARS characters): a long
        // line is not split into words past what can be used.
        let mut end = text.len().min(max.saturating_mul(4 * (MAX_WORD_CHARS + 1)));
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        for word in words(&text[..end]) {
            if out.len() >= room {
                break;
            }
            self.pieces(&word, &mut out);
        }
        out.truncate(room.max(1));
        out.push(self.sep);
        out
    }

    fn pieces(&self, word: &str, out: &mut Vec<u32>) {
        if word.chars().count() > MAX_WORD_CHARS {
            out.push(self.unk);
            return;
        }
        let start_len = out.len();
        let mut start = 0;
        let mut piece = String::new();
        while start < word.len() {
            let mut end = word.len();
            let mut found = None;
            while end > start {
                piece.clear();
                if start > 0 {
                    piece.push_str("##");
                }
                piece.push_str(&word[start..end]);
                if let Some(&id) = self.ids.get(&piece) {
                    found = Some(id);
                    break;
                }
                // Back off by one character, not one byte.
                end = word[..end]
                    .char_indices()
                    .next_back()
                    .map_or(start, |(i, _)| i);
            }
            match found {
                Some(id) => {
                    out.push(id);
                    start = end;
                }
                None => {
                    out.truncate(start_len);
                    out.push(self.unk);
                    return;
                }
            }
        }
    }
}

/// BERT's basic tokenisation: lowercase, accents dropped, split at
/// whitespace and around punctuation.
fn words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    for c in text.chars().flat_map(char::to_lowercase).nfd() {
        if is_combining_mark(c) || c == '\u{fffd}' || (c.is_control() && !c.is_whitespace()) {
            continue;
        }
        if c.is_whitespace() {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
        } else if is_punctuation(c) {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            words.push(c.to_string());
        } else {
            word.push(c);
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// BERT's test: ASCII symbols count as punctuation, and so does anything
/// that is neither a letter, a number, whitespace nor a mark.
fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation() || (!c.is_ascii() && !c.is_alphanumeric() && !c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> WordPiece {
        let tokens = [
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "i", "cut", "my", "##self", "self", "!", "un",
            "##happy", "cafe",
        ];
        let map: Vec<String> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| format!("{t:?}: {i}"))
            .collect();
        WordPiece::from_tokenizer_json(&format!(
            r#"{{"model": {{"vocab": {{{}}}}}}}"#,
            map.join(",")
        ))
        .unwrap()
    }

    #[test]
    fn words_are_cut_into_the_longest_pieces_and_framed() {
        let v = vocab();
        // [CLS] i cut my ##self ! [SEP]
        assert_eq!(v.encode("I cut MYSELF!", 64), vec![2, 4, 5, 6, 7, 9, 3]);
        assert_eq!(v.encode("unhappy", 64), vec![2, 10, 11, 3]);
    }

    #[test]
    fn accents_are_dropped_and_unknown_words_are_one_piece() {
        let v = vocab();
        assert_eq!(v.encode("Café", 64), vec![2, 12, 3]);
        assert_eq!(v.encode("zzz cut", 64), vec![2, 1, 5, 3]);
    }

    #[test]
    fn the_length_is_capped_with_the_frame_kept() {
        let v = vocab();
        let ids = v.encode(&"cut ".repeat(50), 8);
        assert_eq!(ids.len(), 8);
        assert_eq!((ids[0], ids[7]), (2, 3));
    }

    #[test]
    fn a_very_long_line_is_read_only_as_far_as_the_tokens_reach() {
        let v = vocab();
        let long = format!("{}é", "cut ".repeat(1_000_000));
        let ids = v.encode(&long, 8);
        assert_eq!(ids, [2, 5, 5, 5, 5, 5, 5, 3]);
    }

    #[test]
    fn a_file_without_a_vocabulary_is_refused() {
        assert!(matches!(
            WordPiece::from_tokenizer_json(r#"{"model": {}}"#),
            Err(VocabError::NoVocab)
        ));
        assert!(WordPiece::from_tokenizer_json("not json").is_err());
    }
}
