"""Llama 3 byte-level BPE as HiDream's tokenizer_4/ (tokenizer.json, ignore_merges, 256 specials)."""

import json
import os

from .files import compare_with_backend, write_expected, write_fixture_json, write_json

LLAMA_BPE_VOCAB = 3000      # trained byte-level BPE vocab (256 bytes + merges) before extras/specials
LLAMA_UNREACHABLE = 48      # whole-word tokens added to the vocab with no merge that builds them
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def llama3_special_tokens():
    names = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
             "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>",
             "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"]
    names += [f"<|reserved_special_token_{i}|>" for i in range(3, 248)]
    assert len(names) == 256
    return names


def train_llama3(lines):
    """Byte-level BPE in Llama 3's configuration; returns the tokenizer.json as a dict."""
    from collections import Counter

    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok = Tokenizer(models.BPE(ignore_merges=True, byte_fallback=False, fuse_unk=False))
    tok.pre_tokenizer = pre
    trainer = trainers.BpeTrainer(vocab_size=LLAMA_BPE_VOCAB, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(lines, trainer)
    trained = json.loads(tok.to_str())
    vocab = dict(trained["model"]["vocab"])
    merges = [f"{a} {b}" for a, b in trained["model"]["merges"]]
    assert sorted(vocab.values()) == list(range(len(vocab)))

    # Like Llama 3's (tiktoken-derived) vocab, some whole words are tokens that no merge sequence builds:
    # only ignore_merges finds them. Take the most frequent pre-tokenized words of >= 5 bytes not in the vocab.
    counts = Counter()
    for line in lines:
        for piece, _ in pre.pre_tokenize_str(line):
            if len(piece) >= 5 and piece not in vocab:
                counts[piece] += 1
    extra = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:LLAMA_UNREACHABLE]
    for piece, _ in extra:
        vocab[piece] = len(vocab)

    specials = llama3_special_tokens()
    first_special = len(vocab)
    added = [{"id": first_special + k, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for k, s in enumerate(specials)]
    bos = "<|begin_of_text|>"
    tj = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": trained["pre_tokenizer"],
        "post_processor": {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                      {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {bos: {"id": bos, "ids": [first_special], "tokens": [bos]}}},
        ]},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
                  "vocab": vocab, "merges": merges},
    }
    Tokenizer.from_str(json.dumps(tj))  # must load
    return tj, [p for p, _ in extra]


def write_llama3(folder, tj):
    os.makedirs(folder, exist_ok=True)
    write_json(os.path.join(folder, "tokenizer.json"), tj)
    added = {str(t["id"]): {"content": t["content"], "lstrip": False, "normalized": False, "rstrip": False,
                            "single_word": False, "special": True} for t in tj["added_tokens"]}
    write_json(os.path.join(folder, "tokenizer_config.json"), {
        "added_tokens_decoder": added,
        "bos_token": "<|begin_of_text|>",
        "clean_up_tokenization_spaces": True,
        "eos_token": "<|eot_id|>",
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": 131072,
        "tokenizer_class": "PreTrainedTokenizerFast",
    })

    def tok_map(content):
        return {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}

    write_json(os.path.join(folder, "special_tokens_map.json"), {
        "bos_token": tok_map("<|begin_of_text|>"),
        "eos_token": tok_map("<|eot_id|>"),
    })


def make(out, lines, strings, common):
    """llama3/ with its expected ids and fixture.json."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    folder = os.path.join(out, "llama3")
    tj, unreachable = train_llama3(lines)
    write_llama3(folder, tj)
    tok = PreTrainedTokenizerFast.from_pretrained(folder)
    auto = AutoTokenizer.from_pretrained(folder)
    assert type(auto) is type(tok), (type(auto), type(tok))
    ids = write_expected(folder, tok, strings)
    assert all(auto(s)["input_ids"] == i for s, i in zip(strings[:300], ids[:300]))
    diffs = compare_with_backend(os.path.join(folder, "tokenizer.json"), strings, ids)
    first_special = tj["added_tokens"][0]["id"]
    write_fixture_json(folder, {
        "name": "llama3", **common,
        "mirrors": "HiDream-I1 tokenizer_4/ (Llama-3.1-8B-Instruct)",
        "class": "transformers.PreTrainedTokenizerFast (" + type(tok).__module__ + "." + type(tok).__name__ +
                 "; AutoTokenizer gives the same class)",
        "vocab_size": len(tj["model"]["vocab"]) + len(tj["added_tokens"]),
        "bpe_vocab": len(tj["model"]["vocab"]), "merges": len(tj["model"]["merges"]),
        "len_tokenizer": len(tok),
        "special_ids": {t["content"]: t["id"] for t in tj["added_tokens"][:11]},
        "first_special_id": first_special,
        "unreachable_tokens": {"count": len(unreachable), "first_id": first_special - len(unreachable),
                               "tokens": unreachable},
        "tokenizers_library_mismatches": len(diffs),
        "tokenizers_library_mismatch_examples": diffs[:5],
        "notes": [
            "Trained with tokenizers' BpeTrainer (byte-level alphabet, min_frequency 2) under the Llama 3 "
            "pre_tokenizer; merges written as 'a b' strings like the checkpoint's tokenizer.json.",
            "unreachable_tokens: whole words appended to the vocab (ids before the specials) with no merge "
            "that builds them, as Llama 3's tiktoken-derived vocab has: only ignore_merges=true (a whole "
            "pre-tokenized word found in the vocab is one token, merges skipped) produces them.",
            "256 added special tokens as Llama 3.1 (<|begin_of_text|>, <|end_of_text|>, "
            "<|reserved_special_token_0..247|>, <|finetune_right_pad_id|>, <|start_header_id|>, "
            "<|end_header_id|>, <|eom_id|>, <|eot_id|>, <|python_tag|>), ids after the BPE vocab, "
            "special, normalized=false.",
            "transformers loads this tokenizer.json as is (TokenizersBackend has no custom __init__); "
            "tokenizer_config.json has no add_bos_token, so the file's post_processor stays.",
            "Cross-check by hand (not rerun by this script): transformers 4.57.6 / tokenizers 0.22.2 "
            "PreTrainedTokenizerFast and AutoTokenizer give the same ids for every string.",
        ],
    })
    print(f"llama3: bpe vocab {len(tj['model']['vocab'])} (+256 specials), "
          f"tokenizers-library mismatches {len(diffs)}")
