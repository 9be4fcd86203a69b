"""MASSIVE 1.1 intent classification (FitzGerald et al. 2023; CC BY 4.0).

Local layout: ``<folder>/data/<locale>.jsonl.gz`` (this machine) or ``<locale>.jsonl`` (the official
release), one record per utterance with ``partition`` in train/dev/test. The label index is the
sorted list of the 60 intent names, identical for every locale.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from polydistill.data.base import DatasetAdapter, LoadOptions, SplitColumns, label_ids, names_of
from polydistill.data.languages import MASSIVE_LOCALES, MASSIVE_UNSEEN, partitions
from polydistill.errors import PolydistillError

HUB_ID = "AmazonScience/massive"
INTENTS = tuple(sorted(
    "alarm_query alarm_remove alarm_set audio_volume_down audio_volume_mute audio_volume_other "
    "audio_volume_up calendar_query calendar_remove calendar_set cooking_query cooking_recipe "
    "datetime_convert datetime_query email_addcontact email_query email_querycontact email_sendemail "
    "general_greet general_joke general_quirky iot_cleaning iot_coffee iot_hue_lightchange "
    "iot_hue_lightdim iot_hue_lightoff iot_hue_lighton iot_hue_lightup iot_wemo_off iot_wemo_on "
    "lists_createoradd lists_query lists_remove music_dislikeness music_likeness music_query "
    "music_settings news_query play_audiobook play_game play_music play_podcasts play_radio "
    "qa_currency qa_definition qa_factoid qa_maths qa_stock recommendation_events "
    "recommendation_locations recommendation_movies social_post social_query takeaway_order "
    "takeaway_query transport_query transport_taxi transport_ticket transport_traffic weather_query".split()
))
_PARTITION = {"train": "train", "dev": "validation", "validation": "validation", "test": "test"}
_SUFFIXES = (".jsonl.gz", ".jsonl")


def _locale_files(folder: Path) -> dict[str, Path]:
    files = {}
    for suffix in reversed(_SUFFIXES):  # .jsonl.gz wins when both exist
        for path in folder.glob(f"*{suffix}"):
            files[path.name[: -len(suffix)]] = path
    return files


def find_folder(root: Path) -> Path | None:
    for candidate in (root / "massive" / "data", root / "massive", root / "data", root):
        if candidate.is_dir() and set(_locale_files(candidate)) & set(MASSIVE_LOCALES):
            return candidate
    return None


def local_languages(folder: Path) -> list[str]:
    present = _locale_files(folder)
    return [loc for loc in MASSIVE_LOCALES if loc in present]


def read_records(folder: Path, locale: str, fields: tuple[str, ...]) -> dict[str, list[tuple]]:
    """One locale's records as ``fields`` tuples, per canonical split (shared with ``massive_slots``)."""
    path = _locale_files(folder)[locale]
    opener = gzip.open if path.name.endswith(".gz") else open
    rows: dict[str, list[tuple]] = {"train": [], "validation": [], "test": []}
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            for lineno, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    rows[_PARTITION[record["partition"]]].append(tuple(record[name] for name in fields))
                except (json.JSONDecodeError, KeyError, TypeError) as err:
                    raise PolydistillError(
                        f"{path} line {lineno} is not a MASSIVE record ({type(err).__name__}: {err}); "
                        "the file is corrupt: re-download it."
                    ) from None
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise PolydistillError(f"Cannot read {path} ({err}); the file is corrupt: re-download it.") from None
    return rows


def read_local(folder: Path, locale: str, options: LoadOptions) -> SplitColumns:
    where = str(_locale_files(folder)[locale])
    out: SplitColumns = {}
    for split, rows in read_records(folder, locale, ("utt", "intent")).items():
        out[split] = {"text": [utt for utt, _ in rows], "label": label_ids([i for _, i in rows], INTENTS, where)}
    return out


def from_hub_split(dataset, where: str) -> dict[str, list]:
    """Map one split of ``AmazonScience/massive`` (utt, intent as ClassLabel or str) to our columns."""
    return {"text": list(dataset["utt"]), "label": label_ids(names_of(dataset, "intent"), INTENTS, where)}


def read_hub(locale: str, options: LoadOptions) -> SplitColumns:
    from datasets import load_dataset

    dd = load_dataset(HUB_ID, locale)
    return {split: from_hub_split(dd[split], f"{HUB_ID}:{locale}:{split}") for split in ("train", "validation", "test")
            if split in dd}


ADAPTER = DatasetAdapter(
    name="massive", task="sequence", hub_id=HUB_ID, label_names=INTENTS, valid=tuple(MASSIVE_LOCALES),
    named=partitions(MASSIVE_LOCALES, MASSIVE_UNSEEN, ["en-US"]), test_only=(),
    find_folder=find_folder, local_languages=local_languages, read_local=read_local, read_hub=read_hub,
)
