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
import importlib.util  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "tests", "fixtures", "tokenizers")
GENERATOR = "tools/make_tokenizer_fixtures.py"

CLIP_MERGES = 2600          # merges kept -> vocab 512 + merges (minus duplicates) + 2
T5_PIECES = 3000            # sentencepiece vocab (incl. <pad> </s> <unk>) -> + 100 <extra_id_N>
LLAMA_BPE_VOCAB = 3000      # trained byte-level BPE vocab (256 bytes + merges) before extras/specials
LLAMA_UNREACHABLE = 48      # whole-word tokens added to the vocab with no merge that builds them

LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
CLIP_PATTERN = (
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
)


# --------------------------------------------------------------------------------------------
# Text material
# --------------------------------------------------------------------------------------------

ADJ = ["red", "small", "ancient", "glowing", "misty", "golden", "tiny", "enormous", "quiet", "rusty",
       "wooden", "crystal", "neon", "velvet", "frozen", "sunlit", "shadowy", "colorful", "elegant",
       "weathered", "futuristic", "cozy", "dramatic", "serene", "vintage", "majestic", "playful",
       "soft", "bright", "dark", "blue", "green", "purple", "orange", "silver", "white", "black"]
NOUN = ["cat", "dog", "castle", "lighthouse", "robot", "dragon", "teapot", "mountain", "forest",
        "river", "city", "street", "bicycle", "owl", "fox", "garden", "library", "train", "boat",
        "bridge", "window", "portrait", "astronaut", "samurai", "market", "waterfall", "cottage",
        "violin", "lantern", "butterfly", "spaceship", "desert", "temple", "harbor", "cafe", "tree"]
VERB = ["sitting", "standing", "sleeping", "floating", "running", "glowing", "resting", "flying",
        "hiding", "dancing", "reading", "waiting", "shining", "walking", "painted", "reflected"]
PREP = ["on", "under", "beside", "behind", "above", "inside", "near", "across", "over", "in front of"]
PLACE = ["the roof", "a wooden table", "the beach at sunset", "a snowy hill", "the old market",
         "a rainy street", "the moon", "a field of flowers", "the ocean", "a crowded train station",
         "the kitchen", "a foggy lake", "the clouds", "a neon-lit alley", "the mountains"]
STYLE = ["photorealistic", "oil painting", "watercolor", "35mm film photo", "digital art",
         "studio lighting", "cinematic lighting", "highly detailed", "8k", "4K UHD", "bokeh",
         "isometric 3D render", "pencil sketch", "anime style", "low poly", "golden hour",
         "HDR", "f/1.8, 85mm", "trending on ArtStation", "ultra-wide shot", "macro photography"]

# Short texts in many scripts (each is real text in its language or a common phrase).
SCRIPTS = {
    "latin_accents": [
        "Le café est très chaud, n'est-ce pas ?", "Größenwahn auf der Straße über den Äpfeln",
        "¿Dónde está el niño? ¡Mañana por la mañana!", "Zażółć gęślą jaźń", "İstanbul'da ılık bir gün",
        "Tiếng Việt có dấu rất đẹp", "Ça va très bien, merci beaucoup", "São Paulo é uma cidade enorme",
        "Smørrebrød og æblekage på Ærø", "Český Krumlov a Brno", "Þórður og Ægir á Íslandi",
        "naïve façade, coöperate, résumé, déjà vu", "Œuvre complète de Molière", "Šťastný Ďábel",
        "Ångström Øresund Ærøskøbing", "Cañón del Colca, piñata, jalapeño", "Łódź, Kraków, Gdańsk",
    ],
    "greek": [
        "Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο", "Καλημέρα κόσμε",
        "ΟΔΥΣΣΕΥΣ ΚΑΙ ΠΗΝΕΛΟΠΗ", "Ἀθῆναι, ἡ πόλις τῆς σοφίας", "φως, θάλασσα, ουρανός",
        "Σίσυφος ΣΊΣΥΦΟΣ", "αβγδεζηθικλμνξοπρστυφχψω",
    ],
    "cyrillic": [
        "Съешь же ещё этих мягких французских булок, да выпей чаю", "Привет, мир!",
        "ЧЁРНЫЙ КОТ НА КРЫШЕ", "Ґанок і їжак у Києві", "Београд и Нови Сад", "Ёлка, ёж, ёмкость",
        "Щука в реке, подъезд, объём",
    ],
    "arabic": [
        "مرحبا بالعالم، هذه قطة سوداء على السطح", "السلام عليكم", "مُحَمَّدٌ رَسُولُ",
        "الأرقام ٠١٢٣٤٥٦٧٨٩", "كتاب جميل جداً", "فارسی: گربه سیاه روی پشت بام",
    ],
    "hebrew": [
        "שלום עולם, חתול שחור על הגג", "שָׁלוֹם עֲלֵיכֶם", "ירושלים של זהב", "אבגדהוזחטיכלמנסעפצקרשת",
    ],
    "devanagari": [
        "नमस्ते दुनिया, छत पर एक काली बिल्ली", "हिन्दी भाषा", "अंक ०१२३४५६७८९", "क्षत्रिय ज्ञान श्री",
        "संस्कृतम् एका प्राचीना भाषा",
    ],
    "indic_other": ["আমি বাংলায় গান গাই", "வணக்கம் உலகம்", "ਪੰਜਾਬੀ ਭਾਸ਼ਾ", "ಕನ್ನಡ ಭಾಷೆ", "తెలుగు భాష"],
    "thai": ["สวัสดีชาวโลก แมวดำบนหลังคา", "ภาษาไทยไม่มีช่องว่างระหว่างคำ", "กรุงเทพมหานคร"],
    "cjk": [
        "一只黑猫坐在屋顶上，夕阳西下。", "东京的夜景很美", "繁體中文：龍與鳳凰", "山水畫，雲霧繚繞",
        "我爱北京天安门", "春眠不觉晓，处处闻啼鸟。",
    ],
    "japanese": [
        "東京の夜景、ネオンが輝く街。", "ひらがなとカタカナ", "猫が屋根の上で寝ている", "ラーメンを食べたい！",
        "富士山と桜の写真", "コンピューター・グラフィックス",
    ],
    "hangul": [
        "안녕하세요 세계, 지붕 위의 검은 고양이", "한국어 문장입니다", "서울의 밤하늘", "고양이와 강아지",
    ],
    "other": [
        "გამარჯობა მსოფლიო", "Բարեւ աշխարհ", "ሰላም ለዓለም", "ᠮᠣᠩᠭᠣᠯ", "ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ", "ລາວ ພາສາ",
        "ខ្មែរ ភាសា", "မြန်မာ ဘာသာ", "සිංහල භාෂාව", "ئۇيغۇرچە", "ᚠᚢᚦᚨᚱᚲ", "ꦧꦱꦗꦮ",
    ],
}

EMOJI = [
    "🐱", "🌅", "🔥", "✨", "🎨", "❤️", "❤", "👍", "👍🏽", "👍🏿", "👋🏻", "👩‍💻", "👨‍👩‍👧‍👦", "🧑🏾‍🚀",
    "🏳️‍🌈", "🏴‍☠️", "🇯🇵", "🇺🇸", "🇪🇺", "🇩🇪🇫🇷", "🇺", "1️⃣", "#️⃣", "©️", "☕", "🦄", "🌍", "😀😃😄",
    "🤷‍♀️", "🙇🏼‍♂️", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "👁️‍🗨️", "🫠", "🪐", "🐉", "💯", "🔟", "🆗", "😂😂😂", "🙂‍↔️",
]

COMBINING = [
    "e\u0301", "E\u0301", "a\u0300\u0323", "n\u0303", "o\u0308\u0304", "u\u0308", "c\u0327",
    "A\u030a", "i\u0307", "\u0301", "\u0301\u0301\u0301", "x\u0336y\u0336z\u0336",
    "Z\u0335\u0321\u0322\u0348\u0347\u032e\u032d\u0354\u0318\u0323\u031e\u0359\u0349\u033f\u0343\u034b",
    "cafe\u0301", "re\u0301sume\u0301", "\u1100\u1161\u11a8", "\u1112\u1161\u11ab\u1100\u1173\u11af",
    "\u0915\u094d\u0937", "\u0645\u064f\u0651", "\u05e9\u05c1\u05b8", "\u0e01\u0e34\u0e4a",
    "q\u0307\u0323", "\u00e9", "\u212b", "\u2126", "\u1e9b\u0323",
]

NFKC_FORMS = [
    "ﬁ", "ﬀ", "ﬂ", "ﬃ", "ﬄ", "ﬅ", "ﬆ", "oﬃce", "ﬁne ﬂower", "ＡＢＣ", "ａｂｃ", "１２３", "ＡＢＣ１２３ｘｙｚ",
    "Ｈｅｌｌｏ，Ｗｏｒｌｄ！", "x²", "H₂O", "E=mc²", "10⁻³", "①②③", "⑩⑳", "㉑", "Ⓐⓑ", "ℌℍℕℙ", "ℝ", "ℯ",
    "㎏", "㎞", "㎡", "㏄", "㍻", "㈱", "㋿", "ｶﾀｶﾅ", "ﾊﾟﾝ", "ｶﾞｷﾞ", "ﾞﾟ", "豈", "更", "車", "樂", "ⅷ", "Ⅻ",
    "½", "¼", "¾", "⅓", "™", "℠", "…", "‥", "ǅ", "ǈ", "ﷺ", "ﷻ", "ﺎ", "ﻻ", "µ", "ſ", "ﬀ ﬁ ﬂ", "Å", "Ω",
    "K", "ｰ", "〜", "～", "！？", "＂＃＄％＆", "｟｠", "｡､", "ㄱㄴ", "ﾡﾢ", "ᴬᴮ", "ₐₑ", "㉠", "㊀", "⁰¹²³",
    "ℵ", "№", "℃", "℉", "㏒", "Ǳ", "ǲ", "ǳ", "ĳ", "Ŀ", "ŉ", "ﹰ", "︵", "︙", "〔〕",
]

SPACES = [
    " ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r", "\r\n", "\r\n\r\n", " \n ", "\x0b", "\x0c",
    "\u00a0", "\u2003", "\u3000", "\u2002", "\u2009", "\u200a", "\u202f", "\u205f", "\u1680",
    "\u2028", "\u2029", "\u0085", "\u180e", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff",
    " \u00a0 ", "\t \t", "\u3000\u3000", "\u00a0\u00a0",
]

CONTROL = ["\x00", "\x01", "\x07", "\x1b", "\x1f", "\x7f", "\x80", "\x9f", "\ufffd", "\ue000",
           "\uf8ff", "\ufffe", "\uffff", "\U0001d11e", "\U0010fffd", "\U000e0041", "\U0001f9ff",
           "\U00020000", "\U0002a6d6"]

CONTRACTIONS = [
    "it's", "IT'S", "It'S", "don't", "DON'T", "Don'T", "we're", "WE'RE", "We'Re", "they'll", "THEY'LL",
    "They'Ll", "I've", "I'VE", "I'Ve", "I'm", "I'M", "he'd", "HE'D", "He'D", "cat's", "CAT'S",
    "it’s", "don’t", "we’re", "they’ll", "I’ve", "I’m", "he’d", "IT’S", "'s", "'t", "'re", "'ll",
    "'ve", "'m", "'d", "'S", "'T", "'RE", "'LL", "'VE", "'M", "'D", "''s", "'ss", "'dd", "'lll",
    "rock'n'roll", "o'clock", "y'all'd've", "'tis", "ma'am", "the '90s", "Jones'", "'quoted'",
]

DIGITS = [
    "0", "7", "42", "123", "1234", "12345", "123456", "1234567", "12345678", "123456789",
    "1234567890", "3.14159", "1,000,000", "2024-05-17", "v1.2.3", "0x1F", "abc123def", "123abc",
    "a1b2c3", "12:30pm", "1st 2nd 3rd 4th", "$19.99", "100%", "-273.15°C", "1e-9", "1/2", "007",
    "٠١٢٣٤٥٦٧٨٩", "०१२३४५६७८९", "１２３４５", "①②", "Ⅳ", "²³", "๑๒๓", "〇一二三", "12,345.67",
    "+1 (555) 123-4567", "192.168.0.1", "4K", "1080p", "60fps", "3D", "x86_64", "f/2.8",
]

PUNCT = [
    "!", "!!!", "?!?", "...", "..", "----", "***", "'''", '"', '""', "((()))", "<<>>", "@#$%^&*",
    "—–-", "«»", "“”", "‘’", "。，、！？", "\\", "\\\\", "//", "::", "~~", "|", "||", "[]{}", ";;",
    "¿¡", "§¶", "•·", "†‡", "‰", "°", "←→↑↓", "★☆", "♪♫", "✓✗", "∑∫√∞≠≤≥±×÷", "€£¥₹₽", "©®™", "<>",
    "</", "/>", "<|", "|>", "_", "__init__", "-_-", "^_^", ":)", ":-(", ";P", "<3", "(╯°□°)╯︵ ┻━┻",
    "¯\\_(ツ)_/¯", "`code`", "```", "#hashtag", "@user", "https://example.com/a?b=c&d=e#f",
    "user@example.com", "C:\\path\\to\\file.txt", "a--b", "a...b", "a,b,c", "(a)", "[b]", "{c}",
]

SPECIAL_TEXT = [
    "<|endoftext|>", "<|startoftext|>", "</s>", "<s>", "<pad>", "<unk>", "<extra_id_0>", "<extra_id_5>",
    "<extra_id_99>", "<extra_id_100>", "<extra_id_-1>", "<|begin_of_text|>", "<|end_of_text|>",
    "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|python_tag|>",
    "<|finetune_right_pad_id|>", "<|reserved_special_token_0|>", "<|reserved_special_token_5|>",
    "<|reserved_special_token_247|>", "<|reserved_special_token_248|>", "<|endof", "<|endoftext",
    "endoftext|>", "<|eot_id", "<|begin_of", "<extra_id_", "extra_id_5>", "</s", "/s>", "<|", "|>",
    "<|ENDOFTEXT|>", "<|EndOfText|>", "</S>", "<EXTRA_ID_5>", "<|BEGIN_OF_TEXT|>", "< /s>", "<|eot_id |>",
    "<|endoftext|><|endoftext|>", "</s></s>", "<extra_id_1><extra_id_2>", "<|eot_id|><|eot_id|>",
    "<|startoftext|>hello<|endoftext|>", "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
]

SPECIAL_IN_PROMPT = [
    "a cat <|endoftext|> a dog", "photo of a dog</s> on the beach", "fill <extra_id_5> the blank",
    "<|begin_of_text|>A castle at night", "the end.<|eot_id|>", "<|start_header_id|>system<|end_header_id|>",
    "partial <|endof token", "partial <|eot_id token", "x</s>y", "x <pad> y <unk> z",
    "The <extra_id_0> walks <extra_id_1> the park", "a<|endoftext|>b", "a <|startoftext|> b",
    "  </s>  ", "\t<|eot_id|>\n", "<|begin_of_text|><|begin_of_text|>twice", "<|reserved_special_token_3|>x",
    "a<extra_id_99>b", "THE <|ENDOFTEXT|> END", "café<|endoftext|>über", "日本<|eot_id|>語", "🐱</s>🐶",
    "<|endoftext|>'s", "it</s>'s", "<s>hello</s>", "<|user|>hi<|assistant|>", "{{user}} said <|eot_id|>",
]

WORDS = ["photo", "of", "a", "the", "and", "with", "in", "at", "light", "shadow", "style", "art",
         "Hello", "WORLD", "Tokenizer", "HiDream", "transformer", "ÜBER", "naïve", "Straße", "ΣΊΣΥΦΟΣ",
         "İstanbul", "ǅemal", "ß", "ẞ", "ﬁsh", "Ⅻ", "ΑΒΓ", "Москва", "東京", "서울", "القاهرة", "תל אביב"]


# Syllables for seeded pseudo-words in several scripts (gives the trainers a realistic spread of
# subwords; the real texts above give whole words and phrases).
SYLLABLE_SETS = {
    "latin": ([c for c in "bcdfghjklmnprstvwz"] + ["ch", "sh", "th", "st", "br", "tr", "pl", "qu"],
              list("aeiou") + ["ai", "ou", "ea", "é", "è", "ü", "ö", "ä", "å", "ø", "ñ", "ç"]),
    "greek": (list("βγδζθκλμνξπρστφχψ"), list("αεηιουω") + list("άέήίόύώ")),
    "cyrillic": (list("бвгджзклмнпрстфхцчшщ"), list("аеёиоуыэюя")),
    "arabic": (list("بتثجحخدذرزسشصضطظعغفقكلمنهوي"), ["", "ا", "و", "ي", "َ", "ُ", "ِ"]),
    "hebrew": (list("בגדהוזחטיכלמנסעפצקרשת"), ["", "ו", "י", "א"]),
    "devanagari": (list("कखगघचछजझटठडढणतथदधनपफबभमयरलवशषसह"),
                   ["", "ा", "ि", "ी", "ु", "ू", "े", "ै", "ो", "ौ", "ं", "्र"]),
    "thai": (list("กขคงจฉชซญดตถทธนบปผพฟภมยรลวศษสหอฮ"), ["", "า", "ิ", "ี", "ุ", "ู", "ะ", "ำ", "่", "้"]),
    "hiragana": (list("かきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわ"), ["", "ん", "っ", "ー"]),
    "katakana": (list("カキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワ"), ["", "ン", "ッ", "ー"]),
}
HANZI = ("的一是不了人我在有他这为之大来以个中上们到说国和地也子时道出而要于就下得可你年生自会那后能对着事其里"
         "所去行过家十用发天如然作方成者多日都三小军二无同么经法当起与好看学进种将还分此心前面又定见只主没公从"
         "山水火木金土风雨雪云花草鸟鱼猫狗马龙月星光色红黄蓝绿白黑夜晨城街桥塔船车画像")
NO_SPACE_SCRIPTS = ("thai", "hiragana", "katakana", "hanzi")


def make_lexicon(rng, script, n):
    words = []
    seen = set()
    while len(words) < n:
        if script == "hanzi":
            w = "".join(rng.choice(HANZI) for _ in range(rng.randint(1, 3)))
        elif script == "hangul":
            w = "".join(chr(0xAC00 + rng.randrange(19) * 588 + rng.randrange(21) * 28 + rng.choice([0, 0, 4, 8, 16]))
                        for _ in range(rng.randint(1, 3)))
        else:
            cons, vows = SYLLABLE_SETS[script]
            w = "".join(rng.choice(cons) + rng.choice(vows) for _ in range(rng.randint(1, 4)))
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


def pseudo_sentence(rng, script, lexicon):
    weights = [1.0 / (k + 1) for k in range(len(lexicon))]
    words = rng.choices(lexicon, weights=weights, k=rng.randint(3, 12))
    sep = "" if script in NO_SPACE_SCRIPTS else " "
    s = sep.join(words)
    if rng.random() < 0.3 and script == "latin":
        s = s.capitalize()
    return s + rng.choice(["", ".", ",", "!", "?", "。" if sep == "" else "."])


def caption(rng):
    s = f"A {rng.choice(ADJ)} {rng.choice(NOUN)} {rng.choice(VERB)} {rng.choice(PREP)} {rng.choice(PLACE)}"
    if rng.random() < 0.6:
        s += ", " + ", ".join(rng.sample(STYLE, rng.randint(1, 3)))
    if rng.random() < 0.3:
        s += f". The {rng.choice(NOUN)} is {rng.choice(ADJ)} and {rng.choice(ADJ)}"
    s += rng.choice([".", "", "!", ".", ";"])
    if rng.random() < 0.15:
        s = s.upper() if rng.random() < 0.5 else s.lower()
    return s


def corpus_lines():
    """A few thousand training lines: captions, other scripts, pseudo-words, digits, punctuation, emoji."""
    rng = random.Random(20240517)
    all_script_texts = [t for texts in SCRIPTS.values() for t in texts]
    scripts = list(SYLLABLE_SETS) + ["hanzi", "hangul"]
    lexicons = {sc: make_lexicon(rng, sc, 400) for sc in scripts}
    lines = []
    for i in range(6000):
        r = rng.random()
        if r < 0.40:
            line = caption(rng)
        elif r < 0.55:
            line = rng.choice(all_script_texts)
            if rng.random() < 0.5:
                line += " " + rng.choice(all_script_texts)
        elif r < 0.80:
            sc = rng.choice(scripts)
            line = pseudo_sentence(rng, sc, lexicons[sc])
        elif r < 0.86:
            line = caption(rng) + " " + " ".join(rng.choice(DIGITS) for _ in range(rng.randint(1, 3)))
        elif r < 0.91:
            line = caption(rng) + " " + "".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 3)))
        elif r < 0.95:
            line = " ".join(rng.choice(CONTRACTIONS + PUNCT + WORDS) for _ in range(rng.randint(3, 9)))
        else:
            line = rng.choice(all_script_texts) + " " + caption(rng) + " " + rng.choice(NFKC_FORMS)
        lines.append(line)
    return lines


def random_text(rng, pools, n_min, n_max):
    parts = []
    for _ in range(rng.randint(n_min, n_max)):
        pool = rng.choice(pools)
        parts.append(rng.choice(pool))
    seps = ["", " ", " ", " ", "  ", "\t", "\n", ", ", "\u00a0", "\u3000", "-", "'"]
    out = parts[0] if parts else ""
    for p in parts[1:]:
        out += rng.choice(seps) + p
    return out


def random_codepoints(rng, n):
    """n random code points from blocks that matter (no surrogates)."""
    blocks = [(0x20, 0x7E), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x5FF),
              (0x600, 0x6FF), (0x900, 0x97F), (0xE00, 0xE7F), (0x1100, 0x11FF), (0x2000, 0x206F),
              (0x2100, 0x218F), (0x2460, 0x24FF), (0x3000, 0x30FF), (0x3130, 0x318F), (0x3200, 0x33FF),
              (0x4E00, 0x4E80), (0xAC00, 0xAC80), (0xF900, 0xF920), (0xFB00, 0xFB4F), (0xFE30, 0xFE4F),
              (0xFF00, 0xFFEF), (0x1F300, 0x1F6FF), (0x1F900, 0x1F9FF), (0x1D400, 0x1D4FF), (0x0, 0x1F)]
    out = []
    for _ in range(n):
        lo, hi = rng.choice(blocks)
        out.append(chr(rng.randint(lo, hi)))
    return "".join(out)


def test_strings():
    """The shared list of test strings (>= 5,000, unique, order fixed)."""
    rng = random.Random(77)
    out = []

    def add(s):
        out.append(s)

    # Fixed edge cases.
    for s in ["", " ", "  ", "\t", "\n", "\r\n", "\r", " \n ", "\u00a0", "\u3000", "\u2003", "\u200b",
              "\ufeff", " \t\n\r\x0b\x0c", "a", "A", "I", "ab", "hello", "Hello", "HELLO", "hello world",
              "Hello World!", "hello  world", "hello   world", " hello", "hello ", "  hello  ",
              "hello\nworld", "hello\n\nworld", "hello\r\nworld", "hello\tworld", "hello\u00a0world",
              "hello\u3000world", "hello\u200bworld", "hello\u2003world", "a photo of a cat",
              "A photo of a cat.", "A PHOTO OF A CAT", "a    photo\t\tof\n\na   cat   "]:
        add(s)
    pools_single = [SPACES, CONTROL, COMBINING, NFKC_FORMS, EMOJI, CONTRACTIONS, DIGITS, PUNCT,
                    SPECIAL_TEXT, SPECIAL_IN_PROMPT, WORDS] + list(SCRIPTS.values())
    for pool in pools_single:
        for s in pool:
            add(s)
            add(" " + s)
            add(s + " ")
            add("a" + s + "b")
            add("Photo " + s + " end")
    # Whitespace-only strings of many shapes.
    for _ in range(60):
        add("".join(rng.choice(SPACES) for _ in range(rng.randint(1, 6))))
    # Digit runs of every length 1..40, alone, with letters, with spaces and separators.
    for n in range(1, 41):
        run = "".join(str((i * 7 + n) % 10) for i in range(n))
        add(run)
        add("x" + run)
        add(run + "px")
        add("abc" + run + "def")
        add(" " + run + " ")
        add(run[: n // 2] + " " + run[n // 2:])
        add(run[: n // 2] + "." + run[n // 2:])
        add("１２３４５６７８９０"[: min(n, 10)] * (1 + n // 10))
    # Whitespace runs between words.
    for n in range(1, 13):
        for ws in [" ", "\t", "\n", "\r\n", "\u00a0", "\u3000", " \n"]:
            add("left" + ws * n + "right")
            add(ws * n + "word")
            add("word" + ws * n)
    # Contractions in sentences, any case.
    for c in CONTRACTIONS:
        add(f"I think {c} fine")
        add(f"{c.upper()} {c.lower()} {c.title()}")
    # Punctuation runs.
    for p in "!?.,;:-_*#@$%&()[]{}<>/\\|~^`'\"":
        for n in (1, 2, 3, 5, 8):
            add(p * n)
            add("word" + p * n + "word")
    # Captions.
    for _ in range(250):
        add(caption(rng))
    # Captions with one inserted fragment of every kind.
    frag_pools = [SPACES, CONTROL, COMBINING, NFKC_FORMS, EMOJI, CONTRACTIONS, DIGITS, PUNCT, SPECIAL_TEXT,
                  WORDS] + list(SCRIPTS.values())
    for _ in range(600):
        cap = caption(rng)
        words = cap.split(" ")
        k = rng.randint(0, len(words))
        words.insert(k, rng.choice(rng.choice(frag_pools)))
        add(" ".join(words))
    # Random mixes of fragments.
    for _ in range(900):
        add(random_text(rng, frag_pools, 1, 6))
    # Random code points.
    for _ in range(250):
        add(random_codepoints(rng, rng.randint(1, 24)))
    # Case variants of script texts (Greek final sigma, Turkish dotted I, German sharp s).
    for texts in SCRIPTS.values():
        for t in texts:
            add(t.upper())
            add(t.lower())
    # Long prompts.
    long_caption = ""
    while len(long_caption) < 2000:
        long_caption += caption(rng) + " "
    add(long_caption[:2000])
    mixed = random_text(rng, frag_pools, 400, 400)
    add(mixed[:2000])
    add("a" * 300)
    add("ab" * 150)
    add("9" * 300)
    add(" " * 300)
    add("🐱" * 100)
    add("日本語" * 100)
    add(("word " * 120).strip())

    # Unique, order kept.
    seen = set()
    unique = []
    for s in out:
        if s not in seen:
            seen.add(s)
            unique.append(s)
    for s in unique:
        s.encode("utf-8")  # no lone surrogates
    return unique


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# CLIP (HiDream tokenizer/ and tokenizer_2/)
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# T5 (HiDream tokenizer_3/)
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Llama 3 (HiDream tokenizer_4/)
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------

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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: tests/fixtures/tokenizers)")
    args = ap.parse_args()
    out = os.path.abspath(args.out)

    import transformers
    from transformers import AutoTokenizer, CLIPTokenizer, PreTrainedTokenizerFast, T5TokenizerFast

    vers = versions()
    has_ftfy = importlib.util.find_spec("ftfy") is not None
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
        # ---- CLIP ------------------------------------------------------------------------------
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

        # ---- T5 --------------------------------------------------------------------------------
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

        # ---- Llama 3 ---------------------------------------------------------------------------
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
