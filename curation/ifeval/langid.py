"""A small offline language identifier for the IFEval language checks.

IFEval's reference calls ``langdetect`` (a character n-gram model). It is not a
dependency here, so this module identifies a text in two steps:

1. **Script.** Count the letters of each writing system. Many languages are
   identified by their script alone (Thai, Korean, Tamil, Greek, ...).
2. **Function words, within a script.** Where several languages share a script
   (Latin, Cyrillic, Arabic, Devanagari), score each language by how many of the
   text's words are among its most frequent function words, plus a few letters
   that are distinctive (Spanish "ñ", Ukrainian "ї", Urdu "ے", ...). A word that
   is a function word of k languages adds 1/k to each of them.

It covers the 30 languages of IFEval's ``LANGUAGE_CODES`` plus a few common
neighbours (Dutch, Swedish, Turkish, Indonesian, Romanian, Czech, Chinese,
Greek, ...) so that, for example, Dutch is not mistaken for German. It is meant
for whole responses of a sentence or more; on a text with no function word it
returns the script but no language (see `LanguageGuess`).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

# ISO 639-1 codes the IFEval reference accepts (instructions_util.LANGUAGE_CODES).
IFEVAL_LANGUAGES: dict[str, str] = {
    "en": "English", "es": "Spanish", "pt": "Portuguese", "ar": "Arabic", "hi": "Hindi",
    "fr": "French", "ru": "Russian", "de": "German", "ja": "Japanese", "it": "Italian",
    "bn": "Bengali", "uk": "Ukrainian", "th": "Thai", "ur": "Urdu", "ta": "Tamil",
    "te": "Telugu", "bg": "Bulgarian", "ko": "Korean", "pl": "Polish", "he": "Hebrew",
    "fa": "Persian", "vi": "Vietnamese", "ne": "Nepali", "sw": "Swahili", "kn": "Kannada",
    "mr": "Marathi", "gu": "Gujarati", "pa": "Punjabi", "ml": "Malayalam", "fi": "Finnish",
}  # fmt: skip

# (first code point, last code point, script)
_SCRIPT_RANGES: tuple[tuple[int, int, str], ...] = (
    (0x00C0, 0x024F, "latin"), (0x1E00, 0x1EFF, "latin"),
    (0x0370, 0x03FF, "greek"), (0x1F00, 0x1FFF, "greek"),
    (0x0400, 0x052F, "cyrillic"),
    (0x0530, 0x058F, "armenian"),
    (0x0590, 0x05FF, "hebrew"),
    (0x0600, 0x06FF, "arabic"), (0x0750, 0x077F, "arabic"), (0xFB50, 0xFDFF, "arabic"),
    (0xFE70, 0xFEFF, "arabic"),
    (0x0900, 0x097F, "devanagari"), (0x0980, 0x09FF, "bengali"), (0x0A00, 0x0A7F, "gurmukhi"),
    (0x0A80, 0x0AFF, "gujarati"), (0x0B00, 0x0B7F, "oriya"), (0x0B80, 0x0BFF, "tamil"),
    (0x0C00, 0x0C7F, "telugu"), (0x0C80, 0x0CFF, "kannada"), (0x0D00, 0x0D7F, "malayalam"),
    (0x0D80, 0x0DFF, "sinhala"), (0x0E00, 0x0E7F, "thai"), (0x0E80, 0x0EFF, "lao"),
    (0x0F00, 0x0FFF, "tibetan"), (0x1000, 0x109F, "myanmar"), (0x10A0, 0x10FF, "georgian"),
    (0x1100, 0x11FF, "hangul"), (0x1200, 0x139F, "ethiopic"), (0x1780, 0x17FF, "khmer"),
    (0x3040, 0x30FF, "kana"), (0x31F0, 0x31FF, "kana"), (0xFF66, 0xFF9F, "kana"),
    (0x3130, 0x318F, "hangul"), (0xAC00, 0xD7AF, "hangul"),
    (0x3400, 0x4DBF, "han"), (0x4E00, 0x9FFF, "han"), (0xF900, 0xFAFF, "han"),
)  # fmt: skip

# Scripts that identify one language on their own.
_SCRIPT_LANGUAGE: dict[str, str] = {
    "greek": "el", "armenian": "hy", "hebrew": "he", "bengali": "bn", "gurmukhi": "pa",
    "gujarati": "gu", "oriya": "or", "tamil": "ta", "telugu": "te", "kannada": "kn",
    "malayalam": "ml", "sinhala": "si", "thai": "th", "lao": "lo", "tibetan": "bo",
    "myanmar": "my", "georgian": "ka", "hangul": "ko", "ethiopic": "am", "khmer": "km",
}  # fmt: skip

# Frequent function words per language, by script. Lower case.
_FUNCTION_WORDS: dict[str, dict[str, str]] = {
    "latin": {
        "en": "the be to of and a in that have i it for not on with he as you do at this but his by "
        "from they we say her she or an will my one all would there their what so up out if about "
        "who get which go me is are was were been has had can our your its than then them these "
        "those how when where why very also into more some just today every each any no only other "
        "such both few many most same own over under again here now well because should could may "
        "might must shall does did being through after before while until between against during "
        "without within upon yes letter word words any anything something nothing everything "
        "people time way make made like know think see new good first last long great little "
        "just much even back there here",
        "es": "el la los las de del que y en un una es por con no se su sus para al lo como más pero "
        "o este esta ya muy también hay fue son está están sin sobre entre cuando porque todo "
        "todos nos le les hoy mi yo tu usted ser tiene hace puede donde desde hasta bien",
        "pt": "o a os as de do da dos das que e em no na nos nas um uma é por com não se para ao à "
        "como mais mas ou seu sua este esta isso muito também há foi são está sem sobre entre "
        "quando porque tudo você eu ele ela pelo pela ser tem pode onde já hoje até bem",
        "fr": "le la les de des du un une et est en que qui dans pour pas sur au aux avec ce cette ces "
        "il elle ils nous vous je ne se son sa ses par plus mais ou sont été être avoir très aussi "
        "comme tout tous leur y aujourd hui",
        "de": "der die das und ist in den von zu mit sich des auf für nicht im dem ein eine einen "
        "einer als auch es an er sie wir ich du werden wird aus bei nach oder aber wenn so wie noch "
        "nur sind war hat haben kann über um dass vom zum zur sehr diese dieser heute",
        "it": "il lo la i gli le di del della dei che e è in un una per con non si da al alla sono "
        "come più ma anche questo questa nel nella ha hanno essere suo sua molto tutto quando "
        "perché se ci mi ti io tu lui lei noi voi loro cosa già oggi",
        "nl": "de het een en van in is dat op te zijn voor met die niet aan er om ook als maar bij of "
        "uit dan naar wordt worden ze zij hij wij we ik je u dit deze nog kan heeft hebben was "
        "waren door over veel meer geen wel vandaag",
        "pl": "i w z na się nie do to że jest o a jak po co ale od za jego jej ich tak są być może "
        "już tylko przez dla przy lub oraz tym ten ta te który która które także bardzo jestem "
        "gdy czy mnie my wy on ona oni dzisiaj",
        "vi": "của và là có không được trong cho một những các với người này đã để khi từ đến như về "
        "cũng nhiều rất sẽ tôi bạn chúng họ nó thì mà nhưng hoặc vì nếu đó ra làm lại năm theo "
        "sau trên hơn hôm nay",
        "sw": "na ya wa kwa ni za katika la kuwa hii cha vya pia kama lakini au hivyo sana yake wake "
        "wao sisi mimi wewe yeye ili baada kabla kutoka hadi tu bila kila zaidi moja watu mtu hata "
        "nini je ndiyo hapana sasa leo vizuri kuhusu ambao ambayo ambapo yao zao huu hilo",
        "fi": "ja on ei se että oli ovat hän me he minä sinä te tämä kuin mutta tai niin myös ole "
        "olla joka jotka mitä kun jos vain sitä siitä ollut hyvin paljon nyt vielä sekä kanssa "
        "mukaan koska jo yli sen sitten voi tässä siinä kaikki mikä tänään",
        "tr": "ve bir bu da de için ile çok ne o ama gibi daha en var yok olarak olan ben sen biz siz "
        "onlar şu her değil kadar sonra önce mi mı mu mü ki diye veya ya ancak göre bile şey "
        "nasıl neden bugün",
        "id": "yang dan di ini itu dengan untuk dari dalam tidak akan pada juga ke ada saya kami kita "
        "mereka anda adalah atau karena oleh sebagai bisa sudah lebih telah dapat para hanya "
        "seperti tersebut banyak kepada bahwa namun jika sangat hari",
        "sv": "och i att det som en på är av för med till den har de inte om ett var jag du han hon vi "
        "ni men så från eller kan vid när också mycket detta denna dessa efter under sig sin sitt "
        "sina skulle finns idag",
        "ro": "și în de la cu pe a este că din o un nu se care mai pentru sunt sau ca ce al ale lui ei "
        "acest această fost dar foarte prin despre după fi am ai au eu tu el ea noi voi ele astăzi",
        "cs": "a v se na je že to s z do o k i jako ale po pro by jsou jsem není ve za od tak už jen "
        "jeho její jejich který která které také nebo při podle když může bylo byl být velmi dnes",
    },
    "cyrillic": {
        "ru": "и в не на я что с он как это по но а к у из за то же от так для все она вы мы они бы "
        "или был была были его ее её их мне уже если только когда очень есть при также этот эта "
        "эти который которые сегодня",
        "uk": "і в не на що з як це по але а до у за та й для від він вона ми ви вони був була були "
        "його її їх мені вже якщо тільки коли дуже є при також цей ця ці який які або ще про так "
        "сьогодні",
        "bg": "и в не на да че се с за от по е са като това но а към при или беше бяха той тя ние вие "
        "те аз ти един една едно му им ще със във също много само когато ако който която които "
        "тази този тези там тук най днес",
    },
    "arabic": {
        "ar": "في من على إلى أن عن هذا هذه التي الذي ما لا مع كان قد كل بين ذلك أو ثم هو هي عند بعد "
        "قبل لم لن إن حتى أي كما أيضا هناك الذين",
        "fa": "و در به از که این را با است برای آن یک تا هم می شود بود کرد های ها شده نیز ما شما او "
        "آنها من خود اما یا هر بر دارد باید نمی هست چه",
        "ur": "کے کی میں ہے اور سے کو نے یہ ہیں کا پر ایک تھا تھی بھی جو وہ کہ ہو گیا کر کیا لیے ان "
        "اس آپ ہم نہیں ساتھ بہت",
    },
    "devanagari": {
        "hi": "है के में की और से का को हैं यह एक पर भी नहीं था लिए कि ने तो हो इस कर गया रहा वह "
        "जो किया थे हम आप अपने हमारे मैं मेरा मेरी उनके उन्होंने साथ रहे जा करते होता होती सकते "
        "बहुत कुछ या",
        "mr": "आहे आणि या हे ते व की मध्ये आहेत होते केले नाही पण त्या तर एक म्हणून करण्यासाठी ला "
        "त्याच्या होता झाले आपण मी तुम्ही असे आम्ही आहोत आमच्या माझा माझी माझे त्यांनी केला केली "
        "करत होती असते असतो आपल्या सर्व काही किंवा म्हणजे",
        "ne": "छ र को मा हो पनि छन् गर्न थियो यो त्यो भएको गरेको लागि हुन्छ एक तथा भने छैन हुने "
        "गरी उनी हामी तपाईं मेरो तिमी गर्छ गर्छन् हुन् थिए सँग बाट लाई गरेर धेरै केही अनि जस्तै "
        "भन्ने",
    },
}

# Distinctive letters per language (lower case).
_LETTER_HINTS: dict[str, str] = {
    "ñ¿¡": "es", "ãõ": "pt", "ß": "de", "œ": "fr", "ąęłńśźżć": "pl", "ğışİ": "tr",
    "ăâîșțşţ": "ro", "ěřůčšžý": "cs", "å": "sv", "đơư": "vi",
    "ळ": "mr", "ыэё": "ru", "іїєґ": "uk", "ъ": "bg",
    "ةيكىأإ": "ar", "پچژگ": "fa", "ٹڈڑںےھہۓ": "ur",
}  # fmt: skip
_SHARED_LETTER_HINTS: dict[str, tuple[str, ...]] = {
    "ç": ("fr", "pt", "tr"), "ä": ("de", "fi", "sv"), "ö": ("de", "fi", "sv", "tr"),
    "ü": ("de", "tr"), "ó": ("es", "pl", "pt", "cs"), "é": ("fr", "es", "pt", "it", "cs"),
    "è": ("fr", "it"), "à": ("fr", "it", "pt"), "ê": ("fr", "pt", "vi"), "ù": ("fr", "it"),
    "í": ("es", "pt", "cs"), "ú": ("es", "pt", "cs"), "á": ("es", "pt", "cs"),
    "ë": ("fr", "nl"), "ï": ("fr", "nl"), "û": ("fr",), "ô": ("fr", "pt", "vi"),
    "ی": ("fa", "ur"), "ک": ("fa", "ur"),
}  # fmt: skip
_LETTER_WEIGHT = 0.5

# Fragments inside words: French/Italian elision ("l'", "qu'"), Marathi's fused
# genitive "च्या" and Nepali's plural "हरू". (script, pattern, languages)
_FRAGMENT_HINTS: tuple[tuple[str, re.Pattern[str], tuple[str, ...]], ...] = (
    ("latin", re.compile(r"\b(?:j|qu|n|c|s)['’][^\W\d_]"), ("fr",)),
    ("latin", re.compile(r"\b(?:l|d|dell|all|un)['’][^\W\d_]"), ("fr", "it")),
    ("devanagari", re.compile("च्या"), ("mr",)),
    ("devanagari", re.compile("हरू"), ("ne",)),
)


def _build_weights() -> dict[str, dict[str, dict[str, float]]]:
    weights: dict[str, dict[str, dict[str, float]]] = {}
    for script, languages in _FUNCTION_WORDS.items():
        owners: dict[str, set[str]] = {}
        for lang, text in languages.items():
            for word in text.split():
                owners.setdefault(word, set()).add(lang)
        weights[script] = {w: {lang: 1.0 / len(langs) for lang in langs} for w, langs in owners.items()}
    return weights


_WORD_WEIGHTS = _build_weights()
_LETTER_WEIGHTS: dict[str, dict[str, float]] = {}
for _letters, _lang in _LETTER_HINTS.items():
    for _ch in _letters:
        _LETTER_WEIGHTS[_ch] = {_lang: _LETTER_WEIGHT}
for _ch, _langs in _SHARED_LETTER_HINTS.items():
    _LETTER_WEIGHTS[_ch] = {lang: _LETTER_WEIGHT / len(_langs) for lang in _langs}

LANGUAGE_SCRIPTS: dict[str, str] = {
    **{lang: script for script, langs in _FUNCTION_WORDS.items() for lang in langs},
    **{lang: script for script, lang in _SCRIPT_LANGUAGE.items()},
    "ja": "cjk",
    "zh": "cjk",
}
SUPPORTED_LANGUAGES: frozenset[str] = frozenset(LANGUAGE_SCRIPTS)

_NON_ASCII_RE = re.compile(r"[^\x00-\x7f]")
_ASCII_NON_LETTERS = bytes(b for b in range(128) if not chr(b).isalpha())
# Tokens for function-word lookup: runs of anything but whitespace, digits and punctuation
# (so combining vowel signs stay inside Devanagari/Arabic words).
_TOKEN_RE = re.compile(
    "[^\\s\\d!-/:-@\\[-`{-~\u00a0-\u00bf\u2000-\u206f\u3000-\u303f\u060c\u061b\u061f\u066a-\u066d"
    "\u06d4\u0964\u0965\uff01-\uff0f\uff1a-\uff20]+"
)


@lru_cache(maxsize=8192)
def _script_of(ch: str) -> str | None:
    code = ord(ch)
    for first, last, script in _SCRIPT_RANGES:
        if first <= code <= last:
            return script
    return None


@dataclass(frozen=True)
class LanguageGuess:
    """The outcome of `identify`.

    ``script`` is the dominant writing system (None: the text has no letters).
    ``language`` is an ISO 639-1 code, or None when the script is shared by
    several languages and none of their function words occur.
    """

    language: str | None
    script: str | None


def identify(text: str) -> LanguageGuess:
    """Identify the language of ``text`` (see the module docstring)."""
    script_counts: Counter[str] = Counter()
    non_ascii = Counter(_NON_ASCII_RE.findall(text)) if not text.isascii() else Counter()
    for ch, n in non_ascii.items():
        script = _script_of(ch)
        if script is not None:
            script_counts["cjk" if script in ("han", "kana") else script] += n
            if script == "kana":
                script_counts["kana"] += n
    # bytes.translate with a delete table counts ASCII letters without a Python-level loop.
    ascii_letters = len(text.encode("ascii", "ignore").translate(None, _ASCII_NON_LETTERS))
    if ascii_letters:
        script_counts["latin"] += ascii_letters
    script_counts_no_kana = {k: v for k, v in script_counts.items() if k != "kana"}
    if not script_counts_no_kana:
        return LanguageGuess(None, None)
    script = max(script_counts_no_kana, key=script_counts_no_kana.__getitem__)
    if script == "cjk":
        kana = script_counts["kana"]
        return LanguageGuess("ja" if kana * 20 >= script_counts["cjk"] else "zh", script)
    if script in _SCRIPT_LANGUAGE:
        return LanguageGuess(_SCRIPT_LANGUAGE[script], script)
    if script not in _WORD_WEIGHTS:
        return LanguageGuess(None, script)
    return LanguageGuess(_best_in_script(text, script, non_ascii), script)


def _best_in_script(text: str, script: str, non_ascii: Counter[str]) -> str | None:
    weights = _WORD_WEIGHTS[script]
    scores: dict[str, float] = {}
    lowered = text.lower()
    tokens = Counter(_TOKEN_RE.findall(lowered))
    for token in tokens.keys() & weights.keys():
        n = tokens[token]
        for lang, w in weights[token].items():
            scores[lang] = scores.get(lang, 0.0) + w * n
    for hint_script, pattern, languages in _FRAGMENT_HINTS:
        if hint_script == script:
            n = len(pattern.findall(lowered))
            if n:
                for lang in languages:
                    scores[lang] = scores.get(lang, 0.0) + n / len(languages)
    for ch, n in non_ascii.items():
        hint = _LETTER_WEIGHTS.get(ch.lower())
        if hint:
            for lang, w in hint.items():
                if LANGUAGE_SCRIPTS.get(lang) == script:
                    scores[lang] = scores.get(lang, 0.0) + w * n
    if not scores:
        return None
    return max(scores, key=scores.__getitem__)


def detect_language(text: str) -> str | None:
    """The ISO 639-1 code of ``text``'s language, or None when it cannot be told."""
    return identify(text).language
