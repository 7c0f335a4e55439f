//! Janus-Pro's generation path in candle: the language model (a Llama of our own),
//! the image-generation heads, VQ-16, weight loading, the text tokenizer and generation.
