"""T5 Unigram as HiDream's tokenizer_3/ (tokenizer.json with a Precompiled charsmap)."""

import json
import os

from .files import compare_with_backend, write_expected, write_fixture_json, write_json

T5_PIECES = 3000            # sentencepiece vocab (incl. <pad> </s> <unk>) -> + 100 <extra_id_N>


def train_t5(lines, work):
    """sentencepiece unigram as T5's spiece.model (nmt_nfkc; pad 0, eos 1, unk 2, no bos)."""
    import sentencepiece as spm

    src = os.path.join(work, "t5_spm")
    os.makedirs(src, exist_ok=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=os.path.join(src, "spiece"), vocab_size=T5_PIECES,
        model_type="unigram", normalization_rule_name="nmt_nfkc", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
        character_coverage=0.9995, num_threads=1, input_sentence_size=0, shuffle_input_sentence=False,
        byte_fallback=False, add_dummy_prefix=True, remove_extra_whitespaces=True, split_digits=False,
        minloglevel=2)
    return src


def write_t5(folder, spm_dir):
    """Converts spiece.model with transformers' T5TokenizerFast (extra_ids=100) and writes the checkpoint
    layout; the normalizer gets the checkpoint's Replace(" {2,}" -> " ") after Precompiled."""
    from tokenizers import Tokenizer
    from transformers import T5TokenizerFast

    conv = T5TokenizerFast.from_pretrained(spm_dir, extra_ids=100, legacy=True)
    tj = json.loads(conv.backend_tokenizer.to_str())
    norm = tj["normalizer"]
    assert norm["type"] == "Precompiled", norm
    tj["normalizer"] = {"type": "Sequence", "normalizers": [
        norm, {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]}
    Tokenizer.from_str(json.dumps(tj))  # must load
    os.makedirs(folder, exist_ok=True)
    write_json(os.path.join(folder, "tokenizer.json"), tj)
    extra = [f"<extra_id_{i}>" for i in range(100)]
    added = {}
    for t in tj["added_tokens"]:
        added[str(t["id"])] = {"content": t["content"], "lstrip": t["lstrip"], "normalized": t["normalized"],
                               "rstrip": t["rstrip"], "single_word": t["single_word"], "special": t["special"]}
    write_json(os.path.join(folder, "tokenizer_config.json"), {
        "added_tokens_decoder": added,
        "additional_special_tokens": extra,
        "clean_up_tokenization_spaces": True,
        "eos_token": "</s>",
        "extra_ids": 100,
        "legacy": True,
        "model_max_length": 512,
        "pad_token": "<pad>",
        "sp_model_kwargs": {},
        "tokenizer_class": "T5Tokenizer",
        "unk_token": "<unk>",
    })

    def tok_map(content):
        return {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}

    write_json(os.path.join(folder, "special_tokens_map.json"), {
        "additional_special_tokens": extra,
        "eos_token": tok_map("</s>"),
        "pad_token": tok_map("<pad>"),
        "unk_token": tok_map("<unk>"),
    })
    return tj


def make(out, lines, strings, common, work):
    """t5/ with its expected ids and fixture.json; work: a temporary folder for sentencepiece."""
    import transformers
    from transformers import AutoTokenizer, T5TokenizerFast

    folder = os.path.join(out, "t5")
    spm_dir = train_t5(lines, work)
    tj = write_t5(folder, spm_dir)
    tok = T5TokenizerFast.from_pretrained(folder)
    auto = AutoTokenizer.from_pretrained(folder)
    assert type(auto) is type(tok), (type(auto), type(tok))
    ids = write_expected(folder, tok, strings)
    assert all(auto(s)["input_ids"] == i for s, i in zip(strings[:300], ids[:300]))
    diffs = compare_with_backend(os.path.join(folder, "tokenizer.json"), strings, ids)
    loaded = json.loads(tok.backend_tokenizer.to_str())
    write_fixture_json(folder, {
        "name": "t5", **common,
        "mirrors": "HiDream-I1 tokenizer_3/ (T5 v1.1 XXL tokenizer)",
        "class": "transformers.T5TokenizerFast (" + type(tok).__module__ + "." + type(tok).__name__ + ")",
        "vocab_size": len(tj["model"]["vocab"]), "spm_pieces": T5_PIECES, "extra_ids": 100,
        "len_tokenizer": len(tok),
        "sentencepiece_training": {"model_type": "unigram", "normalization_rule_name": "nmt_nfkc",
                                   "pad_id": 0, "eos_id": 1, "unk_id": 2, "bos_id": -1,
                                   "character_coverage": 0.9995, "add_dummy_prefix": True,
                                   "remove_extra_whitespaces": True, "byte_fallback": False},
        "backend_as_loaded_by_transformers": {k: (loaded[k] if k != "normalizer" else
                                                  {"type": loaded[k]["type"], "precompiled_charsmap": "..."}
                                                  if loaded[k] and loaded[k]["type"] == "Precompiled"
                                                  else loaded[k])
                                              for k in ("normalizer", "pre_tokenizer", "post_processor")},
        "tokenizers_library_mismatches": len(diffs),
        "tokenizers_library_mismatch_examples": diffs[:5],
        "notes": [
            "tokenizer.json: converted from a sentencepiece unigram model by transformers' T5TokenizerFast "
            "(extra_ids=100: <extra_id_99> .. <extra_id_0> appended to the Unigram vocab with score 0, "
            "ids spm_pieces .. spm_pieces+99), then the normalizer set to the checkpoint's "
            "Sequence[Precompiled(charsmap), Replace(' {2,}' -> ' ')].",
            "transformers " + transformers.__version__ + " does not use tokenizer.json as is: T5Tokenizer.__init__ "
            "rebuilds the backend from its vocab and precompiled_charsmap (normalizer Precompiled only, "
            "pre_tokenizer Sequence[WhitespaceSplit, Metaspace(always, split)], TemplateProcessing '$A </s>'). "
            "tokenizers_library_mismatches counts strings where Tokenizer.from_file(tokenizer.json) differs.",
            "Added tokens (<pad>, </s>, <unk>, <extra_id_N>) are special with normalized=false: matched on "
            "the raw text before the normalizer.",
            "tokenizers' Precompiled normalizer works per extended grapheme cluster: a cluster shorter than 6 "
            "UTF-8 bytes that has a prefix in the charsmap trie is replaced as a whole by that first (shortest) "
            "prefix's normalization, the rest of the cluster dropped ('a' U+0300 U+0323 -> 'à'); other clusters "
            "go code point by code point. sentencepiece's own normalizer does not do this.",
            "Cross-check by hand (not rerun by this script): transformers 4.57.6 / tokenizers 0.22.2 "
            "T5TokenizerFast gives the same ids for every string; the slow sentencepiece T5Tokenizer "
            "(legacy=True) differs on 93 strings (U+0085, clusters like the one above).",
        ],
    })
    print(f"t5: vocab {len(tj['model']['vocab'])}, tokenizers-library mismatches {len(diffs)}")
