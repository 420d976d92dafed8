//! A byte-level BPE tokenizer with no merges: every byte is one token, plus
//! the chat and vision special tokens of Qwen2.5-VL. Enough for a random
//! model: any text round-trips, and the special tokens are single ids.

use std::path::Path;

use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

use super::ModelFileError;

/// Special tokens, in id order after the 256 byte tokens.
pub const SPECIAL_TOKENS: &[&str] = &[
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
];

/// Id of a special token in the tokenizer this module writes.
pub fn special_id(token: &str) -> u32 {
    let index = SPECIAL_TOKENS.iter().position(|t| *t == token).expect("a known special token");
    256 + index as u32
}

/// Vocabulary size of the tokenizer this module writes.
pub fn vocab_size() -> usize {
    256 + SPECIAL_TOKENS.len()
}

/// Writes `tokenizer.json` into `dir`.
pub fn write_byte_tokenizer(dir: &Path) -> Result<(), ModelFileError> {
    let path = dir.join("tokenizer.json");
    let mut alphabet: Vec<char> = ByteLevel::alphabet().into_iter().collect();
    alphabet.sort_unstable();
    let vocab: tokenizers::models::bpe::Vocab =
        alphabet.iter().enumerate().map(|(i, c)| (c.to_string(), i as u32)).collect();
    let bpe =
        BPE::builder().vocab_and_merges(vocab, Vec::new()).build().map_err(|e| ModelFileError::invalid(&path, e))?;
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)));
    tokenizer.with_decoder(Some(ByteLevel::default()));
    let specials: Vec<AddedToken> = SPECIAL_TOKENS.iter().map(|t| AddedToken::from(*t, true)).collect();
    tokenizer.add_special_tokens(&specials);
    tokenizer.save(&path, false).map_err(|e| ModelFileError::invalid(&path, e))
}

/// Writes `tokenizer_config.json` for the tokenizer this module writes:
/// `chat_template` as the chat format, `<|im_end|>` ending a turn.
pub fn write_tokenizer_config(
    dir: &Path,
    chat_template: &str,
    max_length: usize,
    class: Option<&str>,
) -> Result<(), ModelFileError> {
    let mut config = serde_json::json!({
        "add_bos_token": false,
        "bos_token": null,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": null,
        "model_max_length": max_length,
        "chat_template": chat_template,
    });
    if let Some(class) = class {
        config["tokenizer_class"] = serde_json::json!(class);
    }
    super::write_json(dir, "tokenizer_config.json", &config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_and_specials_are_single_tokens() {
        let dir = tempfile::tempdir().unwrap();
        write_byte_tokenizer(dir.path()).unwrap();
        let tokenizer = Tokenizer::from_file(dir.path().join("tokenizer.json")).unwrap();
        let text = "<|im_start|>user\nCafé ☕ 42<|im_end|>";
        let encoding = tokenizer.encode(text, false).unwrap();
        assert_eq!(encoding.get_ids()[0], special_id("<|im_start|>"));
        assert_eq!(*encoding.get_ids().last().unwrap(), special_id("<|im_end|>"));
        assert_eq!(tokenizer.decode(encoding.get_ids(), false).unwrap(), text);
        assert_eq!(tokenizer.get_vocab_size(true), vocab_size());
    }
}
