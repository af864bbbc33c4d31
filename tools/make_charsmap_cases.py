#!/usr/bin/env python3
"""Unit cases for moedit's T5 tokenizer parts (text/precompiled_charsmap.c, text/tokenizer_unigram.c),
computed with the `tokenizers` library.

What it makes (deterministic: a rerun rewrites the same bytes):

  tests/fixtures/tokenizers/t5/charsmap_cases.json
      {"generator", "tokenizers", "cases": [[input, normalized], ...]}: the Precompiled normalizer of
      t5/tokenizer.json (normalizers.Precompiled(charsmap bytes).normalize_str) on hand-picked strings
      (ligatures, fullwidth, super/subscripts, combining sequences, Hangul, emoji ZWJ sequences, flags,
      control and zero-width characters, spaces) and on seeded random strings drawn from the map's keys,
      combining marks, joiners and variation selectors (the cluster-boundary and dropped-rest cases).
  tests/fixtures/tokenizers/t5/unigram_cases.json
      {"models": [{"vocab", "unk_id", "byte_fallback", "cases": [[piece, ids], ...]}]}: tiny Unigram
      models (models.Unigram(vocab, unk_id, byte_fallback)) and the ids model.tokenize gives: ties,
      unknown characters fused into one unk, a repeated piece, byte fallback.

Rerun (needs tokenizers only):

    python3 tools/make_charsmap_cases.py
"""

import base64
import json
import os
import random
import struct

import tokenizers
from tokenizers import models, normalizers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
T5 = os.path.join(ROOT, "tests", "fixtures", "tokenizers", "t5")

HAND_PICKED = [
    "", "plain ascii text", "ﬁ ﬂ ﬃ ﬄ ﬅ ǆ Ǉ ĳ", "ＡＢＣ ａｂｃ １２３ ！？（）", "x² y³ ⁴⁵ H₂O ₃",
    "½ ¼ ⅞ ™ ℃ ℉ № ㎏ ㎡ ㍻", "Ⅻ ⅻ ① ⑳ ㉑ ⒜ ⓐ", "ｶﾞｷﾞｸﾞ ﾊﾟ ｱｲｳｴｵ", "a\u0300\u0323", "a\u0323\u0300",
    "e\u0301", "A\u0302\u0300", "e\u0301\u0301", "n\u0303 o\u0308 u\u0308\u0304", "Z\u0334\u0321\u0322\u0327",
    "한국어 텍스트", "\u1100\u1161\u11a8", "\u1112\u1161\u11ab\u1100\u116e\u11a8", "👨\u200d👩\u200d👧\u200d👦",
    "🇯🇵🇫🇷🇺", "👍🏽 👋🏿", "❤\ufe0f ☺\ufe0e", "tab\there", "line\nbreak\r\nwindows\rmac",
    "\x01nul \x01\x02\x1f\x7f del", "\x0b\x0c vt ff", "\u0085 next line", "soft\u00adhyphen",
    "zero\u200bwidth\u200cnon\u200djoiner\ufeffbom", "nbsp\u00a0ideo\u3000en\u2002em\u2003thin\u2009",
    "line\u2028para\u2029sep", "Å Ω K", "﨑 丽 𠄢", "ﷺ ﷽ ﻼ", "क्षि हिन्दी", "ภาษาไทย", "tiếng Việt ệ ở",
    "Ελληνικά ΣΑΣ", "Русский ё Ё", "日本語のテキスト、カタカナ。", "中文，标点！", "“quotes” ‘single’ «guillemets» — –",
    "…… ‥ ・", "𝐁𝐨𝐥𝐝 𝕯𝖔𝖚𝖇𝖑𝖊 𝟙𝟚𝟛", "ｓｐａｃｅ　ｆｕｌｌ", "  leading and  multiple   spaces  ",
    "\u2581already metaspace", "x\u0308\u0301y", "Ǆ ǅ ǆ", "ℌ ℍ ℎ ℏ", "㈱ ㈜ ㊤", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿ",
    "\U0001f3f3\ufe0f\u200d\U0001f308", "a\u034fb", "a\u180eb", "\u2060word\u2061",
]


def charsmap_bytes():
    with open(os.path.join(T5, "tokenizer.json"), encoding="utf-8") as f:
        normalizer = json.load(f)["normalizer"]
    for step in normalizer.get("normalizers", [normalizer]):
        if step["type"] == "Precompiled":
            return base64.b64decode(step["precompiled_charsmap"])
    raise SystemExit("no Precompiled normalizer in t5/tokenizer.json")


def charsmap_keys(data):
    """Every key of the darts-clone trie, as str, in byte order."""
    size = struct.unpack("<I", data[:4])[0]
    units = struct.unpack("<%dI" % (size // 4), data[4:4 + size // 4 * 4])

    def offset(u):
        return (u >> 10) << ((u & (1 << 9)) >> 6)

    keys, stack = [], [(offset(units[0]), b"")]
    while stack:
        pos, prefix = stack.pop()
        for c in range(255, 0, -1):
            p = pos ^ c
            if p >= len(units) or (units[p] & ((1 << 31) | 0xFF)) != c:
                continue
            if (units[p] >> 8) & 1:
                keys.append(prefix + bytes([c]))
            stack.append((p ^ offset(units[p]), prefix + bytes([c])))
    return sorted(k.decode("utf-8", "replace") for k in keys)


def random_strings(keys, count, seed):
    rng = random.Random(seed)
    singles = sorted({k[0] for k in keys})
    marks = [chr(c) for c in range(0x300, 0x370)] + ["\u093c", "\u094d", "\u0e31", "\u3099", "\u309a"]
    joiners = ["\u200d", "\u200c", "\ufe0f", "\ufe0e", "\U0001f3fd", "\u1160", "\u11a8"]
    plain = list("abcxyzAEIOU09 .,-") + ["\t", "\n", "\u00a0", "\u3000"]
    out = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 6)):
            r = rng.random()
            if r < 0.3:
                parts.append(rng.choice(keys))
            elif r < 0.5:
                parts.append(rng.choice(singles))
            elif r < 0.7:
                parts.append(rng.choice(marks))
            elif r < 0.8:
                parts.append(rng.choice(joiners))
            else:
                parts.append(rng.choice(plain))
        out.append("".join(parts))
    return out


def unigram_models():
    """Tiny models, as (vocab, unk_id, byte_fallback, pieces)."""
    pieces = ["abcdacdxx", "abcd", "xyz", "ab", "ba", "aaaa", "a☃b", "☃☃☃", "▁ab", "<unk>", "x<unk>y", ""]
    tie = [("<unk>", 0.0), ("a", -1.0), ("b", -1.0), ("c", -1.0), ("d", -1.0), ("cd", -2.0), ("ab", -2.0),
           ("abc", -3.0), ("abcd", -10.0), ("bc", -2.0), ("aa", -2.0), ("▁", -0.5), ("x", -4.0)]
    repeated = tie + [("ab", -0.1), ("y", -3.0)]
    fallback = [("<unk>", 0.0), ("a", -1.0), ("b", -1.5), ("ab", -2.0)] + \
               [("<0x%02X>" % b, -5.0) for b in range(256)]
    return [(tie, 0, False, pieces), (repeated, 0, False, pieces), (fallback, 0, True, pieces),
            (tie[1:], None, False, ["abcd", "cab", "▁a"])]


def main():
    data = charsmap_bytes()
    precompiled = normalizers.Precompiled(data)
    keys = charsmap_keys(data)
    texts = HAND_PICKED + random_strings(keys, 3000, seed=20240611)
    cases = [[t, precompiled.normalize_str(t)] for t in texts]
    with open(os.path.join(T5, "charsmap_cases.json"), "w", encoding="utf-8") as f:
        json.dump({"generator": "tools/make_charsmap_cases.py", "tokenizers": tokenizers.__version__,
                   "cases": cases}, f, ensure_ascii=False, indent=0)
        f.write("\n")

    out = []
    for vocab, unk_id, byte_fallback, pieces in unigram_models():
        model = models.Unigram(vocab, unk_id, byte_fallback)
        model_cases = [[p, [t.id for t in model.tokenize(p)]] for p in pieces]
        out.append({"vocab": vocab, "unk_id": unk_id, "byte_fallback": byte_fallback, "cases": model_cases})
    with open(os.path.join(T5, "unigram_cases.json"), "w", encoding="utf-8") as f:
        json.dump({"generator": "tools/make_charsmap_cases.py", "tokenizers": tokenizers.__version__,
                   "models": out}, f, ensure_ascii=False)
        f.write("\n")
    print("%d charsmap cases, %d unigram models" % (len(cases), len(out)))


if __name__ == "__main__":
    main()
