"""ISO 639 language codes in --languages (issue #31): each dataset's own codes and ISO 639-1 / 639-3 codes
(``en``, ``de``, ``sw``, ``swa``) mapped per dataset, on the upstream-format fixtures of massive, tsm and
universal-ner; a code naming several of a dataset's languages is refused with the candidates."""

from __future__ import annotations

import pytest

from polydistill.cli import main
from polydistill.data import load_task_data
from polydistill.data import massive as massive_mod
from polydistill.data import tsm as tsm_mod
from polydistill.data import uner as uner_mod
from polydistill.data.languages import iso_language, resolve_languages
from polydistill.errors import PolydistillError
from test_data_load import FIX


@pytest.mark.parametrize("dataset, request_, expected", [
    ("massive", "en,sw", ["en-US", "sw-KE"]),
    ("massive", "swa,deu", ["de-DE", "sw-KE"]),  # ISO 639-3; canonical order kept
    ("massive", "CY, en-US, eng", ["cy-GB", "en-US"]),  # mixed with the dataset's codes, duplicates merged
    ("tsm", "en,fr", ["english", "french"]),
    ("tsm", "spa", ["spanish"]),
    ("universal-ner", "da,hrv", ["hr_set", "da_ddt"]),
    ("universal-ner", "de", ["de_pud"]),  # test-only, fine for evaluation
])
def test_iso_codes_load_the_datasets_languages(dataset, request_, expected):
    data = load_task_data(dataset, request_, data_root=str(FIX), purpose="evaluate")
    assert data.languages == expected
    assert sorted(set(data.splits["test"]["language"])) == sorted(expected)


@pytest.mark.parametrize("dataset, request_, candidates", [
    ("massive", "zh", "zh-CN or zh-TW"),
    ("universal-ner", "en", "en_ewt or en_pud"),
    ("universal-ner", "zho", "zh_gsd, zh_gsdsimp or zh_pud"),
])
def test_an_ambiguous_iso_code_is_refused_with_the_candidates(dataset, request_, candidates):
    with pytest.raises(PolydistillError, match=f"'{request_}' is ambiguous for {dataset}: it could be {candidates};"):
        load_task_data(dataset, request_, data_root=str(FIX), purpose="evaluate")


@pytest.mark.parametrize("dataset, request_", [("massive", "pt-BR"), ("massive", "xx"), ("tsm", "ja"),
                                               ("universal-ner", "fr")])
def test_a_code_of_no_language_of_the_dataset_is_unknown(dataset, request_):
    with pytest.raises(PolydistillError, match=f"Unknown language '{request_}' for {dataset};.*ISO 639"):
        load_task_data(dataset, request_, data_root=str(FIX), purpose="evaluate")


@pytest.mark.parametrize("adapter", [massive_mod.ADAPTER, tsm_mod.ADAPTER, uner_mod.ADAPTER],
                         ids=lambda a: a.name)
def test_the_iso_column_of_data_languages_is_accepted(adapter):
    """Every ISO code `polydistill data languages` prints resolves to its language's codes, or is refused as
    ambiguous naming them all."""
    for code in adapter.valid:
        iso = iso_language(code)
        same = [c for c in adapter.valid if iso_language(c) == iso]
        if len(same) == 1:
            assert resolve_languages(iso, adapter.valid, adapter.named, adapter.name) == [code]
        else:
            with pytest.raises(PolydistillError, match="ambiguous") as err:
                resolve_languages(iso, adapter.valid, adapter.named, adapter.name)
            assert all(c in str(err.value) for c in same)


def test_only_the_present_languages_count_when_evaluating():
    # evaluate resolves against the languages present in the split: one Chinese locale is no ambiguity
    assert resolve_languages("zh", ["en-US", "zh-TW"], {}, "massive") == ["zh-TW"]


@pytest.mark.parametrize("dataset, code, shown", [("tsm", "en", "english"), ("massive", "sw", "sw-KE"),
                                                  ("universal-ner", "da", "da_ddt")])
def test_cli_takes_iso_codes(dataset, code, shown, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "show", dataset, "-l", code, "--data-root", str(FIX)])
    out, err = capsys.readouterr()
    assert (exit_info.value.code or 0) == 0, err
    assert shown in out


def test_cli_refuses_an_ambiguous_code_in_one_sentence(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "show", "massive", "-l", "zh", "--data-root", str(FIX)])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert exit_info.value.code == 2 and len(errors) == 1 and "Traceback" not in err
    assert "zh-CN or zh-TW" in errors[0]
