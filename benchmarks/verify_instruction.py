"""Throughput of the "ifeval" verifier on synthetic instruction-following samples.

Builds ``n`` samples (default 5,000) with 1-3 IFEval instructions each, drawn
from all 25 ids, and responses of a few hundred words (English mostly, some
Spanish, French, German, Russian and Hindi). About a third of the instructions
are deliberately not followed, so the loose-mode variants get exercised too.
Only verification is timed, not sample construction.

    .venv/bin/python benchmarks/verify_instruction.py [--n 5000] [--seed 0]

``run(n)`` returns the figures as a dict, for other benchmark scripts.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

ENGLISH = [
    "The city council approved a new plan to expand the public library network over the next five years.",
    "Many residents said they wanted longer opening hours, quieter study rooms and better access to computers.",
    "According to the report, visits to the central branch rose by almost twenty percent after the renovation.",
    "Dr. Alvarez, who led the survey, noted that younger readers now borrow e-books more often than paper ones.",
    "However, the budget will only cover part of the cost, so the council is looking for private partners.",
    "Critics argue that the money would be better spent on schools, roads and affordable housing.",
    "Supporters reply that libraries are one of the few free public spaces left in most neighbourhoods.",
    "The first new branch is expected to open in the spring, close to the main train station.",
    "It will include a small cafe, a workshop with 3D printers and a room for community meetings.",
    "Local artists have been invited to design murals for the entrance and the children's area.",
    "In the meantime, the mobile library bus will visit villages that have no branch of their own.",
    "Volunteers will help older visitors learn how to use tablets, search the catalogue and read the news online.",
    "The plan also sets aside funds for translating signs and guides into the five most common local languages.",
    "Officials hope the project will attract about 250,000 additional visitors per year by 2030.",
    "A public consultation will run until the end of the month, and anyone can submit comments online.",
    "Several schools have already asked whether their classes could use the new workshop during the day.",
    "The architects say the building will use solar panels and rainwater to keep running costs low.",
    "Parking was a major concern in earlier meetings, so the design includes a secure area for bicycles.",
    "Some shop owners nearby expect more customers once the branch opens, while others fear more traffic.",
    "The mayor described the project as an investment in curiosity, learning and a sense of belonging.",
    "Is it worth the cost? Most people who answered the survey seem to think so.",
    "Still, the final decision on the second and third branches will be taken only after next year's review.",
]
OTHER_LANGUAGES = {
    "es": [
        "El ayuntamiento aprobó un nuevo plan para ampliar la red de bibliotecas públicas.",
        "Muchos vecinos pidieron horarios más largos y salas de estudio más tranquilas.",
        "Según el informe, las visitas a la sede central aumentaron casi un veinte por ciento.",
        "Sin embargo, el presupuesto solo cubrirá una parte del coste del proyecto.",
        "La primera sede nueva abrirá en primavera, cerca de la estación de tren.",
        "Los voluntarios ayudarán a las personas mayores a usar las tabletas y el catálogo.",
    ],
    "fr": [
        "Le conseil municipal a approuvé un nouveau plan pour agrandir le réseau des bibliothèques.",
        "De nombreux habitants ont demandé des horaires plus longs et des salles plus calmes.",
        "Selon le rapport, les visites de la bibliothèque centrale ont augmenté de près de vingt pour cent.",
        "Cependant, le budget ne couvrira qu'une partie du coût, et la ville cherche des partenaires.",
        "La première nouvelle bibliothèque ouvrira au printemps, près de la gare.",
        "Des bénévoles aideront les personnes âgées à utiliser les tablettes et le catalogue.",
    ],
    "de": [
        "Der Stadtrat hat einen neuen Plan zum Ausbau der öffentlichen Bibliotheken beschlossen.",
        "Viele Bewohner wünschten sich längere Öffnungszeiten und ruhigere Lesesäle.",
        "Laut dem Bericht stiegen die Besuche in der Zentralbibliothek um fast zwanzig Prozent.",
        "Allerdings deckt das Budget nur einen Teil der Kosten, deshalb sucht die Stadt Partner.",
        "Die erste neue Filiale wird im Frühling in der Nähe des Bahnhofs eröffnet.",
        "Freiwillige helfen älteren Besuchern bei der Nutzung von Tablets und dem Katalog.",
    ],
    "ru": [
        "Городской совет утвердил новый план по расширению сети публичных библиотек.",
        "Многие жители просили более длинные часы работы и тихие читальные залы.",
        "Согласно отчёту, число посещений центральной библиотеки выросло почти на двадцать процентов.",
        "Однако бюджет покроет только часть расходов, поэтому город ищет партнёров.",
        "Первый новый филиал откроется весной рядом с железнодорожным вокзалом.",
        "Волонтёры помогут пожилым посетителям пользоваться планшетами и каталогом.",
    ],
    "hi": [
        "नगर परिषद ने सार्वजनिक पुस्तकालयों के नेटवर्क को बढ़ाने की नई योजना को मंज़ूरी दी है।",
        "कई निवासियों ने लंबे समय तक खुलने और शांत अध्ययन कक्षों की माँग की।",
        "रिपोर्ट के अनुसार केंद्रीय शाखा में आने वालों की संख्या लगभग बीस प्रतिशत बढ़ी है।",
        "लेकिन बजट से केवल कुछ खर्च ही पूरा होगा, इसलिए परिषद साझेदारों की तलाश में है।",
        "पहली नई शाखा वसंत में रेलवे स्टेशन के पास खुलेगी।",
        "स्वयंसेवक बुज़ुर्ग लोगों को टैबलेट और सूची का उपयोग करना सिखाएँगे।",
    ],
}
KEYWORDS = ["library", "budget", "council", "volunteers", "branch", "survey", "workshop", "station"]
ABSENT_WORDS = ["dragon", "volcano", "submarine", "pyramid", "saxophone"]
END_PHRASES = ["Any other questions?", "Is there anything else I can help with?"]

# Instructions that rewrite the whole response; at most one per sample.
_WHOLE_RESPONSE = {
    "detectable_format:json_format",
    "combination:two_responses",
    "startend:quotation",
    "combination:repeat_prompt",
    "detectable_format:constrained_response",
    "startend:end_checker",
}
_LAYOUT = {
    "length_constraints:number_paragraphs",
    "length_constraints:nth_paragraph_first_word",
    "detectable_format:multiple_sections",
}
_CASE = {
    "change_case:english_capital",
    "change_case:english_lowercase",
    "change_case:capital_word_frequency",
    "language:response_language",
}


def _compatible(chosen: list[str], candidate: str) -> bool:
    if candidate in chosen:
        return False
    return all(
        not (candidate in group and any(c in group for c in chosen))
        for group in (_WHOLE_RESPONSE, _LAYOUT, _CASE)
    )


def _threshold(rng: random.Random, count: int, follow: bool) -> tuple[str, int]:
    """A relation and threshold that ``count`` satisfies (follow) or violates."""
    relation = rng.choice(["less than", "at least"])
    if relation == "less than":
        return relation, count + rng.randint(1, 5) if follow else max(count - rng.randint(0, 3), 0)
    return relation, max(count - rng.randint(0, 5), 0) if follow else count + rng.randint(1, 5)


def build_sample(rng: random.Random) -> dict[str, Any]:
    """One synthetic sample: prompt, response and IFEval reference."""
    from curation.ifeval import INSTRUCTION_IDS, count_sentences, count_words

    chosen: list[str] = []
    for _ in range(rng.choice([1, 1, 2, 2, 2, 3, 3])):
        for _attempt in range(10):
            candidate = rng.choice(INSTRUCTION_IDS)
            if _compatible(chosen, candidate):
                chosen.append(candidate)
                break
    follow = {i: rng.random() < 0.65 for i in chosen}
    kwargs: dict[str, dict[str, Any]] = {i: {} for i in chosen}

    language = "en"
    if "language:response_language" in chosen:
        target = rng.choice(sorted(OTHER_LANGUAGES))
        kwargs["language:response_language"] = {"language": target}
        language = target if follow["language:response_language"] else "en"
    pool = ENGLISH if language == "en" else OTHER_LANGUAGES[language]
    paragraphs = [
        " ".join(rng.sample(pool, min(len(pool), rng.randint(3, 6)))) for _ in range(rng.randint(3, 5))
    ]

    def insert(word: str) -> None:
        index = rng.randrange(len(paragraphs))
        paragraphs[index] = f"{paragraphs[index]} The {word} matters here."

    if "keywords:existence" in chosen:
        words = rng.sample(ABSENT_WORDS, 2)
        kwargs["keywords:existence"] = {"keywords": words}
        for w in words if follow["keywords:existence"] else words[:1]:
            insert(w)
    if "detectable_content:number_placeholders" in chosen:
        n = rng.randint(1, 4)
        kwargs["detectable_content:number_placeholders"] = {"num_placeholders": n}
        slots = n if follow["detectable_content:number_placeholders"] else n - 1
        paragraphs[0] += "".join(f" Contact [name{i}] for details." for i in range(slots))
    if "detectable_format:number_highlighted_sections" in chosen:
        n = rng.randint(1, 3)
        kwargs["detectable_format:number_highlighted_sections"] = {"num_highlights": n}
        slots = n if follow["detectable_format:number_highlighted_sections"] else n - 1
        for i in range(slots):
            paragraphs[i % len(paragraphs)] = f"*Key point {i + 1}* {paragraphs[i % len(paragraphs)]}"
    if "detectable_format:number_bullet_lists" in chosen:
        n = rng.randint(2, 5)
        kwargs["detectable_format:number_bullet_lists"] = {"num_bullets": n}
        bullets = n if follow["detectable_format:number_bullet_lists"] else n + 1
        paragraphs.insert(1, "\n".join(f"* {rng.choice(ENGLISH)}" for _ in range(bullets)))
    if "detectable_format:title" in chosen and follow["detectable_format:title"]:
        paragraphs.insert(0, "<<The Library Plan>>")
    if "change_case:capital_word_frequency" in chosen:
        paragraphs[-1] += " This is VERY IMPORTANT and TRULY URGENT."
    if "length_constraints:nth_paragraph_first_word" in chosen:
        n = len(paragraphs)
        nth = rng.randint(1, n)
        word = rng.choice(["Moreover", "Finally", "Meanwhile"])
        kwargs["length_constraints:nth_paragraph_first_word"] = {
            "num_paragraphs": n,
            "nth_paragraph": nth,
            "first_word": word,
        }
        if follow["length_constraints:nth_paragraph_first_word"]:
            paragraphs[nth - 1] = f"{word}, {paragraphs[nth - 1]}"
    if "detectable_format:multiple_sections" in chosen:
        splitter = rng.choice(["Section", "SECTION"])
        count = len(paragraphs) if follow["detectable_format:multiple_sections"] else len(paragraphs) - 1
        kwargs["detectable_format:multiple_sections"] = {
            "section_spliter": splitter,
            "num_sections": len(paragraphs),
        }
        paragraphs = [f"{splitter} {i + 1}\n{p}" if i < count else p for i, p in enumerate(paragraphs)]

    separator = "\n\n"
    if "length_constraints:number_paragraphs" in chosen:
        separator = "\n\n***\n\n"
        n = len(paragraphs) if follow["length_constraints:number_paragraphs"] else len(paragraphs) + 1
        kwargs["length_constraints:number_paragraphs"] = {"num_paragraphs": n}
    response = separator.join(paragraphs)

    if "detectable_content:postscript" in chosen:
        marker = rng.choice(["P.S.", "P.P.S"])
        kwargs["detectable_content:postscript"] = {"postscript_marker": marker}
        if follow["detectable_content:postscript"]:
            response += f"\n\n{marker} Thanks for reading."
    if "punctuation:no_comma" in chosen and follow["punctuation:no_comma"]:
        response = response.replace(",", "")
    if "change_case:english_capital" in chosen:
        response = response.upper() if follow["change_case:english_capital"] else response
    if "change_case:english_lowercase" in chosen:
        response = response.lower() if follow["change_case:english_lowercase"] else response
    if (
        "detectable_format:constrained_response" in chosen
        and follow["detectable_format:constrained_response"]
    ):
        response = f"My answer is {rng.choice(['yes', 'no', 'maybe'])}.\n\n{response}"
    if "startend:end_checker" in chosen:
        phrase = rng.choice(END_PHRASES)
        kwargs["startend:end_checker"] = {"end_phrase": phrase}
        if follow["startend:end_checker"]:
            response += f" {phrase}"
    prompt = "Write a short news article about the city's plan to expand its public libraries."
    if "combination:repeat_prompt" in chosen:
        kwargs["combination:repeat_prompt"] = {"prompt_to_repeat": prompt}
        if follow["combination:repeat_prompt"]:
            response = f"{prompt}\n\n{response}"
    if "combination:two_responses" in chosen:
        second = " ".join(rng.sample(pool, 4))
        response = f"{response}\n******\n{second if follow['combination:two_responses'] else response}"
    if "startend:quotation" in chosen and follow["startend:quotation"]:
        response = f'"{response}"'
    if "detectable_format:json_format" in chosen:
        body = json.dumps({"article": response.split("\n\n")}, ensure_ascii=False, indent=2)
        response = (
            f"```json\n{body}\n```" if follow["detectable_format:json_format"] else f"Here you go:\n{body}"
        )

    # Thresholds for the counting instructions, from the final text.
    if "keywords:frequency" in chosen:
        word = rng.choice(KEYWORDS)
        count = response.lower().count(word)
        relation, n = _threshold(rng, count, follow["keywords:frequency"])
        kwargs["keywords:frequency"] = {"keyword": word, "frequency": n, "relation": relation}
    if "keywords:forbidden_words" in chosen:
        words = (
            rng.sample(ABSENT_WORDS, 2)
            if follow["keywords:forbidden_words"]
            else [rng.choice(KEYWORDS), "dragon"]
        )
        kwargs["keywords:forbidden_words"] = {"forbidden_words": words}
    if "keywords:letter_frequency" in chosen:
        letter = rng.choice("aeiourstln")
        relation, n = _threshold(rng, response.lower().count(letter), follow["keywords:letter_frequency"])
        kwargs["keywords:letter_frequency"] = {"letter": letter, "let_frequency": n, "let_relation": relation}
    if "length_constraints:number_sentences" in chosen:
        relation, n = _threshold(
            rng, count_sentences(response), follow["length_constraints:number_sentences"]
        )
        kwargs["length_constraints:number_sentences"] = {"num_sentences": n, "relation": relation}
    if "length_constraints:number_words" in chosen:
        relation, n = _threshold(rng, count_words(response), follow["length_constraints:number_words"])
        kwargs["length_constraints:number_words"] = {"num_words": n, "relation": relation}
    if "change_case:capital_word_frequency" in chosen:
        caps = sum(1 for w in response.split() if w.strip(".,!?").isupper())
        relation, n = _threshold(rng, caps, follow["change_case:capital_word_frequency"])
        kwargs["change_case:capital_word_frequency"] = {"capital_frequency": n, "capital_relation": relation}

    return {
        "prompt": prompt,
        "response": response,
        "reference": {"instruction_id_list": chosen, "kwargs": [kwargs[i] for i in chosen]},
    }


def build_samples(n: int, seed: int = 0) -> list[Any]:
    from curation.data import SampleRecord

    rng = random.Random(seed)
    samples = []
    for _ in range(n):
        s = build_sample(rng)
        samples.append(SampleRecord("instruction", s["prompt"], s["response"], s["reference"]))
    return samples


def run(n: int = 5000, seed: int = 0) -> dict[str, Any]:
    """Verify ``n`` synthetic samples; returns throughput and outcome rates."""
    from curation.ifeval import count_words
    from curation.verification.instruction import InstructionVerifier

    samples = build_samples(n, seed)
    verifier = InstructionVerifier()
    started = time.perf_counter()
    verdicts = [verifier.verify(s) for s in samples]
    seconds = time.perf_counter() - started
    judged = [v for v in verdicts if v.passed is not None]
    instructions = sum(len(s.reference["instruction_id_list"]) for s in samples)
    return {
        "benchmark": "verify_instruction",
        "samples": n,
        "instructions": instructions,
        "mean_words_per_response": round(sum(count_words(s.response) for s in samples) / n, 1),
        "seconds": round(seconds, 3),
        "samples_per_s": round(n / seconds, 1),
        "instructions_per_s": round(instructions / seconds, 1),
        "strict_pass_rate": round(sum(bool(v.passed) for v in judged) / max(len(judged), 1), 3),
        "loose_pass_rate": round(
            sum(bool(v.details.get("loose_passed")) for v in judged) / max(len(judged), 1), 3
        ),
        "cannot_judge": n - len(judged),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="number of samples (default 5000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = run(args.n, args.seed)
    print(
        f"verify_instruction: {result['samples']} samples ({result['instructions']} instructions, "
        f"~{result['mean_words_per_response']:.0f} words each) in {result['seconds']:.2f}s "
        f"-> {result['samples_per_s']:,.0f} samples/s ({result['instructions_per_s']:,.0f} instructions/s); "
        f"strict pass {result['strict_pass_rate']:.1%}, loose pass {result['loose_pass_rate']:.1%}, "
        f"cannot judge {result['cannot_judge']}"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
