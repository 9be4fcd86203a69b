"""Real multilingual-e5-small (12-layer BERT, 250k XLM-R vocabulary) students, built through the CLI."""

import json
import time

import pytest
import torch

from polydistill.cli import main
from polydistill.modeling import load_model, load_tokenizer

pytestmark = pytest.mark.slow

SENTENCES = ["wake me up at seven tomorrow", "despiértame a las siete mañana", "明天早上七点叫醒我"]


def _build(argv):
    start = time.perf_counter()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code in (0, None)
    return time.perf_counter() - start


@pytest.mark.parametrize("width", [[], ["--hidden", "192", "--intermediate", "768"]], ids=["depth", "depth+width"])
def test_e5_half_depth_students_build_and_load(e5_dir, tmp_path, width):
    torch.set_num_threads(1)
    out = tmp_path / "student"
    seconds = _build(["student", str(e5_dir), "--out", str(out), "--layers", "6", *width])
    print(f"built {width or 'depth only'} in {seconds:.1f} s")
    prov = json.loads((out / "polydistill.json").read_text())
    assert prov["teacher_layers"] == [1, 3, 5, 7, 9, 11] and prov["layer_map"] == "alternate-last"
    student, teacher = load_model(out).eval(), load_model(e5_dir).eval()
    hidden = 192 if width else 384
    assert student.config.num_hidden_layers == 6 and student.config.hidden_size == hidden
    assert student.config.intermediate_size == (768 if width else 1536)
    # Student layer 2 is teacher layer 5 (0-indexed), sliced evenly when narrower.
    step = 384 // hidden
    t_q = teacher.encoder.layer[5].attention.self.query.weight
    assert torch.equal(student.encoder.layer[2].attention.self.query.weight, t_q[::step, ::step])
    tokenizer = load_tokenizer(out)
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        states = student(**batch).last_hidden_state
    assert states.shape[:2] == batch["input_ids"].shape and states.shape[2] == hidden
    assert torch.isfinite(states).all()


def test_e5_full_depth_copy_is_the_teacher(e5_dir):
    from polydistill.student import build_student

    torch.set_num_threads(1)
    built = build_student(str(e5_dir))
    teacher = load_model(e5_dir).eval()
    batch = built.tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(built.model(**batch).last_hidden_state, teacher(**batch).last_hidden_state,
                                   rtol=0, atol=1e-5)
