"""Parts of tools/make_tokenizer_fixtures.py: text material, file helpers, one module per tokenizer."""
