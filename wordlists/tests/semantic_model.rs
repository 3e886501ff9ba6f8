//! The semantic layer's model, run here, against figures from its
//! reference implementation (sentence-transformers and Hugging Face
//! tokenizers, Python): the same tokens, the same vector (to within the
//! rounding of the word embeddings, kept in 8 bits).
//!
//! Needs the model: `wordlists/semantic/fetch-model.sh` (tests/run runs it).

use wordlists::minilm::Encoder;
use wordlists::semantic::{Head, Semantic};
use wordlists::wordpiece::WordPiece;

mod common;
use common::read_model;

#[test]
fn tokens_and_vectors_are_those_of_the_reference_implementation() {
    let (model, tokenizer) = read_model();
    let vocab = WordPiece::from_tokenizer_json(&tokenizer).unwrap();
    let encoder = Encoder::from_safetensors(&model).unwrap();
    let ids = vocab.encode("ive been hiding the marks with long sleeves", 128);
    assert_eq!(
        ids,
        [
            101, 4921, 2063, 2042, 6318, 1996, 6017, 2007, 2146, 15114, 102
        ]
    );
    // Accents, capitals and punctuation, as BERT's basic tokeniser treats them.
    assert_eq!(
        vocab.encode("Café, NAÏVE!", 128),
        [101, 7668, 1010, 15743, 999, 102]
    );
    let v = encoder.encode(&vocab.encode("This is an example sentence", 128));
    let reference = [
        0.067_656_87,
        0.063_495_91,
        0.048_713_1,
        0.079_304_98,
        0.037_448_05,
    ];
    // The word embeddings are kept in 8 bits (a quarter of the memory):
    // the vector stays within 1e-3 of the reference's (f32 gave 1e-7).
    for (i, (got, want)) in v.iter().zip(reference).enumerate() {
        assert!(
            (got - want).abs() < 1e-3,
            "dimension {i}: {got} against {want}"
        );
    }
    let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "{norm}");
}

#[test]
fn the_shipped_head_fits_the_model_and_judges() {
    let semantic = common::semantic();
    let verdict = semantic
        .judge("i wish i could just disappear forever")
        .expect("flagged");
    assert_eq!(verdict.category, "self-harm");
    assert!(verdict.risk >= semantic.head().threshold);
    assert_eq!(semantic.judge("lets get pizza after school"), None);
    assert_eq!(semantic.judge("   "), None);
}

#[test]
fn a_model_of_another_shape_is_refused_with_what_is_wrong() {
    let (_, tokenizer) = read_model();
    let head = Head::from_toml(include_str!("../semantic/head.toml")).unwrap();
    let err = Semantic::new(
        b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ",
        &tokenizer,
        head,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("lacks the tensor"), "{err}");
}
