"""MASSIVE 1.1 slot filling (FitzGerald et al. 2023; CC BY 4.0): a token task in the 52 locales of ``massive``.

Each record's ``annot_utt`` marks slot spans as ``[slot : value]``. The words are the annotation split
on whitespace with the brackets removed; each word of a span is tagged ``B-slot`` (first) or ``I-slot``
and every other word ``O``: the MASSIVE paper's own recipe, over its 55 slot types (111 tags).

Japanese and Chinese (ja-JP, zh-CN, zh-TW) are written without spaces; their annotation puts a space on
each side of a bracket, so their "words" are the runs of text between slot boundaries. This follows the
official recipe (so scores compare with published ones) but it hands the model the slot boundaries: a
ja/zh score here overstates what the model does on unspaced text. Prefer the other locales for claims.
Same locales, partitions and language groups as ``massive``; scored with seqeval entity F1.
"""

from __future__ import annotations

import re
from pathlib import Path

from polydistill.data import massive
from polydistill.data.base import DatasetAdapter, LoadOptions, SplitColumns, label_ids
from polydistill.errors import PolydistillError

SLOT_TYPES = tuple(sorted(
    "alarm_type app_name artist_name audiobook_author audiobook_name business_name business_type change_amount "
    "coffee_type color_type cooking_type currency_name date definition_word device_type drink_type email_address "
    "email_folder event_name food_type game_name game_type general_frequency house_place ingredient joke_type "
    "list_name meal_type media_type movie_name movie_type music_album music_descriptor music_genre news_topic "
    "order_type person personal_info place_name player_setting playlist_name podcast_descriptor podcast_name "
    "radio_name relation song_name sport_type time time_zone timeofday transport_agency transport_descriptor "
    "transport_name transport_type weather_descriptor".split()
))
LABELS = ("O",) + tuple(f"{prefix}-{slot}" for slot in SLOT_TYPES for prefix in ("B", "I"))
_SPAN = re.compile(r"\[([^\[\]:]+?) : ([^\[\]]*?)\]")


def parse_annotation(annotation: str, where: str = "annot_utt") -> tuple[list[str], list[str]]:
    """``"wake me at [time : five am]"`` → (["wake", "me", "at", "five", "am"], ["O", "O", "O", "B-time", "I-time"])."""
    words: list[str] = []
    tags: list[str] = []

    def outside(text: str) -> None:
        if "[" in text or "]" in text:
            raise PolydistillError(f"{where}: {annotation!r} has an unbalanced or malformed [slot : value] bracket; "
                                   "the file is corrupt: re-download it.")
        pieces = text.split()
        words.extend(pieces)
        tags.extend(["O"] * len(pieces))

    start = 0
    for match in _SPAN.finditer(annotation):
        outside(annotation[start:match.start()])
        slot, value = match.group(1).strip(), match.group(2).split()
        words.extend(value)
        tags.extend([f"B-{slot}"] + [f"I-{slot}"] * (len(value) - 1) if value else [])
        start = match.end()
    outside(annotation[start:])
    return words, tags


def _columns(annotations: list[str], where: str) -> dict[str, list]:
    tokens, tags = [], []
    for annotation in annotations:
        words, names = parse_annotation(annotation, where)
        tokens.append(words)
        tags.append(label_ids(names, LABELS, where))
    return {"tokens": tokens, "tags": tags}


def read_local(folder: Path, locale: str, options: LoadOptions) -> SplitColumns:
    where = f"MASSIVE {locale}"
    return {split: _columns([row[0] for row in rows], f"{where} {split}")
            for split, rows in massive.read_records(folder, locale, ("annot_utt",)).items()}


def read_hub(locale: str, options: LoadOptions) -> SplitColumns:
    from datasets import load_dataset

    dd = load_dataset(massive.HUB_ID, locale)
    return {split: _columns(list(dd[split]["annot_utt"]), f"{massive.HUB_ID}:{locale}:{split}")
            for split in ("train", "validation", "test") if split in dd}


ADAPTER = DatasetAdapter(
    name="massive-slots", task="token", hub_id=massive.HUB_ID, label_names=LABELS, valid=massive.ADAPTER.valid,
    named=massive.ADAPTER.named, test_only=(),
    find_folder=massive.find_folder, local_languages=massive.local_languages, read_local=read_local,
    read_hub=read_hub,
)
