//! How the next token is chosen. Greedy everywhere: a 0.5B model gets worse, not livelier, with randomness,
//! and greedy answers make the tests repeatable. Answers additionally may never contain characters that
//! cannot be spoken or that belong to tool calls and markdown.

use llama_cpp_2::GrammarError;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::logit_bias::LlamaLogitBias;

use super::grammar;

/// Characters an answer read aloud never needs: tool-call JSON and tags, markdown emphasis, headings, code
/// and links.
const UNSPEAKABLE: &[char] = &['{', '}', '<', '>', '`', '*', '#', '[', ']', '|'];
/// Mild, over a short window: enough to stop a small model looping on a phrase, not to distort wording.
const REPEAT_PENALTY: f32 = 1.1;
const REPEAT_WINDOW: i32 = 64;

/// Tokens an answer must not use: pieces holding an unspeakable character (`<tool_call>` among them) and
/// control tokens other than end-of-turn. Computed once per model.
pub fn unspeakable_tokens(model: &LlamaModel) -> Vec<LlamaLogitBias> {
    let vocab = model.vocab();
    vocab
        .tokens()
        .filter(|&token| {
            if vocab.is_eog(token) {
                return false;
            }
            if vocab.is_control(token) {
                return true;
            }
            let piece = vocab.token_to_piece(token, false, None);
            String::from_utf8_lossy(&piece).contains(UNSPEAKABLE)
        })
        .map(|token| LlamaLogitBias::new(token, f32::NEG_INFINITY))
        .collect()
}

/// Marks, by token id, the tokens that open structured output instead of words: `<tool_call>` and other
/// tags, bare JSON, code fences, lists. How much probability a model puts on them measures how much it
/// wants to call a tool: small models often write the call as bare JSON or in a code block.
pub fn structure_openers(model: &LlamaModel) -> Vec<bool> {
    let vocab = model.vocab();
    vocab
        .tokens()
        .map(|token| {
            if vocab.is_eog(token) || vocab.is_control(token) {
                return false;
            }
            let piece = vocab.token_to_piece(token, true, None);
            String::from_utf8_lossy(&piece).trim_start().starts_with(['<', '{', '[', '`'])
        })
        .collect()
}

/// Marks, by token id, the tokens that end a turn or close a sentence after unpunctuated words: `<|im_end|>`,
/// end of text, and ".", "?", "!" (not "...", which trails off). Asked after words without their final
/// punctuation, the model's probability for them is how finished the words are: "What is the capital of
/// France" gets a "?", "What is the capital of" a noun.
pub fn turn_enders(model: &LlamaModel) -> Vec<bool> {
    let vocab = model.vocab();
    vocab
        .tokens()
        .map(|token| {
            if vocab.is_eog(token) {
                return true;
            }
            if vocab.is_control(token) {
                return false;
            }
            let piece = vocab.token_to_piece(token, true, None);
            let text = String::from_utf8_lossy(&piece);
            let text = text.trim_start();
            text.starts_with(['.', '?', '!']) && !text.starts_with("..")
        })
        .collect()
}

/// For answer text.
pub fn answer(model: &LlamaModel, banned: &[LlamaLogitBias]) -> LlamaSampler {
    LlamaSampler::chain_simple([
        LlamaSampler::logit_bias(model.n_vocab(), banned),
        LlamaSampler::penalties(model.n_vocab(), REPEAT_WINDOW, REPEAT_PENALTY, 0.0, 0.0),
        LlamaSampler::greedy(),
    ])
}

/// For a tool call, under `grammar_text` (see [`grammar`]).
pub fn tool_call(model: &LlamaModel, grammar_text: &str) -> Result<LlamaSampler, GrammarError> {
    Ok(LlamaSampler::chain_simple([LlamaSampler::grammar(model, grammar_text, grammar::ROOT)?, LlamaSampler::greedy()]))
}
