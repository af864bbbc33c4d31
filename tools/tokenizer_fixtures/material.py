"""The training corpus and the test strings: fixed lists of real text and seeded pseudo-text."""

import random

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
