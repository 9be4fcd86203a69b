"""lm-distill: golden values of each loss term, MLM masking statistics, 2n−1 init, head-less teachers, resume."""

from __future__ import annotations

import json
import logging
import math

import pytest
import torch

from factories import CORPUS, make_config, make_model_dir, make_wordpiece_tokenizer
from polydistill.distill.lm_distill import (
    LMDistillSettings,
    build_mlm_student,
    cosine_loss,
    fit_teacher_head,
    head_logits,
    hidden_mse_loss,
    lm_distill,
    load_mlm_teacher,
    mlm_loss,
    soft_target_loss,
)
from polydistill.distill.mlm import IGNORE_INDEX, SmoothedMLMCollator, masking_weights, token_counts

# ------------------------------------------------------------------------------------ golden loss values


def test_soft_target_golden_value():
    T = 2.0
    # teacher logits [0, 2 ln 3] at T=2 -> probs [1/4, 3/4]; student logits 0 -> [1/2, 1/2]
    t = torch.tensor([[[0.0, 2 * math.log(3)], [5.0, -5.0]]])
    s = torch.zeros(1, 2, 2)
    mask = torch.tensor([[1, 0]])  # the second (padding) position must not count
    expected = (0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)) * T**2
    assert soft_target_loss(s, t, mask, T).item() == pytest.approx(expected, rel=1e-6)
    # at T=1 the same logits give a different value: temperature really applies
    p = torch.softmax(t[0, 0], -1)
    expected_t1 = float((p * (p / 0.5).log()).sum())
    assert soft_target_loss(s, t, mask, 1.0).item() == pytest.approx(expected_t1, rel=1e-6)


def test_mlm_cosine_mse_golden_values():
    V = 7
    logits = torch.zeros(1, 3, V)
    labels = torch.tensor([[IGNORE_INDEX, 4, IGNORE_INDEX]])
    assert mlm_loss(logits, labels).item() == pytest.approx(math.log(V), rel=1e-6)
    s = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [9.0, 9.0]]])
    t = torch.tensor([[[1.0, 1.0], [0.0, 5.0], [-9.0, 1.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert cosine_loss(s, t, mask).item() == pytest.approx(((1 - 1 / math.sqrt(2)) + 0.0) / 2, rel=1e-6)
    assert hidden_mse_loss(s, t, mask).item() == pytest.approx((0 + 1 + 0 + 9) / 4, rel=1e-6)


# ------------------------------------------------------------------------------------------- masking


def test_masking_proportions_80_10_10_and_specials_untouched():
    tok = make_wordpiece_tokenizer()
    ids = [tok(text)["input_ids"] for text in CORPUS * 40]
    collator = SmoothedMLMCollator(tok, None, 0.15, generator=torch.Generator().manual_seed(0))
    batch = collator([{"input_ids": i} for i in ids])
    original = tok.pad({"input_ids": ids}, return_tensors="pt")["input_ids"]
    special = torch.isin(original, torch.tensor(tok.all_special_ids))
    maskable = batch["attention_mask"].bool() & ~special
    chosen = batch["labels"] != IGNORE_INDEX
    assert int(chosen.sum()) == math.ceil(0.15 * int(maskable.sum()))
    assert not (chosen & ~maskable).any()  # never padding or [CLS]/[SEP]
    assert torch.equal(batch["labels"][chosen], original[chosen])
    assert torch.equal(batch["input_ids"][~chosen], original[~chosen])
    n = int(chosen.sum())
    masked = (batch["input_ids"][chosen] == tok.mask_token_id).sum().item() / n
    kept = (batch["input_ids"][chosen] == original[chosen]).sum().item() / n
    assert masked == pytest.approx(0.8, abs=0.04)
    # a random replacement can hit the original token by chance, so "kept" is slightly above 10 %
    assert kept == pytest.approx(0.1, abs=0.035)
    replaced = batch["input_ids"][chosen & (batch["input_ids"] != tok.mask_token_id) & (batch["input_ids"] != original)]
    assert len(replaced) / n == pytest.approx(0.1, abs=0.035)
    assert not torch.isin(replaced, torch.tensor(tok.all_special_ids)).any()


def test_frequency_smoothed_selection():
    tok = make_wordpiece_tokenizer()
    a, b = 10, 11  # two ordinary token ids
    counts = torch.zeros(len(tok), dtype=torch.long)
    counts[a], counts[b] = 1000, 10
    row = torch.tensor([[a] * 100 + [b] * 100])
    maskable = torch.ones_like(row, dtype=torch.bool)

    def share_of_rare(smoothing):
        collator = SmoothedMLMCollator(tok, masking_weights(counts, smoothing, tok.all_special_ids), 0.004,
                                       generator=torch.Generator().manual_seed(1))
        picks = [row[collator.select(row, maskable)].item() for _ in range(3000)]  # ceil(0.004·200) = 1 pick
        return sum(p == b for p in picks) / len(picks)

    ratio = (1000 / 10) ** 0.7  # w_b / w_a with weights count^-0.7
    assert share_of_rare(0.7) == pytest.approx(ratio / (1 + ratio), abs=0.015)
    assert share_of_rare(0.0) == pytest.approx(0.5, abs=0.04)  # smoothing 0 = uniform
    weights = masking_weights(counts, 0.7, tok.all_special_ids)
    assert all(weights[i] == 0 for i in tok.all_special_ids)
    assert token_counts([[1, 2, 2], [2]], 4).tolist() == [0, 1, 3, 0]


# ------------------------------------------------------------------------------------------- training


def _mlm_teacher_dir(tmp_path):
    from transformers import BertForMaskedLM

    tok = make_wordpiece_tokenizer()
    torch.manual_seed(0)
    model = BertForMaskedLM(make_config("bert", tok))
    out = tmp_path / "mlm-teacher"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _corpus(tmp_path, n=6):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(CORPUS * n) + "\n\n")
    return path


def _settings(out, **kw):
    base = dict(output_dir=str(out), layers=2, max_steps=4, eval_steps=2, logging_steps=1, batch_size=8,
                max_length=16, fit_teacher_head_steps=3)
    base.update(kw)
    return LMDistillSettings(**base)


def test_student_is_2n_minus_1_copy_with_teacher_head(tmp_path):
    teacher, has_head = load_mlm_teacher(_mlm_teacher_dir(tmp_path))
    assert has_head
    student, prov = build_mlm_student(teacher, make_wordpiece_tokenizer(), 2, "alternate-first", 0)
    assert prov["teacher_layers"] == [0, 2]  # 1-indexed 1 and 3 = 2n−1
    t_state, s_state = teacher.state_dict(), student.state_dict()
    for s_i, t_i in enumerate([0, 2]):
        for key in ("attention.self.query.weight", "output.dense.weight"):
            assert torch.equal(s_state[f"bert.encoder.layer.{s_i}.{key}"], t_state[f"bert.encoder.layer.{t_i}.{key}"])
    for key in ("bert.embeddings.word_embeddings.weight", "cls.predictions.transform.dense.weight",
                "cls.predictions.bias"):
        assert torch.equal(s_state[key], t_state[key])


def test_lm_distill_with_mlm_teacher_output_loads(tmp_path):
    from transformers import AutoModel, AutoModelForMaskedLM

    result = lm_distill(_mlm_teacher_dir(tmp_path), [str(_corpus(tmp_path))], _settings(tmp_path / "out"))
    assert result.teacher_head == "pretrained"
    assert set(result.best_val_terms) == {"ce", "mlm", "cos"}  # mse off by default
    train_logs = [h for h in result.log_history if "loss_ce" in h]
    assert len(train_logs) == 4
    first = result.log_history[0]  # the untrained student's validation terms (eval on start)
    assert first["step"] == 0 and {"eval_loss_ce", "eval_loss_mlm", "eval_loss_cos"} <= set(first)
    total = result.best_val_terms["ce"] * 5 + result.best_val_terms["mlm"] * 2 + result.best_val_terms["cos"]
    assert result.best_val_loss == pytest.approx(total, rel=1e-4)
    model = AutoModelForMaskedLM.from_pretrained(result.output_dir)
    assert model.config.num_hidden_layers == 2
    AutoModel.from_pretrained(result.output_dir)
    prov = json.loads((result.output_dir / "polydistill.json").read_text())
    assert prov["lm_distill"]["train_lines"] + prov["lm_distill"]["validation_lines"] == 60
    assert prov["lm_distill"]["validation_lines"] == 6  # 90/10
    assert prov["teacher_layers"] == [0, 2]


def test_head_logits_is_the_models_own_head(tmp_path):
    """head_logits(model, states) is what the model's forward makes of those states, for every head layout."""
    from transformers import AutoModelForMaskedLM

    tok = make_wordpiece_tokenizer()
    torch.manual_seed(0)
    ids = torch.tensor([tok("the cat sat on the mat")["input_ids"]])
    for arch in ("bert", "xlm-roberta", "electra", "deberta-v2"):  # cls, lm_head, generator, lm_predictions
        model = AutoModelForMaskedLM.from_config(make_config(arch, tok)).eval()
        with torch.no_grad():
            full = model(input_ids=ids).logits[0]
            states = model.base_model(input_ids=ids).last_hidden_state[0]
            assert torch.allclose(head_logits(model, states), full, atol=1e-5)


def test_head_fit_learns_what_the_states_reveal(tmp_path):
    """Where the states do tell the token (every target position keeps its token), the fitted head beats the
    uniform loss by far on held-out positions, and the kept head is the best one seen."""
    teacher, has_head = load_mlm_teacher(make_model_dir(tmp_path, "bert", "base"))
    assert not has_head
    tok = make_wordpiece_tokenizer()
    data = [{"input_ids": tok(text)["input_ids"]} for text in CORPUS * 20]

    def keep_collator(rows):  # 'masking' that keeps every token: the body's state shows its own token
        batch = tok.pad(rows, return_tensors="pt")
        labels = batch["input_ids"].clone()
        labels[batch["attention_mask"] == 0] = IGNORE_INDEX
        return {**batch, "labels": labels}

    record = fit_teacher_head(teacher, data, keep_collator, batches=20, lr=1e-2, batch_size=8, seed=0)
    assert record["batches"] == 20 and record["positions"] + record["heldout_positions"] > 500
    assert record["mlm_loss_first"] > 0.8 * math.log(len(tok))
    assert record["mlm_loss_last"] < 0.5 * math.log(len(tok)) and record["best_step"] > 0
    assert not any(p.requires_grad for p in teacher.parameters())


def test_shared_head_is_fitted_once(tmp_path, monkeypatch):
    """Runs that differ only in the distillation share one fitted head through teacher_head_dir; a run with
    other fit settings fits its own."""
    import polydistill.distill.lm_distill as lm

    teacher = make_model_dir(tmp_path, "bert", "base")
    corpus = [str(_corpus(tmp_path))]
    fits = []
    real = lm.fit_teacher_head
    monkeypatch.setattr(lm, "fit_teacher_head", lambda *a, **k: fits.append(a[3]) or real(*a, **k))
    shared = tmp_path / "heads"
    a = lm_distill(teacher, corpus, _settings(tmp_path / "a", max_steps=1, teacher_head_dir=shared))
    b = lm_distill(teacher, corpus, _settings(tmp_path / "b", max_steps=1, teacher_head_dir=shared, temperature=4.0,
                                              alpha_ce=1.0))
    assert fits == [3] and len(list(shared.glob("teacher-head-*.pt"))) == 1
    record = [json.loads((r.output_dir / "polydistill.json").read_text())["lm_distill"]["teacher_head_fit"]
              for r in (a, b)]
    assert record[0] == record[1] and a.teacher_head == b.teacher_head == "fitted"
    lm_distill(teacher, corpus, _settings(tmp_path / "c", max_steps=1, teacher_head_dir=shared,
                                          fit_teacher_head_steps=2))
    assert fits == [3, 2] and len(list(shared.glob("teacher-head-*.pt"))) == 2


def test_headless_teacher_fit_or_drop(tmp_path, caplog):
    teacher = make_model_dir(tmp_path, "bert", "base")
    corpus = [str(_corpus(tmp_path))]
    fitted = lm_distill(teacher, corpus, _settings(tmp_path / "fit", max_steps=2))
    assert fitted.teacher_head == "fitted"
    prov = json.loads((fitted.output_dir / "polydistill.json").read_text())
    fit = prov["lm_distill"]["teacher_head_fit"]
    assert fit["batches"] == 3 and fit["mlm_loss_last"] <= fit["mlm_loss_first"] and fit["heldout_positions"] >= 1
    with caplog.at_level(logging.WARNING):
        dropped = lm_distill(teacher, corpus, _settings(tmp_path / "drop", max_steps=2, fit_teacher_head_steps=0))
    assert dropped.teacher_head.startswith("none")
    assert "ce" not in dropped.best_val_terms and {"mlm", "cos"} <= set(dropped.best_val_terms)
    assert "soft-target term is dropped" in caplog.text


def test_resume_after_interruption(tmp_path):
    from transformers import TrainerCallback

    class Interrupt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise KeyboardInterrupt

    teacher, corpus, out = _mlm_teacher_dir(tmp_path), [str(_corpus(tmp_path))], tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        lm_distill(teacher, corpus, _settings(out), callbacks=[Interrupt()])
    assert not out.exists()  # nothing half written
    result = lm_distill(teacher, corpus, _settings(out))
    assert result.resumed_from is not None and result.resumed_from.endswith("checkpoint-2")
    steps = [h["step"] for h in result.log_history if "loss_ce" in h]
    assert steps[-1] == 4 and 4 in steps
    # a different run must not silently reuse another run's checkpoints: refused, naming what differs;
    # with overwrite it starts afresh
    from polydistill.errors import PolydistillError

    other = tmp_path / "other"
    with pytest.raises(KeyboardInterrupt):
        lm_distill(teacher, corpus, _settings(other), callbacks=[Interrupt()])
    with pytest.raises(PolydistillError, match="another run.*temperature"):
        lm_distill(teacher, corpus, _settings(other, temperature=3.0))
    fresh = lm_distill(teacher, corpus, _settings(other, temperature=3.0, overwrite=True))
    assert fresh.resumed_from is None


def test_cli_lm_distill(tmp_path, capsys):
    from polydistill.cli import main

    teacher, corpus, out = _mlm_teacher_dir(tmp_path), _corpus(tmp_path, n=2), tmp_path / "out"
    argv = ["lm-distill", "--teacher", str(teacher), "--corpus", str(corpus), "--out", str(out), "--layers", "1",
            "--max-steps", "2", "--eval-steps", "1", "--batch-size", "4", "--max-length", "16",
            "--alpha-ce", "1", "--temperature", "1"]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    assert "best validation distillation loss" in capsys.readouterr().out
    prov = json.loads((out / "polydistill.json").read_text())
    assert prov["lm_distill"]["loss_weights"]["ce"] == 1.0 and prov["lm_distill"]["settings"]["temperature"] == 1.0
    with pytest.raises(SystemExit) as exit_:
        main(["lm-distill", "--teacher", str(teacher), "--corpus", str(tmp_path / "missing.txt"),
              "--out", str(tmp_path / "o2")])
    assert exit_.value.code == 2 and "does not exist" in capsys.readouterr().err


def test_headless_deberta_teacher(tmp_path):
    """DeBERTa-v2's MLM head takes the word embeddings as an argument: the head fit must still work."""
    teacher = make_model_dir(tmp_path, "deberta-v2", "base")
    result = lm_distill(teacher, [str(_corpus(tmp_path, n=2))],
                        _settings(tmp_path / "out", max_steps=1, eval_steps=1, fit_teacher_head_steps=2))
    assert result.teacher_head == "fitted" and result.best_val_terms["ce"] >= 0
