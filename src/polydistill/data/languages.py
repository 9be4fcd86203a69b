"""Language codes and the paper's named partitions (000 Table 11), plus resolving a user's request.

``seen`` is every language with a train split that is not ``unseen``; ``all`` is every language
with a train split (000 Table 11: "universal-ner data does not include partition that does not have
training set"). Test-only UNER treebanks are reachable by code or by the ``test-only`` partition.
"""

from __future__ import annotations

from collections.abc import Sequence

from polydistill.errors import PolydistillError

PARTITION_NAMES = ("all", "seen", "unseen", "english")

MASSIVE_LOCALES = (
    "af-ZA am-ET ar-SA az-AZ bn-BD ca-ES cy-GB da-DK de-DE el-GR en-US es-ES fa-IR fi-FI fr-FR he-IL hi-IN "
    "hu-HU hy-AM id-ID is-IS it-IT ja-JP jv-ID ka-GE km-KH kn-IN ko-KR lv-LV ml-IN mn-MN ms-MY my-MM nb-NO "
    "nl-NL pl-PL pt-PT ro-RO ru-RU sl-SL sq-AL sv-SE sw-KE ta-IN te-IN th-TH tl-PH tr-TR ur-PK vi-VN zh-CN "
    "zh-TW"
).split()
MASSIVE_UNSEEN = (
    "am-ET cy-GB af-ZA km-KH sw-KE mn-MN tl-PH kn-IN te-IN sq-AL ur-PK az-AZ ml-IN ms-MY ca-ES sl-SL sv-SE "
    "ta-IN nl-NL it-IT he-IL pl-PL da-DK nb-NO ro-RO th-TH fa-IR"
).split()

TSM_LANGUAGES = ("arabic", "english", "french", "german", "hindi", "italian", "portuguese", "spanish")
TSM_UNSEEN = ("arabic", "french", "hindi", "portuguese")

# UNER v1 treebanks with a train split, and the ones that only have a test file.
UNER_TRAIN_TREEBANKS = (
    "zh_gsd", "zh_gsdsimp", "hr_set", "da_ddt", "en_ewt", "pt_bosque", "sr_set", "sk_snk", "sv_talbanken",
)
UNER_TEST_ONLY = ("ceb_gja", "tl_trg", "tl_ugnayan", "de_pud", "en_pud", "pt_pud", "ru_pud", "sv_pud", "zh_pud")
UNER_UNSEEN = ("da_ddt", "pt_bosque", "sr_set", "sk_snk", "sv_talbanken")


def partitions(trainable: Sequence[str], unseen: Sequence[str], english: Sequence[str],
               extra: dict[str, Sequence[str]] | None = None) -> dict[str, list[str]]:
    """The named partitions of one dataset; ``seen`` = trainable minus unseen, in canonical order."""
    parts = {
        "all": list(trainable),
        "seen": [code for code in trainable if code not in set(unseen)],
        "unseen": [code for code in trainable if code in set(unseen)],
        "english": list(english),
    }
    parts.update({name: list(codes) for name, codes in (extra or {}).items()})
    return parts


def _key(code: str) -> str:
    # da-ddt (the paper's spelling) == da_ddt; EN-us == en-US
    return code.strip().lower().replace("_", "-")


def resolve_languages(request: str | Sequence[str] | None, valid: Sequence[str],
                      named: dict[str, list[str]], dataset: str) -> list[str]:
    """Turn ``"all" | "seen" | "unseen" | "english" | "en-US,de-DE" | [codes]`` into canonical codes.

    Codes are matched case-insensitively ('-' and '_' interchangeable); the result keeps the
    dataset's canonical order and has no duplicates. Unknown codes raise with the valid list.
    """
    if request is None:
        request = "all"
    items = [part.strip() for part in request.split(",")] if isinstance(request, str) else list(request)
    items = [item for item in items if item]
    if not items:
        raise PolydistillError(f"No languages given for {dataset}; pass a partition ({', '.join(named)}) or codes.")
    canonical = {_key(code): code for code in valid}
    chosen: set[str] = set()
    for item in items:
        if item.lower() in named:
            chosen.update(named[item.lower()])
        elif _key(item) in canonical:
            chosen.add(canonical[_key(item)])
        else:
            raise PolydistillError(
                f"Unknown language '{item}' for {dataset}; valid partitions: {', '.join(named)}; "
                f"valid codes: {' '.join(valid)}."
            )
    return [code for code in valid if code in chosen]


_TSM_ISO = {"arabic": "ar", "english": "en", "french": "fr", "german": "de", "hindi": "hi", "italian": "it",
            "portuguese": "pt", "spanish": "es"}


def iso_language(code: str) -> str | None:
    """The ISO 639 code of a dataset language code (``de-DE`` → de, ``zh_gsd`` → zh, ``german`` → de),
    or None when the code names no language (``und``)."""
    if code.lower() in _TSM_ISO:
        return _TSM_ISO[code.lower()]
    head = code.replace("_", "-").split("-")[0].lower()
    return head if 2 <= len(head) <= 3 and head.isalpha() and head != "und" else None
