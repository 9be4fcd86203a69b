import pytest

from polydistill.errors import PolydistillError
from polydistill.student.layer_maps import LAYER_MAPS, explicit_length, resolve_layer_map
from polydistill.student.selection import evenly_spaced, uniform_plan


def test_paper_maps_for_12_to_6():
    # Wibowo et al. 2024, eq. 6 / TinyBERT: 1-indexed 2,4,...,12; DistilBERT / Eliquare 2n-1: 1-indexed 1,3,...,11.
    assert resolve_layer_map("alternate-last", 12, 6) == [1, 3, 5, 7, 9, 11]
    assert resolve_layer_map("alternate-first", 12, 6) == [0, 2, 4, 6, 8, 10]
    assert resolve_layer_map("first", 12, 6) == [0, 1, 2, 3, 4, 5]
    assert resolve_layer_map("last", 12, 6) == [6, 7, 8, 9, 10, 11]


def test_non_integer_ratio_rounds_half_up():
    assert resolve_layer_map("alternate-last", 12, 5) == [1, 4, 6, 9, 11]  # 2.4, 4.8, 7.2, 9.6, 12
    assert resolve_layer_map("alternate-first", 12, 5) == [0, 2, 5, 7, 10]
    assert resolve_layer_map("alternate-last", 4, 3) == [0, 2, 3]  # 1.33, 2.67, 4 -> 1, 3, 4


@pytest.mark.parametrize("name", sorted(LAYER_MAPS))
@pytest.mark.parametrize("n_teacher", [1, 4, 7, 12, 24])
def test_every_map_is_distinct_increasing_and_in_range(name, n_teacher):
    for n_student in range(1, n_teacher + 1):
        layers = resolve_layer_map(name, n_teacher, n_student)
        assert len(layers) == n_student
        assert layers == sorted(set(layers))
        assert 0 <= layers[0] and layers[-1] < n_teacher
        if name == "alternate-last":
            assert layers[-1] == n_teacher - 1
        if name == "alternate-first":
            assert layers[0] == 0
    assert resolve_layer_map(name, n_teacher, n_teacher) == list(range(n_teacher))


def test_explicit_lists():
    assert resolve_layer_map("0, 5,11", 12, 3) == [0, 5, 11]
    assert resolve_layer_map([3, 1], 4, 2) == [3, 1]
    assert explicit_length("0,5,11") == 3 and explicit_length("alternate-last") is None


@pytest.mark.parametrize(
    "spec, n_student, message",
    [
        ("zigzag", 2, "Unknown layer map"),
        ("0,4", 2, "out of range"),
        ("-1,2", 2, "out of range"),
        ("1,1", 2, "more than once"),
        ("0,1,2", 2, "lists 3 teacher layers"),
        ("alternate-last", 5, "between 1 and 4"),
        ("alternate-last", 0, "between 1 and 4"),
    ],
)
def test_bad_maps_are_refused(spec, n_student, message):
    with pytest.raises(PolydistillError, match=message):
        resolve_layer_map(spec, 4, n_student)


def test_evenly_spaced_keeps_first_and_spreads():
    assert evenly_spaced(4, 2) == [0, 2]
    assert evenly_spaced(384, 192)[:3] == [0, 2, 4]
    assert evenly_spaced(12, 6) == [0, 2, 4, 6, 8, 10]
    assert evenly_spaced(5, 5) == [0, 1, 2, 3, 4]
    assert evenly_spaced(10, 3) == [0, 3, 6]


class _Config:
    hidden_size, intermediate_size, num_attention_heads, num_hidden_layers = 384, 1536, 12, 12


def test_uniform_plan_shrinks_head_dim_by_default_and_whole_heads_on_request():
    plan = uniform_plan(_Config(), hidden=192, intermediate=768, n_layers=6)
    assert plan.hidden == list(range(0, 384, 2))
    assert plan.heads == [list(range(12))] * 6 and plan.head_dim == list(range(0, 32, 2))
    assert plan.intermediate == [list(range(0, 1536, 2))] * 6
    # The Q/K/V output selection equals the evenly spaced selection of the all-head dimension.
    assert plan.inner(0, 32) == list(range(0, 384, 2))
    whole = uniform_plan(_Config(), hidden=192, heads=6, n_layers=6)
    assert whole.heads[0] == [0, 2, 4, 6, 8, 10] and whole.head_dim == list(range(32))
    assert whole.inner(0, 32)[:33] == list(range(32)) + [64]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(hidden=768), "cannot be wider"),
        (dict(intermediate=2000), "cannot be wider"),
        (dict(heads=16), "between 1 and the teacher's 12"),
        (dict(hidden=200), "not divisible by the number of heads 12"),
        (dict(heads=6), "wider than the teacher's 32"),
    ],
)
def test_impossible_widths_are_refused(kwargs, message):
    with pytest.raises(PolydistillError, match=message):
        uniform_plan(_Config(), n_layers=6, **kwargs)
