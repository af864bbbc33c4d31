#!/usr/bin/env python3
"""Seed corpus of the loaders' fuzz targets (tests/fuzz/fuzz_*.c).

Writes tests/fuzz/corpus/<target>/seed-*: a few valid inputs taken or cut down from tests/fixtures
(small: the whole corpus stays well under 1 MiB) plus edge cases of each format. Inputs of several
files join them with the harness's separator line "\\n@@\\n" (tests/fuzz/fuzz_files.h). The other
files of a corpus folder are not touched here: inputs the fuzzers found that reach new code (named
by their SHA-1, added with `FUZZER -merge=1 CORPUS NEW_DIR`), and the fixed findings kept as
regression inputs (crash-*, leak-*, slow-*, oom-*).

Deterministic: a rerun writes the same bytes (the tiny SentencePiece charsmaps are trained single-
threaded on fixed text). Needs numpy, Pillow, sentencepiece (with protobuf for its
model proto) and the committed fixtures:

    python3 tools/make_fuzz_corpus.py
"""

import io
import json
import os
import struct
import tempfile
import zlib

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")
SEP = b"\n@@\n"


def read(*parts):
    with open(os.path.join(FIXTURES, *parts), "rb") as f:
        return f.read()


def dumps(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def write_seeds(target, seeds):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        if name.startswith("seed-"):
            os.remove(os.path.join(folder, name))
    for name, data in seeds.items():
        with open(os.path.join(folder, "seed-" + name), "wb") as f:
            f.write(data)


# ---- safetensors --------------------------------------------------------------------------------

def safetensors_bytes(tensors, metadata=None, pad=True):
    """tensors: [(name, dtype, shape, raw bytes)] in order."""
    header, offset, data = {}, 0, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        data += raw
    text = dumps(header)
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def safetensors_seeds():
    f32 = np.arange(6, dtype=np.float32)
    seeds = {
        "f32_2x3": safetensors_bytes([("w", "F32", [2, 3], f32.tobytes())], {"format": "pt"}),
        "dtypes": safetensors_bytes([
            ("a.f16", "F16", [3], np.array([1, -2, 65504], np.float16).tobytes()),
            ("b.bf16", "BF16", [2], b"\x80\x3f\x00\xc0"),
            ("c.i32", "I32", [2], np.array([-1, 7], np.int32).tobytes()),
            ("d.i64", "I64", [2], np.array([3, -4], np.int64).tobytes()),
            ("e.u8", "U8", [2], b"\x01\xff"),
            ("f.bool", "BOOL", [1], b"\x01"),
            ("g.f64", "F64", [1], np.array([0.5]).tobytes()),
            ("h.f8", "F8_E4M3", [2], b"\x38\x40"),
        ]),
        "scalar_and_empty": safetensors_bytes([("s", "F32", [], f32[:1].tobytes()),
                                               ("z", "F32", [0, 4], b""), ("y", "I32", [4, 0], b"")]),
        "routing_capture": safetensors_bytes([
            ("step0.branch0.layer0", "I32", [3, 2], np.array([0, 1, 1, 2, 0, 3], np.int32).tobytes()),
            ("step1.branch1.layer2", "I32", [1, 2], np.array([2, 3], np.int32).tobytes())]),
        "unpadded_header": safetensors_bytes([("w", "F32", [1], f32[:1].tobytes())], pad=False),
        "header_only_no_tensors": safetensors_bytes([], {"k": "v"}),
        "nan_inf": safetensors_bytes([("w", "F32", [3], np.array([np.nan, np.inf, -0.0], np.float32).tobytes())]),
        "header_length_huge": struct.pack("<Q", 1 << 62) + b"{}",
        "truncated_data": safetensors_bytes([("w", "F32", [4], f32[:4].tobytes())])[:-5],
        "overlapping_offsets": struct.pack("<Q", 112) + dumps(
            {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
             "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}).ljust(112) + bytes(12),
        "index": dumps({"metadata": {"total_size": 12},
                        "weight_map": {"a": "shard.safetensors", "b": "shard.safetensors"}}),
        "index_escape": dumps({"weight_map": {"a": "../shard.safetensors", "b": "/etc/passwd"}}),
    }
    return seeds


# ---- configs ------------------------------------------------------------------------------------

def config_seeds():
    seeds = {
        "dit_dense": read("dit_dense", "transformer", "config.json"),
        "dit_moe": read("dit_moe", "transformer", "config.json"),
        "vae_sd": read("vae_sd", "vae", "config.json"),
        "vae_flux": read("vae_flux", "vae", "config.json"),
        "scheduler_karras": read("scheduler", "karras", "scheduler_config.json"),
        "scheduler_shift_terminal": read("scheduler", "shift_terminal", "scheduler_config.json"),
        "scheduler_lcm": read("scheduler_runs", "hidream_fast_lcm", "scheduler_config.json"),
        "scheduler_unipc": read("scheduler_runs", "order3_bh1_sigma_min", "scheduler_config.json"),
        "model_index": read("hidream_text", "model_index.json"),
        "nulls_and_types": b'{"_class_name": null, "num_layers": 1.5, "patch_size": "2", '
                           b'"block_out_channels": [], "shift": -1e308, "in_channels": 9007199254740993}',
        "deep_nesting": b"[" * 200 + b"]" * 200,
        "not_object": b'"config"',
        "bad_utf8_and_escapes": b'{"_class_name": "\xff\xfe", "act_fn": "\\u0000silu\\ud800"}',
    }
    return seeds


# ---- tokenizers ---------------------------------------------------------------------------------

def charsmap(rules):
    """A SentencePiece precompiled charsmap for rules [(source code points, target code points)]."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb
    model = io.BytesIO()
    with tempfile.TemporaryDirectory() as folder:
        tsv = os.path.join(folder, "rules.tsv")
        with open(tsv, "w") as f:
            for source, target in rules:
                f.write(" ".join("%X" % c for c in source) + "\t" + " ".join("%X" % c for c in target) + "\n")
        spm.SentencePieceTrainer.train(sentence_iterator=iter(["hello world", "a b c", "the quick fox"] * 10),
                                       model_writer=model, vocab_size=30, normalization_rule_tsv=tsv,
                                       minloglevel=2, hard_vocab_limit=False, num_threads=1)
    proto = pb.ModelProto()
    proto.ParseFromString(model.getvalue())
    return proto.normalizer_spec.precompiled_charsmap


CHARSMAP_RULES = [
    ([0xFB01], [0x66, 0x69]), ([0xFF21], [0x41]), ([0x2460], [0x31]), ([0xB2], [0x32]),
    ([0x61, 0x300], [0xE0]), ([0x65, 0x301], [0xE9]), ([0x3000], [0x20]), ([0x200B], []),
    ([0x1100, 0x1161], [0xAC00]), ([0xD55C], [0x1112, 0x1161, 0x11AB]), ([0x1F468, 0x200D], [0x1F468]),
]


def trimmed_bpe(tokenizer, keep):
    """The tokenizer.json with its BPE vocabulary cut to the first `keep` ids (and the merges inside them)."""
    model = tokenizer["model"]
    vocab = {t: i for t, i in model["vocab"].items() if i < keep}
    merges = []
    for merge in model["merges"]:
        a, b = merge.split(" ", 1) if isinstance(merge, str) else merge
        if a in vocab and b in vocab and a + b in vocab:
            merges.append(merge)
    model["vocab"], model["merges"] = vocab, merges
    return tokenizer


def tokenizer_seeds():
    seeds = {}
    for name in ("wordlevel_bos", "wordlevel_plain", "wordlevel_split_eos"):
        seeds[name] = read("text_tokenizers", name + ".json") + SEP + b"{}" + SEP + b"a red circle on the left"

    llama = trimmed_bpe(json.loads(read("tokenizers", "llama3", "tokenizer.json")), 400)
    llama["added_tokens"] = llama["added_tokens"][:4]
    llama_config = {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "model_max_length": 131072,
                    "added_tokens_decoder": {str(t["id"]): t for t in llama["added_tokens"]}}
    seeds["llama3_bpe"] = dumps(llama) + SEP + dumps(llama_config) + SEP + "Hello, world! It's 2024 — ça va?".encode()

    t5 = json.loads(read("tokenizers", "t5", "tokenizer.json"))
    t5["model"]["vocab"] = t5["model"]["vocab"][:160]
    t5["added_tokens"] = [t for t in t5["added_tokens"] if t["id"] < 160]
    for normalizer in t5["normalizer"]["normalizers"]:
        if normalizer["type"] == "Precompiled":
            import base64
            normalizer["precompiled_charsmap"] = base64.b64encode(charsmap(CHARSMAP_RULES)).decode()
    t5_config = {"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>", "model_max_length": 512}
    seeds["t5_unigram_precompiled"] = dumps(t5) + SEP + dumps(t5_config) + SEP + "ﬁ Ａ ① x² à é 한 ​".encode()

    unigram = json.loads(read("tokenizers", "t5", "unigram_cases.json"))
    for i, model in enumerate(unigram["models"]):
        tok = {"model": {"type": "Unigram", "unk_id": model["unk_id"], "vocab": model["vocab"],
                         "byte_fallback": model["byte_fallback"]},
               "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}}
        seeds["unigram_%d" % i] = dumps(tok) + SEP + b"{}" + SEP + model["cases"][0][0].encode()

    components = {"type": "WordLevel", "vocab": {"[UNK]": 0, "a": 1, "red": 2, "<s>": 3, "</s>": 4},
                  "unk_token": "[UNK]"}
    seeds["every_component"] = dumps({
        "added_tokens": [{"id": 3, "content": "<s>", "single_word": False, "lstrip": True, "rstrip": False,
                          "normalized": False, "special": True},
                         {"id": 4, "content": "</s>", "single_word": True, "lstrip": False, "rstrip": True,
                          "normalized": True, "special": True}],
        "truncation": {"max_length": 6, "direction": "Left", "strategy": "LongestFirst", "stride": 0},
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFKC"}, {"type": "Lowercase"}, {"type": "Strip", "strip_left": True, "strip_right": True},
            {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "},
            {"type": "Replace", "pattern": {"String": "``"}, "content": "\""},
            {"type": "Prepend", "prepend": "▁"}, {"type": "NFD"}]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "\\p{N}{1,3}"}, "behavior": "Isolated", "invert": False},
            {"type": "Whitespace"}, {"type": "WhitespaceSplit"},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}},
                                      {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [3], "tokens": ["<s>"]},
                                              "</s>": {"id": "</s>", "ids": [4], "tokens": ["</s>"]}}},
        "model": components}) + SEP + b'{"pad_token": "[UNK]", "padding_side": "left"}' + SEP + b"A  red\xe2\x80\x8b 12345"
    seeds["not_json"] = b"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a a\"]"
    return seeds


def clip_seeds():
    vocab = json.loads(read("tokenizers", "clip", "vocab.json"))
    keep = {t: i for t, i in vocab.items() if i < 600 or t in ("<|startoftext|>", "<|endoftext|>")}
    merges = [b"#version: 0.2"]
    for line in read("tokenizers", "clip", "merges.txt").split(b"\n")[1:]:
        parts = line.decode().split(" ")
        if len(parts) == 2 and all(p in keep for p in parts) and (parts[0] + parts[1]) in keep:
            merges.append(line)
    seeds = {}
    for name in ("clip", "clip2"):
        seeds[name] = (dumps(keep) + SEP + b"\n".join(merges) + b"\n" + SEP + read("tokenizers", name, "tokenizer_config.json")
                       + SEP + b"a photo of a CAT, 2 dogs! <|endoftext|>")
    seeds["no_config"] = dumps({"a</w>": 0, "b": 1, "ab</w>": 2, "<|endoftext|>": 3, "<|startoftext|>": 4}) + SEP + b"a b</w>\n"
    seeds["bad_merges"] = dumps({"a": 0}) + SEP + b"#version: 0.2\na\nb c d\n \n"
    return seeds


def charsmap_seeds():
    return {
        "rules": charsmap(CHARSMAP_RULES) + SEP + "ﬁ Ａ ① x² à é 가 한 ​👨‍👩 a\u0300\u0323".encode(),
        "one_rule": charsmap([([0xFF21], [0x41])]) + SEP + "ＡＡ".encode(),
        "trie_size_only": struct.pack("<I", 4) + b"\x00\x00\x00\x00",
        "trie_size_past_end": struct.pack("<I", 1 << 20) + b"\x00" * 8,
    }


# ---- images -------------------------------------------------------------------------------------

def png_bytes(image, **options):
    out = io.BytesIO()
    image.save(out, "PNG", **options)
    return out.getvalue()


def jpeg_bytes(image, **options):
    out = io.BytesIO()
    image.save(out, "JPEG", **options)
    return out.getvalue()


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)


def image_seeds():
    rng = np.random.default_rng(31)
    rgb = Image.fromarray(rng.integers(0, 256, (5, 7, 3), dtype=np.uint8), "RGB")
    gray16 = Image.fromarray(rng.integers(0, 65536, (4, 3), dtype=np.uint16))
    header = b"\x89PNG\r\n\x1a\n"
    seeds = {
        "rgb.png": png_bytes(rgb),
        "rgba.png": png_bytes(rgb.convert("RGBA")),
        "gray.png": png_bytes(rgb.convert("L")),
        "gray_alpha.png": png_bytes(rgb.convert("LA")),
        "gray1.png": png_bytes(rgb.convert("1")),
        "gray16.png": png_bytes(gray16),
        "palette_trns.png": png_bytes(rgb.convert("P", palette=Image.ADAPTIVE, colors=4), transparency=0),
        "interlaced.png": png_bytes(rgb, interlace=1),
        "baseline.jpg": jpeg_bytes(rgb, quality=80),
        "progressive.jpg": jpeg_bytes(rgb, quality=50, progressive=True),
        "gray.jpg": jpeg_bytes(rgb.convert("L")),
        "cmyk.jpg": jpeg_bytes(rgb.convert("CMYK")),
        "png_huge_ihdr.png": header + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 1 << 30, 1 << 30, 8, 2, 0, 0, 0)),
        "png_no_idat.png": header + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
                           + png_chunk(b"IEND", b""),
        "jpeg_soi_only.jpg": b"\xff\xd8\xff",
    }
    seeds["rgb_truncated.png"] = seeds["rgb.png"][:60]
    seeds["baseline_truncated.jpg"] = seeds["baseline.jpg"][:200]
    return seeds


# ---- moedit serve's requests -----------------------------------------------------------------------

def packed_request(prompt, negative=None, image=b"", n=1, edit=0):
    """serve_request_pack's bytes on x86-64 (struct serve_request with its pointers zeroed, the three
    lengths, the texts, the image). A change to the struct makes these refused inputs, still useful."""
    plain = struct.pack("<QQQqqqdQiiiii4xdQQ", 7, 0, 0, 512, 512, 20, 5.0, 42, n, 1, 0, edit, 0, 0.0, 0, len(image))
    lengths = struct.pack("<qqq", len(prompt), len(negative) if negative is not None else -1, len(image))
    return plain + lengths + prompt + (negative or b"") + image


def serve_request_seeds():
    """The first byte picks fuzz_serve_request's mode: 0 a JSON body, 1 rank bytes, 2 edit fields
    (3, 4, 5: the same on a CFG-parallel server); an edit's bytes after a NUL are its image."""
    body, rank, edit = b"\x00", b"\x01", b"\x02"
    one = packed_request(b"a red fox", b"blurry")
    two = packed_request(b"a lighthouse", None, b"\x89PNG\r\n\x1a\n", edit=1)
    return {
        "body_minimal.json": body + dumps({"prompt": "a cat"}),
        "body_full.json": body + dumps({"prompt": "a red fox in snow", "negative_prompt": "blurry", "n": 2,
                                        "size": "512x768", "seed": 42, "num_inference_steps": 20,
                                        "guidance_scale": 4.5, "response_format": "url", "output_format": "png",
                                        "model": "HiDream-I1-Full", "quality": "hd", "user": "u1",
                                        "output_compression": 80}),
        "body_auto_nulls.json": body + dumps({"prompt": "caf\u00e9 \U0001f600", "size": "auto", "seed": None}),
        "body_cfg.json": b"\x03" + dumps({"prompt": "x", "guidance_scale": 1.0}),
        "body_bad_size.json": body + dumps({"prompt": "x", "size": "1000x1000"}),
        "body_unknown.json": body + dumps({"prompt": "x", "steps": 4}),
        "body_no_prompt.json": body + dumps({"n": 1}),
        "body_array.json": body + b"[1,2]",
        "body_truncated.json": body + b'{"prompt": "a ca',
        "rank_one.bin": rank + one,
        "rank_list.bin": rank + struct.pack("<q", 2) + struct.pack("<q", len(one)) + one
                         + struct.pack("<q", len(two)) + two,
        "rank_short.bin": rank + one[:100],
        "edit_fields.json": edit + dumps({"prompt": "make it night", "strength": "0.7", "edit_mode": "strength",
                                          "n": "1", "seed": "3"}),
        "edit_context.json": edit + dumps({"prompt": "add a hat", "edit_mode": "context", "size": "256x256",
                                           "num_inference_steps": "8"}),
        "edit_image_tail.json": edit + dumps({"prompt": "p", "image": {}}) + b"\x00\xff\xd8\xff",
        "edit_bad_strength.json": edit + dumps({"prompt": "p", "strength": "0.01", "num_inference_steps": "2"}),
        "edit_mask.json": edit + dumps({"prompt": "p", "mask": {}}),
    }


def main():
    write_seeds("fuzz_safetensors", safetensors_seeds())
    write_seeds("fuzz_config", config_seeds())
    write_seeds("fuzz_tokenizer", tokenizer_seeds())
    write_seeds("fuzz_clip_tokenizer", clip_seeds())
    write_seeds("fuzz_charsmap", charsmap_seeds())
    write_seeds("fuzz_image", image_seeds())
    write_seeds("fuzz_serve_request", serve_request_seeds())
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(CORPUS) for f in fs)
    print("corpus: %d bytes in %s" % (total, os.path.relpath(CORPUS, ROOT)))


if __name__ == "__main__":
    main()
