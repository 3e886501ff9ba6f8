//! What several test files share: the semantic layer's model, fetched by
//! `wordlists/semantic/fetch-model.sh` (tests/run runs it).

#![allow(dead_code)]

use wordlists::semantic::{Head, Semantic};

/// The model's folder: `SEMANTIC_MODEL`, or wordlists/semantic/model.
pub fn model_dir() -> std::path::PathBuf {
    std::env::var_os("SEMANTIC_MODEL").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("semantic/model"),
        Into::into,
    )
}

/// The model's weights and its tokeniser's JSON.
pub fn read_model() -> (Vec<u8>, String) {
    let dir = model_dir();
    let model = std::fs::read(dir.join("model.safetensors")).unwrap_or_else(|e| {
        panic!(
            "cannot read {}/model.safetensors ({e}): run wordlists/semantic/fetch-model.sh (tests/run does)",
            dir.display()
        )
    });
    let tokenizer = std::fs::read_to_string(dir.join("tokenizer.json")).unwrap_or_else(|e| {
        panic!(
            "cannot read {}/tokenizer.json ({e}): run wordlists/semantic/fetch-model.sh (tests/run does)",
            dir.display()
        )
    });
    (model, tokenizer)
}

/// The layer with the head shipped in the source tree.
pub fn semantic() -> Semantic {
    let (model, tokenizer) = read_model();
    let head = Head::from_toml(include_str!("../../semantic/head.toml")).unwrap();
    Semantic::new(&model, &tokenizer, head).unwrap()
}
