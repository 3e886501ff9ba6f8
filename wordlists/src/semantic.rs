//! The semantic layer: risk said in ordinary words, which no term or rule
//! names ("i keep doing it to my arms and no one notices").
//!
//! A sentence encoder ([`crate::minilm`], all-MiniLM-L6-v2) turns a line
//! into a vector; a linear classifier over those vectors (the *head*,
//! [`Head`]), trained on labelled example lines (`wordlists semantic
//! train`), gives the chance that the line is innocent and, otherwise, its
//! most likely category. A line whose chance of being innocent is below
//! `1 − threshold` is a [`Verdict`]: staff see the category, the
//! confidence, and that the semantic layer (not a term) raised it.
//!
//! It is a second opinion, never the first: the caller runs it only on
//! lines the terms and rules left below the capture threshold, and the
//! policy can switch it off. Nothing here reads files: callers hand over
//! the bytes (see `wordlists/semantic/fetch-model.sh` for the model).

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::matcher::Hit;
use crate::minilm::{Encoder, ModelError};
use crate::wordpiece::{VocabError, WordPiece};

/// How the term of a semantic capture begins ("semantic layer: reads as
/// self-harm (97% sure)"): the agent writes it, the console recognises it.
pub const CAPTURE_TERM: &str = "semantic layer";

/// What a semantic capture means, for staff (the console shows it where a
/// term's definition goes).
pub const EXPLANATION: &str = "No term in this message matched. The semantic layer, a language model on the laptop, judged that the message as a whole reads like the risky messages of this category it was trained on, and how sure it was. It is a second opinion: weigh the words themselves.";

/// The name of the class of innocent lines in a head.
pub const INNOCENT: &str = "innocent";

/// The most tokens of a line the encoder reads: pupils' messages are far
/// shorter; a longer line is judged by its start.
pub const MAX_TOKENS: usize = 128;

/// Loading the semantic layer failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SemanticError {
    /// The model's weights could not be read.
    #[error("semantic model: {0}")]
    Model(#[from] ModelError),
    /// The model's vocabulary could not be read.
    #[error("semantic model's vocabulary: {0}")]
    Vocab(#[from] VocabError),
    /// The head is not valid TOML of the expected shape.
    #[error("semantic head: {0}")]
    HeadFormat(#[from] toml::de::Error),
    /// The head does not fit the model or is incomplete.
    #[error("semantic head: {0}")]
    Head(String),
}

/// One class of the head: its weights over the sentence vector.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Class {
    /// [`INNOCENT`] or a library category.
    pub name: String,
    /// Added to the class's score.
    pub bias: f32,
    /// One per dimension of the sentence vector.
    pub weights: Vec<f32>,
}

/// The classifier over sentence vectors, as `wordlists/semantic/head.toml`
/// stores it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Head {
    /// What it was trained on and how: for the record, not read.
    pub trained: String,
    /// The SHA-256 of the model file it was trained over.
    pub model_sha256: String,
    /// A line is flagged when its chance of being innocent is below
    /// `1 − threshold`.
    pub threshold: f32,
    /// The classes, [`INNOCENT`] among them.
    #[serde(rename = "class")]
    pub classes: Vec<Class>,
}

impl Head {
    /// Reads a head from its TOML.
    pub fn from_toml(text: &str) -> Result<Head, SemanticError> {
        let head: Head = toml::from_str(text)?;
        head.check(None)?;
        Ok(head)
    }

    /// The head as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a head always serialises")
    }

    fn check(&self, width: Option<usize>) -> Result<(), SemanticError> {
        if !self.classes.iter().any(|c| c.name == INNOCENT) {
            return Err(SemanticError::Head(format!("it has no class {INNOCENT:?}")));
        }
        if self.classes.len() < 2 {
            return Err(SemanticError::Head(
                "it needs a category besides innocent".into(),
            ));
        }
        if !(0.5..1.0).contains(&self.threshold) {
            return Err(SemanticError::Head(format!(
                "threshold {} is outside 0.5..1",
                self.threshold
            )));
        }
        if let Some(c) = self
            .classes
            .iter()
            .find(|c| !c.bias.is_finite() || c.weights.iter().any(|w| !w.is_finite()))
        {
            return Err(SemanticError::Head(format!(
                "class {:?} has a weight that is not a finite number",
                c.name
            )));
        }
        let want = width.unwrap_or(self.classes[0].weights.len());
        if let Some(c) = self.classes.iter().find(|c| c.weights.len() != want) {
            return Err(SemanticError::Head(format!(
                "class {:?} has {} weights, the model's vectors {want}",
                c.name,
                c.weights.len()
            )));
        }
        Ok(())
    }

    /// The chance of each class for a sentence vector, in class order.
    pub fn probabilities(&self, vector: &[f32]) -> Vec<f32> {
        let scores: Vec<f32> = self
            .classes
            .iter()
            .map(|c| {
                c.bias
                    + c.weights
                        .iter()
                        .zip(vector)
                        .map(|(w, v)| w * v)
                        .sum::<f32>()
            })
            .collect();
        softmax(&scores)
    }
}

/// What the semantic layer says of a line it flags.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The most likely category.
    pub category: String,
    /// The chance that the line is not innocent, 0 to 1.
    pub risk: f32,
    /// The chance of the category itself.
    pub confidence: f32,
}

/// The encoder, its vocabulary and the head: built once, shared.
#[derive(Debug)]
pub struct Semantic {
    vocab: WordPiece,
    encoder: Encoder,
    head: Head,
    innocent: usize,
}

impl Semantic {
    /// Builds the layer from the model's files and a head trained over it.
    pub fn new(model: &[u8], tokenizer_json: &str, head: Head) -> Result<Semantic, SemanticError> {
        let encoder = Encoder::from_safetensors(model)?;
        let vocab = WordPiece::from_tokenizer_json(tokenizer_json)?;
        if vocab.len() > encoder.vocab() {
            return Err(SemanticError::Head(format!(
                "the vocabulary has {} tokens, the model's table {}",
                vocab.len(),
                encoder.vocab()
            )));
        }
        head.check(Some(encoder.width()))?;
        let innocent = head
            .classes
            .iter()
            .position(|c| c.name == INNOCENT)
            .expect("checked");
        Ok(Semantic {
            vocab,
            encoder,
            head,
            innocent,
        })
    }

    /// Builds the layer from the model's files with the head shipped in
    /// this crate (`wordlists/semantic/head.toml`), after checking that
    /// the model is the one that head was trained over.
    pub fn with_builtin_head(
        model: &[u8],
        tokenizer_json: &str,
    ) -> Result<Semantic, SemanticError> {
        let head = builtin_head()?;
        let sha = sha256_hex(model);
        if sha != head.model_sha256 {
            return Err(SemanticError::Head(format!(
                "the model file is not the one the head was trained over (sha256 {sha}, \
                 the head's {}): fetch it with wordlists/semantic/fetch-model.sh",
                head.model_sha256
            )));
        }
        Semantic::new(model, tokenizer_json, head)
    }

    /// The sentence vector of a line.
    pub fn vector(&self, line: &str) -> Vec<f32> {
        let max = MAX_TOKENS.min(self.encoder.max_tokens());
        self.encoder.encode(&self.vocab.encode(line, max))
    }

    /// The layer's judgement of a line (without a speaker's label, see
    /// [`without_speaker`]): `Some` when it reads as risky.
    pub fn judge(&self, line: &str) -> Option<Verdict> {
        let line = without_speaker(line);
        if line.trim().is_empty() {
            return None;
        }
        self.judge_vector(&self.vector(line))
    }

    /// The layer as a second opinion: judges `line` only when none of the
    /// terms' and rules' `hits` in it reach `threshold` (the capture
    /// threshold), so it adds captures and never changes one.
    pub fn second_opinion(&self, line: &str, hits: &[Hit<'_>], threshold: u8) -> Option<Verdict> {
        if hits.iter().any(|h| h.severity >= threshold) {
            return None;
        }
        self.judge(line)
    }

    /// [`Semantic::judge`] of a vector already made.
    pub fn judge_vector(&self, vector: &[f32]) -> Option<Verdict> {
        let p = self.head.probabilities(vector);
        let risk = 1.0 - p[self.innocent];
        if risk < self.head.threshold {
            return None;
        }
        let (best, confidence) = p
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != self.innocent)
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, &c)| (i, c))?;
        Some(Verdict {
            category: self.head.classes[best].name.clone(),
            risk,
            confidence,
        })
    }

    /// The head in use.
    pub fn head(&self) -> &Head {
        &self.head
    }

    /// Heap bytes of the model's weights.
    pub fn weight_bytes(&self) -> usize {
        self.encoder.weight_bytes()
    }
}

/// The head shipped with the crate, trained by `wordlists semantic train`.
pub fn builtin_head() -> Result<Head, SemanticError> {
    Head::from_toml(include_str!("../semantic/head.toml"))
}

/// The SHA-256 of `bytes`, in lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn softmax(scores: &[f32]) -> Vec<f32> {
    let top = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = scores.iter().map(|s| (s - top).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.iter().map(|e| e / sum).collect()
}

/// A chat line without its speaker's label ("Sam: do u have ur own room"
/// is judged as "do u have ur own room"): the label is not the message,
/// and a name in front moves the model's judgement. A label is at most
/// three words of letters (and `.`, `_`, `-`, `'`) before a colon and a
/// space, so a time ("12:30") or a sentence with a colon in it stays.
pub fn without_speaker(line: &str) -> &str {
    let Some((label, rest)) = line.split_once(": ") else {
        return line;
    };
    let words = label.split_whitespace().count();
    let is_name = (1..=3).contains(&words)
        && label.len() <= 40
        && label
            .chars()
            .all(|c| c.is_alphabetic() || c.is_whitespace() || ".'_-".contains(c));
    if is_name && !rest.trim().is_empty() {
        rest.trim_start()
    } else {
        line
    }
}

/// One labelled line for training: its vector, class and weight.
#[derive(Debug, Clone)]
pub struct Example {
    /// The sentence vector.
    pub vector: Vec<f32>,
    /// Index into the class names given to [`train`].
    pub class: usize,
    /// How much it counts (prose counts less than written examples).
    pub weight: f32,
}

/// Fits a multinomial logistic regression (softmax over `classes`, L2
/// penalty `1 / (2 c)` on the weights, as scikit-learn's `C`) by full-batch
/// gradient descent with Adam, from zero, so the same examples always
/// give the same head.
pub fn train(
    classes: &[String],
    examples: &[Example],
    c: f32,
    threshold: f32,
    trained: String,
    model_sha256: String,
) -> Head {
    let k = classes.len();
    let d = examples.first().map_or(0, |e| e.vector.len());
    let mut w = vec![0.0f32; k * (d + 1)];
    let (mut m, mut v) = (vec![0.0f32; w.len()], vec![0.0f32; w.len()]);
    let total: f32 = examples.iter().map(|e| e.weight).sum::<f32>().max(1e-9);
    let (rate, b1, b2) = (0.05f32, 0.9f32, 0.999f32);
    let mut grad = vec![0.0f32; w.len()];
    let mut scores = vec![0.0f32; k];
    for step in 1..=STEPS {
        grad.iter_mut().for_each(|g| *g = 0.0);
        for e in examples {
            for (j, s) in scores.iter_mut().enumerate() {
                let row = &w[j * (d + 1)..(j + 1) * (d + 1)];
                *s = row[d]
                    + row[..d]
                        .iter()
                        .zip(&e.vector)
                        .map(|(a, b)| a * b)
                        .sum::<f32>();
            }
            let p = softmax(&scores);
            for (j, pj) in p.iter().enumerate() {
                let err = (pj - f32::from(u8::from(j == e.class))) * e.weight;
                let row = &mut grad[j * (d + 1)..(j + 1) * (d + 1)];
                for (g, x) in row[..d].iter_mut().zip(&e.vector) {
                    *g += err * x;
                }
                row[d] += err;
            }
        }
        for j in 0..k {
            for i in 0..=d {
                let at = j * (d + 1) + i;
                // The mean loss's gradient, and the penalty's (not on biases).
                let mut g = grad[at] / total;
                if i < d {
                    g += w[at] / (c * total);
                }
                m[at] = b1 * m[at] + (1.0 - b1) * g;
                v[at] = b2 * v[at] + (1.0 - b2) * g * g;
                let mh = m[at] / (1.0 - b1.powi(step));
                let vh = v[at] / (1.0 - b2.powi(step));
                w[at] -= rate * mh / (vh.sqrt() + 1e-8);
            }
        }
    }
    Head {
        trained,
        model_sha256,
        threshold,
        classes: classes
            .iter()
            .enumerate()
            .map(|(j, name)| Class {
                name: name.clone(),
                bias: w[j * (d + 1) + d],
                weights: w[j * (d + 1)..j * (d + 1) + d].to_vec(),
            })
            .collect(),
    }
}

/// Gradient steps [`train`] takes.
const STEPS: i32 = 600;

#[cfg(test)]
mod tests {
    use super::*;

    fn example(vector: [f32; 2], class: usize) -> Example {
        Example {
            vector: vector.to_vec(),
            class,
            weight: 1.0,
        }
    }

    #[test]
    fn training_separates_classes_and_the_head_round_trips() {
        let classes = vec![INNOCENT.to_owned(), "self-harm".to_owned()];
        let mut examples = Vec::new();
        for i in 0..20 {
            let t = i as f32 / 20.0;
            examples.push(example([1.0, t], 0));
            examples.push(example([-1.0, t], 1));
        }
        let head = train(&classes, &examples, 10.0, 0.9, "test".into(), "none".into());
        let p = head.probabilities(&[-1.0, 0.5]);
        assert!(p[1] > 0.9, "{p:?}");
        let p = head.probabilities(&[1.0, 0.5]);
        assert!(p[0] > 0.9, "{p:?}");
        let again = Head::from_toml(&head.to_toml()).unwrap();
        assert_eq!(again.classes[1].weights, head.classes[1].weights);
    }

    #[test]
    fn a_speakers_label_is_left_out_of_what_is_judged() {
        assert_eq!(
            without_speaker("Sam: do u have ur own room"),
            "do u have ur own room"
        );
        assert_eq!(without_speaker("Mr O'Neil-Jones: hi"), "hi");
        assert_eq!(without_speaker("meet at 12:30 ok"), "meet at 12:30 ok");
        assert_eq!(
            without_speaker("note: this is a list: of things"),
            "this is a list: of things"
        );
        assert_eq!(
            without_speaker("the reason is simple: no"),
            "the reason is simple: no"
        );
        assert_eq!(without_speaker("Sam: "), "Sam: ");
    }

    #[test]
    fn a_head_without_innocent_or_of_ragged_width_is_refused() {
        let mut head = Head {
            trained: String::new(),
            model_sha256: String::new(),
            threshold: 0.9,
            classes: vec![
                Class {
                    name: INNOCENT.into(),
                    bias: 0.0,
                    weights: vec![0.0; 3],
                },
                Class {
                    name: "drugs".into(),
                    bias: 0.0,
                    weights: vec![0.0; 2],
                },
            ],
        };
        let err = Head::from_toml(&head.to_toml()).unwrap_err().to_string();
        assert!(err.contains("has 2 weights"), "{err}");
        head.classes[0].name = "adult".into();
        head.classes[1].weights = vec![0.0; 3];
        let err = Head::from_toml(&head.to_toml()).unwrap_err().to_string();
        assert!(err.contains("no class"), "{err}");
        assert!(Head::from_toml("threshold = [").is_err());
        head.classes[0].name = INNOCENT.into();
        head.classes[1].bias = f32::NAN;
        let err = Head::from_toml(&head.to_toml()).unwrap_err().to_string();
        assert!(err.contains("not a finite number"), "{err}");
    }
}
