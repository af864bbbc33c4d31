"""Writing the fixture files: text, JSON, expected ids, and the cross-check against `tokenizers`."""

import json
import os


def write_text(path, text):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def write_json(path, obj, indent=2):
    write_text(path, json.dumps(obj, ensure_ascii=False, indent=indent) + "\n")


def versions():
    import sentencepiece
    import tokenizers
    import transformers

    return {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
            "sentencepiece": sentencepiece.__version__}


def write_expected(folder, tok, strings):
    """expected.jsonl with tok(text)["input_ids"] (special tokens added, no padding/truncation)."""
    lines = []
    all_ids = []
    for s in strings:
        ids = tok(s, add_special_tokens=True, padding=False, truncation=False)["input_ids"]
        ids = [int(i) for i in ids]
        toks = tok.convert_ids_to_tokens(ids)
        all_ids.append(ids)
        lines.append(json.dumps({"text": s, "ids": ids, "tokens": toks}, ensure_ascii=False,
                                separators=(",", ":")))
    write_text(os.path.join(folder, "expected.jsonl"), "\n".join(lines) + "\n")
    return all_ids


def bytes_to_unicode():
    """GPT-2 / CLIP byte -> printable character table (order of the 256 base vocab entries)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def compare_with_backend(tokenizer_json_path, strings, expected):
    """Ids from the `tokenizers` library alone (Tokenizer.from_file(...).encode(text)) vs transformers."""
    from tokenizers import Tokenizer

    raw = Tokenizer.from_file(tokenizer_json_path)
    diffs = []
    for s, ids in zip(strings, expected):
        got = raw.encode(s, add_special_tokens=True).ids
        if got != ids:
            diffs.append({"text": s, "transformers": ids, "tokenizers": got})
    return diffs


def write_fixture_json(folder, info):
    write_json(os.path.join(folder, "fixture.json"), info)
