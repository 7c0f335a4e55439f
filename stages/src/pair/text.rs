//! What pairing and the dataset report measure of a rationale's text, as polars
//! expressions, so that both measure it the same way.

use polars::prelude::{Expr, NULL, lit};

/// The rationale's length in tokens. Tokens are whitespace-separated words until a
/// text tokenizer joins the project; the SFT's own tokenizer (Janus-Pro's, about 1.3
/// tokens a word for English) counts more.
pub fn token_count(text: Expr) -> Expr {
    text.str().count_matches(lit(r"\S+"), false)
}

/// The text as compared for duplicates: lower case, every run of characters other than
/// letters and digits one space, no space at either end.
pub fn normalised(text: Expr) -> Expr {
    text.str()
        .to_lowercase()
        .str()
        .replace_all(lit(r"[^\p{L}\p{N}]+"), lit(" "), false)
        .str()
        .strip_chars(lit(NULL))
}
