#!/usr/bin/env python3
"""Reference fixtures for moedit's native tokenizers: CLIP BPE, T5 Unigram and Llama 3 byte-level BPE.

What it makes (under tests/fixtures/tokenizers/; deterministic: a rerun rewrites the same bytes):

  clip/     vocab.json, merges.txt            CLIP-format byte-level BPE (as HiDream's tokenizer/ and
            tokenizer_config.json,            tokenizer_2/: no tokenizer.json): the 256 byte chars, the
            special_tokens_map.json           same with "</w>", one entry per merge, <|startoftext|>,
                                              <|endoftext|>. Trained with the `tokenizers` library in
                                              the configuration transformers' CLIPTokenizer builds.
  t5/       tokenizer.json,                   T5 Unigram as HiDream's tokenizer_3/: a sentencepiece
            tokenizer_config.json,            unigram model (nmt_nfkc, pad 0 / eos 1 / unk 2, no bos)
            special_tokens_map.json           converted by transformers' T5TokenizerFast (extra_ids=100),
                                              normalizer rewritten to the checkpoint's
                                              Sequence[Precompiled, Replace(" {2,}" -> " ")].
  llama3/   tokenizer.json,                   Llama 3 style as HiDream's tokenizer_4/: byte-level BPE
            tokenizer_config.json,            (ignore_merges, no byte fallback, Llama 3 split regex),
            special_tokens_map.json           256 special tokens after the BPE vocab, post_processor
                                              Sequence[ByteLevel, TemplateProcessing("<|begin_of_text|> $A")].
  */expected.jsonl                            one line per test string (the same list in all three):
                                              {"text", "ids", "tokens"}: ids = tokenizer(text)["input_ids"]
                                              (special tokens added, no padding, no truncation) with the
                                              class HiDream's pipeline uses; tokens =
                                              convert_ids_to_tokens(ids), for debugging only.
  */fixture.json                              generator, library versions, vocab size, string count,
                                              the class used and notes.

The training corpus (a few thousand lines of captions and other scripts) and the test strings come from
fixed lists and seeded random generators; the corpus and sentencepiece's spiece.model live in a temporary
folder only. Training runs single-threaded so that merges and pieces do not depend on thread timing.

Rerun (needs transformers, tokenizers, sentencepiece, protobuf; no network, no torch):

    python3 tools/make_tokenizer_fixtures.py            # writes tests/fixtures/tokenizers/
    python3 tools/make_tokenizer_fixtures.py --out DIR  # somewhere else (e.g. to diff a rerun)
"""

import os

# Single-threaded, offline: must be set before `tokenizers` / `transformers` are imported.
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["RAYON_RS_NUM_CPUS"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_VERBOSITY"] = "error"

import argparse  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "tests", "fixtures", "tokenizers")
GENERATOR = "tools/make_tokenizer_fixtures.py"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tokenizer_fixtures import clip, llama3, t5  # noqa: E402
from tokenizer_fixtures.files import versions, write_text  # noqa: E402
from tokenizer_fixtures.material import corpus_lines, test_strings  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: tests/fixtures/tokenizers)")
    args = ap.parse_args()
    out = os.path.abspath(args.out)

    vers = versions()
    lines = corpus_lines()
    strings = test_strings()
    print(f"corpus: {len(lines)} lines; test strings: {len(strings)}")
    common = {"generator": GENERATOR, "versions": vers, "python": sys.version.split()[0],
              "corpus": {"lines": len(lines), "seed": 20240517}, "strings_seed": 77,
              "num_strings": len(strings),
              "expected": "expected.jsonl: one JSON object per line, {text, ids, tokens}; ids = "
                          "tokenizer(text)[\"input_ids\"] (add_special_tokens=True, no padding, no truncation); "
                          "tokens = convert_ids_to_tokens(ids), for debugging"}

    os.makedirs(out, exist_ok=True)
    for sub in ("clip", "clip2", "t5", "llama3"):
        shutil.rmtree(os.path.join(out, sub), ignore_errors=True)

    with tempfile.TemporaryDirectory(prefix="tokfix_") as work:
        clip.make(out, lines, strings, common)
        t5.make(out, lines, strings, common, work)
        llama3.make(out, lines, strings, common)

    write_text(os.path.join(out, "README.md"), README)
    total = 0
    for root, _, files in os.walk(out):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    print(f"total size {total / 1048576:.2f} MiB in {out}")


README = """# Tokenizer reference fixtures

Made by `tools/make_tokenizer_fixtures.py` (rerun it to regenerate; the output is deterministic).
Small tokenizers trained in the configuration of HiDream-I1's four tokenizers, and the ids transformers
gives for one shared list of test strings.

| folder  | mirrors                          | files                                       | transformers class      |
|---------|----------------------------------|---------------------------------------------|-------------------------|
| clip    | tokenizer/ (CLIP-L)              | vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json | CLIPTokenizer |
| clip2   | tokenizer_2/ (CLIP-G, pad "!")   | same vocab/merges; pad_token "!" is an added special token            | CLIPTokenizer |
| t5      | tokenizer_3/ (T5 v1.1)           | tokenizer.json, tokenizer_config.json, special_tokens_map.json        | T5TokenizerFast |
| llama3  | tokenizer_4/ (Llama 3.1)         | tokenizer.json, tokenizer_config.json, special_tokens_map.json        | PreTrainedTokenizerFast |

Each folder has `expected.jsonl` (one line per string: `{"text", "ids", "tokens"}`, ids =
`tokenizer(text)["input_ids"]` with special tokens, no padding, no truncation) and `fixture.json`
(versions, sizes, the exact class and notes on what transformers does).
"""


if __name__ == "__main__":
    main()
