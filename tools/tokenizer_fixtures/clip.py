"""CLIP-format byte-level BPE as HiDream's tokenizer/ and tokenizer_2/ (vocab.json + merges.txt)."""

import importlib.util
import json
import os

from .files import bytes_to_unicode, write_expected, write_fixture_json, write_json, write_text

CLIP_MERGES = 2600          # merges kept -> vocab 512 + merges (minus duplicates) + 2
CLIP_PATTERN = (
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
)


def clip_backend_for_training():
    """The pipeline transformers' CLIPTokenizer builds (normalizer, pre-tokenizer), for the trainer."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers

    tok = Tokenizer(models.BPE(end_of_word_suffix="</w>", continuing_subword_prefix=""))
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(CLIP_PATTERN), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    return tok


def bpe_train_words(word_counts, n_merges, min_count=2):
    """Plain BPE training on {tuple of symbols: count}: repeatedly merges the most frequent adjacent pair
    (ties: the smallest pair in string order), at most n_merges times, while its count >= min_count."""
    import heapq
    from collections import defaultdict

    words = [list(w) for w in word_counts]
    counts = list(word_counts.values())
    pair_count = defaultdict(int)
    where = defaultdict(set)
    for wi, (w, c) in enumerate(zip(words, counts)):
        for a, b in zip(w, w[1:]):
            pair_count[(a, b)] += c
            where[(a, b)].add(wi)
    heap = [(-c, p) for p, c in pair_count.items()]
    heapq.heapify(heap)
    merges = []
    while heap and len(merges) < n_merges:
        negc, pair = heapq.heappop(heap)
        if pair_count.get(pair, 0) != -negc:
            continue  # stale entry
        if -negc < min_count:
            break
        merges.append(pair)
        a, b = pair
        new = a + b
        changed = set()
        for wi in sorted(where.pop(pair, ())):
            w, c = words[wi], counts[wi]
            for x, y in zip(w, w[1:]):
                pair_count[(x, y)] -= c
                changed.add((x, y))
            out = []
            i = 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(new)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            words[wi] = out
            for x, y in zip(out, out[1:]):
                pair_count[(x, y)] += c
                where[(x, y)].add(wi)
                changed.add((x, y))
        pair_count.pop(pair, None)
        for p in sorted(changed):
            c = pair_count.get(p, 0)
            if c > 0:
                heapq.heappush(heap, (-c, p))
            else:
                pair_count.pop(p, None)
    return merges


def train_clip(lines):
    """Returns (vocab dict in CLIP's order, merges list). The words come from the normalizer and
    pre-tokenizer transformers' CLIPTokenizer builds; the merges from bpe_train_words (tokenizers'
    BpeTrainer gives the '</w>' symbols ids in hash-map order, so its tie-breaks changed between runs)."""
    from collections import Counter

    tok = clip_backend_for_training()
    word_counts = Counter()
    for line in lines:
        for piece, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(line)):
            syms = list(piece)
            syms[-1] += "</w>"
            word_counts[tuple(syms)] += 1
    merges = bpe_train_words(word_counts, 10 * CLIP_MERGES)
    base = list(bytes_to_unicode().values())
    vocab = base + [c + "</w>" for c in base]
    known = set(vocab)
    kept = []
    for a, b in merges:
        if len(kept) == CLIP_MERGES:
            break
        if a + b in known:       # a token built by two different merges: keep the first only
            continue
        assert a in known and b in known, (a, b)
        known.add(a + b)
        vocab.append(a + b)
        kept.append((a, b))
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(vocab)}, kept


def clip_added_token(content, normalized):
    return {"content": content, "lstrip": False, "normalized": normalized, "rstrip": False,
            "single_word": False, "special": True}


def write_clip(folder, vocab, merges, bang_pad):
    """CLIP files as in the SD3/HiDream checkpoints; bang_pad: tokenizer_2's pad_token "!" (id 0)."""
    os.makedirs(folder, exist_ok=True)
    write_text(os.path.join(folder, "vocab.json"), json.dumps(vocab, ensure_ascii=False) + "\n")
    write_text(os.path.join(folder, "merges.txt"), "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    sot, eot = vocab["<|startoftext|>"], vocab["<|endoftext|>"]
    added = {}
    if bang_pad:
        added["0"] = clip_added_token("!", False)
    added[str(sot)] = clip_added_token("<|startoftext|>", True)
    added[str(eot)] = clip_added_token("<|endoftext|>", True)
    pad = "!" if bang_pad else "<|endoftext|>"
    write_json(os.path.join(folder, "tokenizer_config.json"), {
        "add_prefix_space": False,
        "added_tokens_decoder": added,
        "bos_token": "<|startoftext|>",
        "clean_up_tokenization_spaces": True,
        "do_lower_case": True,
        "eos_token": "<|endoftext|>",
        "errors": "replace",
        "model_max_length": 77,
        "pad_token": pad,
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": "<|endoftext|>",
    })

    def tok_map(content, normalized):
        return {"content": content, "lstrip": False, "normalized": normalized, "rstrip": False, "single_word": False}

    write_json(os.path.join(folder, "special_tokens_map.json"), {
        "bos_token": tok_map("<|startoftext|>", True),
        "eos_token": tok_map("<|endoftext|>", True),
        "pad_token": tok_map("!", False) if bang_pad else tok_map("<|endoftext|>", True),
        "unk_token": tok_map("<|endoftext|>", True),
    })


def make(out, lines, strings, common):
    """clip/ and clip2/ with their expected ids and fixture.json."""
    import transformers
    from transformers import AutoTokenizer, CLIPTokenizer

    has_ftfy = importlib.util.find_spec("ftfy") is not None
    vocab, merges = train_clip(lines)
    for sub, bang in (("clip", False), ("clip2", True)):
        folder = os.path.join(out, sub)
        write_clip(folder, vocab, merges, bang_pad=bang)
        tok = CLIPTokenizer.from_pretrained(folder)
        auto = AutoTokenizer.from_pretrained(folder)
        assert type(auto) is type(tok), (type(auto), type(tok))
        # clip2 differs from clip only where "!" is in the text: it keeps those strings and every
        # 10th other one (size).
        subset = [s for k, s in enumerate(strings) if not bang or "!" in s or k % 10 == 0]
        ids = write_expected(folder, tok, subset)
        assert all(auto(s)["input_ids"] == i for s, i in zip(subset[:300], ids[:300]))
        backend = json.loads(tok.backend_tokenizer.to_str())
        notes = [
            "No tokenizer.json (as in the checkpoint): transformers " + transformers.__version__ +
            " builds the backend in CLIPTokenizer.__init__ from vocab.json + merges.txt: "
            "normalizer Sequence[NFC, Replace(\\s+ -> ' '), Lowercase]; pre_tokenizer Sequence[Split(" +
            json.dumps(CLIP_PATTERN) + ", Removed, invert=true), ByteLevel(add_prefix_space=false, "
            "use_regex=true)]; model BPE(end_of_word_suffix '</w>', continuing_subword_prefix '', "
            "unk_token '<|endoftext|>', fuse_unk false); post_processor RobertaProcessing "
            "(<|startoftext|> $A <|endoftext|>).",
            "ftfy installed: " + str(has_ftfy) + " (transformers 5 has no slow CLIP tokenizer; ftfy and "
            "html.unescape are never applied).",
            "ByteLevel with use_regex=true runs the GPT-2 regex again inside each CLIP piece "
            "('s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+): a "
            "no-op on CLIP's pieces except '<|startoftext|>'/'<|endoftext|>' pieces (never reached here: the "
            "added tokens take them first); BPE then appends '</w>' to the last symbol of each piece.",
            "<|startoftext|> and <|endoftext|> are added tokens with normalized=true: matched after "
            "normalization (so <|ENDOFTEXT|> matches).",
            "Lowercase maps each code point on its own (full mappings: U+0130 -> 'i' U+0307; no final-sigma "
            "rule: 'ΟΔΥΣΣΕΥΣ' -> 'οδυσσευσ', unlike Python's str.lower). \\s (Oniguruma) is Unicode "
            "White_Space: not U+001C..U+001F, U+180E, U+200B..U+200D, U+2060, U+FEFF. Characters that none of "
            "the split regex's alternatives take (whitespace) are dropped; combining marks (\\p{M}) fall in "
            "[^\\s\\p{L}\\p{N}]+, apart from the letters before them.",
            "merges.txt: '#version: 0.2' header, then one merge per line; vocab.json: the 256 byte "
            "characters in bytes_to_unicode order, the same with '</w>', one token per merge in merge "
            "order, then <|startoftext|>, <|endoftext|>.",
        ]
        notes.append("Cross-check by hand (not rerun by this script): transformers 4.57.6 / tokenizers 0.22.2 "
                     "CLIPTokenizerFast gives the same ids for every string; its slow CLIPTokenizer (no ftfy: "
                     "BasicTokenizer clean-up, which drops control/format characters such as U+200B, U+FEFF and "
                     "spaces out CJK ideographs) differs on 902 of the 5724 strings.")
        if bang:
            notes.append("tokenizer_2 variant (SD3/SDXL/HiDream tokenizer_2: pad_token '!'): '!' (id 0) is an "
                         "added special token with normalized=false, so every '!' in the text becomes id 0 "
                         "(never '!</w>'), splitting the text around it.")
        write_fixture_json(folder, {
            "name": sub, **common, "num_strings": len(subset),
            **({"strings_subset": "the strings that contain '!' and every 10th other one (k % 10 == 0 "
                                  "in the full list, which clip/expected.jsonl has)"} if bang else {}),
            "mirrors": "HiDream-I1 " + ("tokenizer_2/ (CLIP-G, pad '!')" if bang else "tokenizer/ (CLIP-L)"),
            "class": "transformers.CLIPTokenizer (" + type(tok).__module__ + "." + type(tok).__name__ +
                     ", a TokenizersBackend; AutoTokenizer gives the same class)",
            "vocab_size": len(vocab), "merges": len(merges), "len_tokenizer": len(tok),
            "special_ids": {"<|startoftext|>": vocab["<|startoftext|>"],
                            "<|endoftext|>": vocab["<|endoftext|>"], **({"!": 0} if bang else {})},
            "ftfy_installed": has_ftfy,
            "backend": {k: backend[k] for k in ("normalizer", "pre_tokenizer", "post_processor", "decoder")},
            "notes": notes,
        })
        print(f"{sub}: vocab {len(vocab)}, {len(merges)} merges")
