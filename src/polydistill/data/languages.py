"""Language codes and the paper's named partitions (Wibowo et al. 2024, ACL Table 11), plus resolving a user's request.

``seen`` is every language with a train split that is not ``unseen``; ``all`` is every language
with a train split (Wibowo et al. 2024, ACL Table 11: "universal-ner data does not include partition
that does not have training set"). Test-only UNER treebanks are reachable by code or by the
``test-only`` partition.
"""

from __future__ import annotations

from collections.abc import Sequence

from polydistill.errors import PolydistillError

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
    """Turn ``"all" | "seen" | "unseen" | "english" | "en-US,de-DE" | "en,swa" | [codes]`` into canonical codes.

    Codes are matched case-insensitively ('-' and '_' interchangeable); a code that is not the dataset's
    may be an ISO 639-1 / 639-2 / 639-3 language code (``en``, ``de``, ``sw``, ``swa``, ``deu``), which
    stands for the dataset's one code of that language (MASSIVE ``sw`` → sw-KE, tsm ``de`` → german,
    universal-ner ``da`` → da_ddt); one that names several (MASSIVE ``zh``: zh-CN, zh-TW; universal-ner
    ``en``: en_ewt, en_pud) is refused with the candidates, as is an unknown code. The result keeps the
    dataset's canonical order and has no duplicates.
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
        elif candidates := iso_matches(item, valid):
            if len(candidates) > 1:
                raise PolydistillError(
                    f"'{item}' is ambiguous for {dataset}: it could be {', '.join(candidates[:-1])} or "
                    f"{candidates[-1]}; pass the one you mean (several are comma-separated)."
                )
            chosen.add(candidates[0])
        else:
            raise PolydistillError(
                f"Unknown language '{item}' for {dataset}; valid partitions: {', '.join(named)}; "
                f"valid codes: {' '.join(valid)} (or their ISO 639 language codes)."
            )
    return [code for code in valid if code in chosen]


def _iso_key(code: str) -> str | None:
    """One spelling per language of an ISO 639 code (``deu``, ``ger`` → de; ``swa`` → sw; ``tl`` → fil)."""
    import langcodes

    try:
        language = langcodes.Language.get(code).language
    except (langcodes.LanguageTagError, ValueError):
        return None
    return language if language and language not in ("und", "mul", "zxx", "mis") else None


def iso_matches(item: str, valid: Sequence[str]) -> list[str]:
    """The dataset codes in ``valid`` whose language is the bare ISO 639 code ``item`` (2 or 3 letters, no
    region or script: ``pt-BR`` never stands for pt-PT), in canonical order."""
    item = item.strip()
    if not (2 <= len(item) <= 3 and item.isascii() and item.isalpha()):
        return []
    key = _iso_key(item.lower())
    if key is None:
        return []
    return [code for code in valid if (iso := iso_language(code)) is not None and _iso_key(iso) == key]


_TSM_ISO = {"arabic": "ar", "english": "en", "french": "fr", "german": "de", "hindi": "hi", "italian": "it",
            "portuguese": "pt", "spanish": "es"}


def iso_language(code: str) -> str | None:
    """The ISO 639 code of a dataset language code (``de-DE`` → de, ``zh_gsd`` → zh, ``german`` → de),
    or None when the code names no language (``und``)."""
    if code.lower() in _TSM_ISO:
        return _TSM_ISO[code.lower()]
    head = code.replace("_", "-").split("-")[0].lower()
    return head if 2 <= len(head) <= 3 and head.isalpha() and head != "und" else None
