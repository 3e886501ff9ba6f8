//! The semantic layer's readers on arbitrary files: a head (TOML), a
//! tokenizer's vocabulary (JSON) and a model (safetensors) are each
//! refused with an error or accepted, never a panic; an accepted
//! vocabulary frames every text it encodes within the length asked for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wordlists::minilm::Encoder;
use wordlists::semantic::Head;
use wordlists::wordpiece::WordPiece;

fuzz_target!(|data: &[u8]| {
    let _ = Encoder::from_safetensors(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Head::from_toml(text);
    if let Ok(vocab) = WordPiece::from_tokenizer_json(text) {
        for max in [2, 8, 128] {
            let ids = vocab.encode(text, max);
            assert!(ids.len() >= 2 && ids.len() <= max.max(2));
        }
    }
});
