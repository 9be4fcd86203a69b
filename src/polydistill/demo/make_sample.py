"""Rebuild the shipped demo sample from a local MASSIVE 1.1 copy (CC BY 4.0).

    python -m polydistill.demo.make_sample /path/to/massive/data

Selection is deterministic: for each of the intents below, the first utterance ids (sorted) of
each partition in en-US; the same ids (MASSIVE is parallel across locales) in every other locale.
Seen locales get train/dev/test, unseen locales test only (they are never trained on).
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

SEEN = ("en-US", "de-DE", "es-ES", "fr-FR")
UNSEEN = ("it-IT", "nl-NL")  # both in the paper's unseen partition (Wibowo et al. 2024, ACL Table 11)
INTENTS = ("alarm_set", "weather_query", "play_music", "takeaway_order", "iot_hue_lightoff",
           "calendar_set", "news_query", "datetime_query")
PER_INTENT = {"train": 16, "dev": 4, "test": 6}
FIELDS = ("id", "locale", "partition", "scenario", "intent", "utt")
SAMPLE_DIR = Path(__file__).parent / "sample"


def _read(folder: Path, locale: str) -> list[dict]:
    path = folder / f"{locale}.jsonl.gz"
    opener = gzip.open if path.exists() else open
    path = path if path.exists() else folder / f"{locale}.jsonl"
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def main(source: str) -> None:
    folder = Path(source)
    english = _read(folder, "en-US")
    chosen: dict[str, set[str]] = {}
    for partition, count in PER_INTENT.items():
        for intent in INTENTS:
            ids = sorted((r["id"] for r in english if r["partition"] == partition and r["intent"] == intent),
                         key=int)[:count]
            for i in ids:
                chosen[i] = {partition}
    out = SAMPLE_DIR / "massive" / "data"
    out.mkdir(parents=True, exist_ok=True)
    for locale in SEEN + UNSEEN:
        keep_partitions = set(PER_INTENT) if locale in SEEN else {"test"}
        rows = [r for r in _read(folder, locale) if r["id"] in chosen and r["partition"] in keep_partitions]
        with open(out / f"{locale}.jsonl", "w", encoding="utf-8") as handle:
            for r in sorted(rows, key=lambda r: (r["partition"], int(r["id"]))):
                handle.write(json.dumps({k: r[k] for k in FIELDS}, ensure_ascii=False) + "\n")
        print(locale, len(rows))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/massive/data")
