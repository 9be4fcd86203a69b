"""Task-agnostic, language-specific distillation (Eliquare, seed 004 §4) with the DistilBERT triplet loss.

    loss = α_ce · KL(softmax(t/T) ‖ softmax(s/T)) · T²   soft targets, every non-padding position
         + α_mlm · CE(s, masked tokens)                  the student's own MLM loss
         + α_cos · mean(1 − cos(h_s, h_t))               last hidden states, non-padding positions
         [+ α_mse · MSE(h_s, h_t)]                       optional, off by default

Defaults α_ce=5, α_mlm=2, α_cos=1, T=2 (DistilBERT / 004); every weight and T is configurable so the
loss-component and temperature ablations (004 Tables 6–7) can be rerun. Teacher and student see the same
masked input. The student copies the teacher's embeddings, layers 2n−1 (``alternate-first``: 1-indexed
1,3,…,11 for 6 of 12) and MLM head.

**A teacher without an MLM head** (multilingual-e5 is a sentence encoder; detected because loading it
as ``*ForMaskedLM`` reports the head's weights missing) cannot give soft targets. Default (option A):
fit a fresh MLM head on the *frozen* teacher for ``fit_teacher_head_steps`` steps (decoder tied to the
teacher's word embeddings, so only the transform and the output bias learn), then distil as usual; the
student starts from that fitted head too. With ``fit_teacher_head_steps=0`` (option B) the soft-target
term is dropped with a warning and MLM (through the student's freshly initialised head) + cosine remain.

The corpus is plain-text files, one sentence or document per line, read with ``datasets``' text loader
(memory-mapped Arrow, so corpora larger than RAM work), split 90/10 deterministically by ``seed``.
Checkpoints live in ``<out>.work/``; re-running the same command resumes from the last one. The best
checkpoint by validation distillation loss (with fixed validation masks) becomes ``out``, an ordinary
HF ``*ForMaskedLM`` directory that ``polydistill finetune`` / ``AutoModel`` load.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from polydistill.errors import PolydistillError, require
from polydistill.lang.mlm import IGNORE_INDEX, SmoothedMLMCollator, masking_weights, token_counts

logger = logging.getLogger(__name__)
TERMS = ("ce", "mlm", "cos", "mse")
PROVENANCE_FILE = "polydistill.json"


# ------------------------------------------------------------------------------------------- the losses
def soft_target_loss(s_logits: torch.Tensor, t_logits: torch.Tensor, mask: torch.Tensor, temperature: float):
    """KL(teacher ‖ student) at temperature T, times T², averaged over the positions in ``mask``."""
    s = s_logits[mask.bool()] / temperature
    t = t_logits[mask.bool()] / temperature
    kl = F.kl_div(F.log_softmax(s, dim=-1), F.softmax(t, dim=-1), reduction="batchmean")
    return kl * temperature**2


def mlm_loss(s_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(s_logits.reshape(-1, s_logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX)


def cosine_loss(s_hidden: torch.Tensor, t_hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """mean(1 − cos) between student and teacher hidden vectors at the positions in ``mask``."""
    m = mask.bool()
    return (1 - F.cosine_similarity(s_hidden[m], t_hidden[m], dim=-1)).mean()


def hidden_mse_loss(s_hidden: torch.Tensor, t_hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.bool()
    return F.mse_loss(s_hidden[m], t_hidden[m])


def distillation_terms(s_logits, t_logits, s_hidden, t_hidden, labels, attention_mask, temperature, wanted):
    """The loss terms named in ``wanted`` (a subset of TERMS)."""
    terms = {}
    if "ce" in wanted:
        terms["ce"] = soft_target_loss(s_logits, t_logits, attention_mask, temperature)
    if "mlm" in wanted:
        terms["mlm"] = mlm_loss(s_logits, labels)
    if "cos" in wanted:
        terms["cos"] = cosine_loss(s_hidden, t_hidden, attention_mask)
    if "mse" in wanted:
        terms["mse"] = hidden_mse_loss(s_hidden, t_hidden, attention_mask)
    return terms


# ------------------------------------------------------------------------------------------- settings
@dataclass
class LMDistillSettings:
    output_dir: str
    layers: int = 6
    layer_map: str = "alternate-first"  # 2n−1, DistilBERT's init
    alpha_ce: float = 5.0
    alpha_mlm: float = 2.0
    alpha_cos: float = 1.0
    alpha_mse: float = 0.0
    temperature: float = 2.0
    mlm_probability: float = 0.15
    mlm_smoothing: float = 0.7
    fit_teacher_head_steps: int = 300  # teacher without MLM head: option A (fit) if > 0, option B (drop ce) if 0
    fit_teacher_head_lr: float = 1e-3
    epochs: float = 3.0
    max_steps: int = -1
    learning_rate: float = 5e-4
    warmup_ratio: float = 0.05
    batch_size: int = 16
    grad_accum: int = 1
    max_length: int = 128
    eval_steps: int = 200
    logging_steps: int = 10
    validation_fraction: float = 0.1
    max_lines: int | None = None
    seed: int = 0
    overwrite: bool = False

    def weights(self) -> dict[str, float]:
        return {"ce": self.alpha_ce, "mlm": self.alpha_mlm, "cos": self.alpha_cos, "mse": self.alpha_mse}

    def check(self) -> None:
        require(self.layers >= 1, f"--layers must be ≥ 1, not {self.layers}.")
        require(self.temperature > 0, f"--temperature must be > 0, not {self.temperature}.")
        require(all(w >= 0 for w in self.weights().values()), "Loss weights (--alpha-*) must be ≥ 0.")
        require(any(w > 0 for w in self.weights().values()), "At least one loss weight (--alpha-*) must be > 0.")
        require(0 < self.validation_fraction < 1, "--validation-fraction must be in (0, 1).")
        require(self.fit_teacher_head_steps >= 0, "--fit-teacher-head-steps must be ≥ 0.")


@dataclass
class LMDistillResult:
    output_dir: Path
    best_val_loss: float
    best_val_terms: dict[str, float]
    teacher_head: str  # "pretrained" | "fitted" | "none (soft targets dropped)"
    log_history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    resumed_from: str | None = None


# ------------------------------------------------------------------------------------------- the teacher
def _quiet_transformers():
    import transformers

    transformers.logging.set_verbosity_error()


def load_mlm_teacher(source: str | Path):
    """(teacher as *ForMaskedLM, has_pretrained_head). The head is absent when its weights are missing."""
    from transformers import AutoModelForMaskedLM

    from polydistill.modeling import load_config

    config = load_config(source)
    _quiet_transformers()
    try:
        model, info = AutoModelForMaskedLM.from_pretrained(str(source), config=config, use_safetensors=True,
                                                           output_loading_info=True)
    except (OSError, ValueError, RuntimeError) as err:
        raise PolydistillError(f"Could not load {source} as a masked-LM encoder ({str(err).splitlines()[0][:200]}); "
                               "lm-distill needs a BERT-family encoder checkpoint.") from err
    prefix = model.base_model_prefix + "."
    head_missing = [k for k in info["missing_keys"] if not k.startswith(prefix)]
    body_missing = [k for k in info["missing_keys"] if k.startswith(prefix) and "position_ids" not in k]
    require(not body_missing, f"The teacher {source} lacks encoder weights ({body_missing[:3]}); is it corrupt?")
    model.eval()
    return model, not head_missing


def _head_parameters(model) -> list[torch.nn.Parameter]:
    """Trainable MLM-head parameters, excluding a decoder tied to the (frozen) word embeddings."""
    body = {id(p) for p in model.base_model.parameters()}
    return [p for n, p in model.named_parameters() if id(p) not in body]


def fit_teacher_head(teacher, dataset, collator, steps: int, lr: float, batch_size: int, seed: int) -> list[float]:
    """Train only the MLM head on the frozen teacher body (option A for head-less teachers).

    The body's parameters do not require gradients, so its forward builds no graph; the whole model
    stays in eval mode (no dropout), which works for every head layout (BERT ``cls``, XLM-R ``lm_head``,
    DeBERTa-v2 ``lm_predictions``, ELECTRA generator).
    """
    from tqdm.auto import trange

    params = _head_parameters(teacher)
    require(params, "The teacher's MLM head has no trainable parameters apart from its tied decoder.")
    for p in teacher.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=lr)
    generator = torch.Generator().manual_seed(seed)
    teacher.eval()
    losses = []
    for _step in trange(steps, desc="fitting the teacher's MLM head", mininterval=10):
        idx = torch.randint(len(dataset), (batch_size,), generator=generator).tolist()
        batch = collator([dataset[i] for i in idx])
        logits = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss = mlm_loss(logits, batch["labels"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    for p in teacher.parameters():
        p.requires_grad_(False)
    return losses


# ------------------------------------------------------------------------------------------- the student
def build_mlm_student(teacher, tokenizer, layers: int, layer_map: str, seed: int):
    """Depth-reduced copy of the teacher's body (student engineer's build_student) plus the teacher's head."""
    from transformers import AutoModel, AutoModelForMaskedLM

    from polydistill.student.build import build_student

    # build_student copies a bare encoder (AutoModel, with its pooler); an MLM body has no pooler, so we hand it
    # a bare copy whose pooler (unused by the MLM student) is simply freshly initialised.
    torch.manual_seed(seed)
    bare = AutoModel.from_config(teacher.config)
    missing, _ = bare.load_state_dict(teacher.base_model.state_dict(), strict=False)
    require(all("pooler" in k or "position_ids" in k for k in missing), f"Teacher body copy incomplete: {missing[:3]}.")
    built = build_student(bare.eval(), None, layers=layers, layer_map=layer_map, seed=seed, tokenizer=tokenizer)
    config = built.model.config.__class__.from_dict(built.model.config.to_dict())
    config.architectures = [type(teacher).__name__]
    torch.manual_seed(seed)
    student = AutoModelForMaskedLM.from_config(config)
    missing, unexpected = student.base_model.load_state_dict(built.model.state_dict(), strict=False)
    require(not [k for k in missing if "position_ids" not in k],
            f"Student body weights missing after the copy: {missing[:3]}.")
    prefix = teacher.base_model_prefix + "."
    head_state = {k: v for k, v in teacher.state_dict().items() if not k.startswith(prefix)}
    missing, unexpected = student.load_state_dict(head_state, strict=False)
    require(not unexpected, f"Teacher head weights did not fit the student: {unexpected[:3]}.")
    student.tie_weights()
    provenance = dict(built.provenance)
    provenance["task"] = "mlm"
    provenance["copied"] = [*provenance.get("copied", []), "mlm head"]
    return student, provenance


# ------------------------------------------------------------------------------------------- data
def load_corpus(files: Sequence[str], tokenizer, max_length: int, validation_fraction: float, seed: int,
                max_lines: int | None = None):
    """Tokenised train/validation DatasetDict from plain-text files (one sentence/document per line)."""
    from datasets import DatasetDict, load_dataset

    require(files, "Pass at least one --corpus file.")
    for f in files:
        require(Path(f).is_file(), f"Corpus file {f} does not exist; pass plain-text files, one sentence per line.")
    raw = load_dataset("text", data_files={"train": [str(f) for f in files]}, split="train")
    raw = raw.filter(lambda row: bool(row["text"].strip()))
    if max_lines is not None:
        raw = raw.select(range(min(max_lines, len(raw))))
    require(len(raw) >= 2, "The corpus needs at least two non-empty lines (one for training, one for validation).")
    split = raw.train_test_split(test_size=validation_fraction, seed=seed)

    def tokenize(batch):
        return {"input_ids": tokenizer(batch["text"], truncation=True, max_length=max_length)["input_ids"]}

    tokenised = DatasetDict(train=split["train"], validation=split["test"]).map(
        tokenize, batched=True, remove_columns=["text"], desc="tokenising"
    )
    return tokenised


# ------------------------------------------------------------------------------------------- the trainer
def _trainer_class():
    from transformers import Trainer

    class LMDistillTrainer(Trainer):
        """Trainer whose loss is the weighted triplet loss against a frozen teacher; logs every term."""

        def __init__(self, *args, teacher, loss_weights: dict[str, float], temperature: float, eval_seed: int,
                     **kwargs):
            super().__init__(*args, **kwargs)
            self.teacher = teacher.eval()
            for p in self.teacher.parameters():
                p.requires_grad_(False)
            self.loss_weights = {k: w for k, w in loss_weights.items() if w > 0}
            self.temperature = temperature
            self.eval_seed = eval_seed
            self._terms = {"train": defaultdict(list), "eval": defaultdict(list)}

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("labels")
            s_out = model(**inputs, output_hidden_states=True)
            with torch.no_grad():
                t_out = self.teacher(**inputs, output_hidden_states=True)
            terms = distillation_terms(s_out.logits, t_out.logits, s_out.hidden_states[-1], t_out.hidden_states[-1],
                                       labels, inputs["attention_mask"], self.temperature, self.loss_weights)
            loss = sum(self.loss_weights[k] * v for k, v in terms.items())
            phase = "train" if model.training else "eval"
            for k, v in terms.items():
                self._terms[phase][k].append(float(v.detach()))
            inputs["labels"] = labels
            return (loss, s_out) if return_outputs else loss

        def evaluate(self, *args, **kwargs):
            # Same masks at every evaluation, so validation losses are comparable across checkpoints.
            with self.data_collator.seeded(self.eval_seed):
                return super().evaluate(*args, **kwargs)

        def log(self, logs, *args, **kwargs):
            phase = "eval" if any(k.startswith("eval_") for k in logs) else "train"
            prefix = "eval_" if phase == "eval" else ""
            for k, values in self._terms[phase].items():
                if values:
                    logs[f"{prefix}loss_{k}"] = sum(values) / len(values)
            self._terms[phase] = defaultdict(list)
            super().log(logs, *args, **kwargs)

    return LMDistillTrainer


def lm_distill(teacher_source: str | Path, corpus: Sequence[str], settings: LMDistillSettings,
               callbacks: Sequence[Any] = ()) -> LMDistillResult:
    """Distil ``teacher_source`` into a ``settings.layers``-layer MLM student on the corpus files."""
    from transformers import TrainingArguments

    from polydistill.io import (
        atomic_output_dir,
        atomic_write_json,
        atomic_write_text,
        check_output_dir,
        package_versions,
    )
    from polydistill.modeling import load_tokenizer

    settings.check()
    out = Path(settings.output_dir)
    check_output_dir(out, settings.overwrite)  # refuse before any slow work
    work = out.with_name(out.name + ".work")
    work.mkdir(parents=True, exist_ok=True)
    _check_resume_settings(work, teacher_source, corpus, settings)

    tokenizer = load_tokenizer(teacher_source)
    torch.manual_seed(settings.seed)  # a missing MLM head is initialised reproducibly
    teacher, has_head = load_mlm_teacher(teacher_source)
    data = load_corpus(corpus, tokenizer, settings.max_length, settings.validation_fraction, settings.seed,
                       settings.max_lines)
    counts = token_counts(data["train"]["input_ids"], len(tokenizer))
    weights = masking_weights(counts, settings.mlm_smoothing, tokenizer.all_special_ids)
    collator = SmoothedMLMCollator(tokenizer, weights, settings.mlm_probability)

    loss_weights = settings.weights()
    head_record: dict[str, Any] = {}
    if has_head:
        teacher_head = "pretrained"
    elif settings.fit_teacher_head_steps > 0:
        teacher_head = "fitted"
        head_file = work / "teacher_mlm_head.pt"
        if head_file.is_file():  # resumed run: reuse the head fitted before
            saved = torch.load(head_file, weights_only=True)
            teacher.load_state_dict(saved["state"], strict=False)
            head_record = saved["record"]
        else:
            with collator.seeded(settings.seed):
                losses = fit_teacher_head(teacher, data["train"], collator, settings.fit_teacher_head_steps,
                                          settings.fit_teacher_head_lr, settings.batch_size, settings.seed)
            k = max(1, len(losses) // 10)
            head_record = {"steps": len(losses), "lr": settings.fit_teacher_head_lr,
                           "mlm_loss_first": sum(losses[:k]) / k, "mlm_loss_last": sum(losses[-k:]) / k}
            prefix = teacher.base_model_prefix + "."
            torch.save({"state": {n: t for n, t in teacher.state_dict().items() if not n.startswith(prefix)},
                        "record": head_record}, head_file)
        logger.info("Teacher has no MLM head: fitted one on the frozen teacher (%s).", head_record)
    else:
        teacher_head = "none (soft targets dropped)"
        loss_weights["ce"] = 0.0
        logger.warning("The teacher %s has no MLM head and --fit-teacher-head-steps is 0: the soft-target term is "
                       "dropped; training uses MLM (student head freshly initialised) and cosine only.", teacher_source)
        require(any(w > 0 for w in loss_weights.values()), "With the soft-target term dropped no loss term is left.")

    # Option B: the student starts from the teacher's freshly initialised (seeded) head.
    student, provenance = build_mlm_student(teacher, tokenizer, settings.layers, settings.layer_map, settings.seed)

    from polydistill.distill.run import last_complete_checkpoint

    resume = last_complete_checkpoint(work)
    args = TrainingArguments(
        output_dir=str(work),
        eval_on_start=resume is None,  # the untrained student's validation terms: the baseline each should beat
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        learning_rate=settings.learning_rate,
        warmup_steps=settings.warmup_ratio,
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.grad_accum,
        adam_epsilon=1e-6,  # 004 §4
        eval_strategy="steps",
        eval_steps=settings.eval_steps,
        save_strategy="steps",
        save_steps=settings.eval_steps,
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        logging_steps=settings.logging_steps,
        prediction_loss_only=True,
        remove_unused_columns=False,
        report_to=[],
        seed=settings.seed,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=True,
    )
    trainer = _trainer_class()(
        model=student, args=args, train_dataset=data["train"], eval_dataset=data["validation"],
        data_collator=collator, teacher=teacher, loss_weights=loss_weights, temperature=settings.temperature,
        eval_seed=settings.seed + 1, callbacks=list(callbacks),
    )
    start = time.time()
    trainer.train(resume_from_checkpoint=resume)
    seconds = time.time() - start
    final = trainer.evaluate()  # the best model (load_best_model_at_end) on the fixed validation masks
    best_terms = {k: final[f"eval_loss_{k}"] for k in TERMS if f"eval_loss_{k}" in final}

    record = {
        "teacher": str(teacher_source),
        "corpus": [str(c) for c in corpus],
        "train_lines": len(data["train"]),
        "validation_lines": len(data["validation"]),
        "teacher_head": teacher_head,
        "teacher_head_fit": head_record,
        "loss_weights": loss_weights,
        "settings": asdict(settings),
        "best_val_loss": final["eval_loss"],
        "best_val_terms": best_terms,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "global_step": trainer.state.global_step,
        "train_seconds": round(seconds, 1),
        "resumed_from": resume,
    }
    teacher_prov = Path(teacher_source) / PROVENANCE_FILE
    if teacher_prov.is_file():  # e.g. a vocabulary-reduced teacher: keep that step visible
        from polydistill.io import read_json

        provenance["teacher_provenance"] = read_json(teacher_prov)
    provenance["lm_distill"] = record
    provenance["versions"] = package_versions()
    with atomic_output_dir(out, settings.overwrite) as tmp:
        trainer.model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(tmp / PROVENANCE_FILE, provenance)
        atomic_write_json(tmp / "log_history.json", trainer.state.log_history)
        atomic_write_text(tmp / "README.md", _model_card(record, provenance))
    return LMDistillResult(output_dir=out, best_val_loss=final["eval_loss"], best_val_terms=best_terms,
                           teacher_head=teacher_head, log_history=list(trainer.state.log_history),
                           train_seconds=seconds, resumed_from=resume)


def _check_resume_settings(work: Path, teacher, corpus, settings: LMDistillSettings) -> None:
    """A work dir may only be resumed by the same run (teacher, corpus, model-shaping settings)."""
    from polydistill.io import atomic_write_json, read_json

    key = {"teacher": str(teacher), "corpus": [str(c) for c in corpus],
           **{k: v for k, v in asdict(settings).items() if k not in ("overwrite", "max_steps", "epochs", "eval_steps",
                                                                     "logging_steps")}}
    path = work / "run.json"
    if path.is_file():
        previous = read_json(path)
        if previous != json.loads(json.dumps(key)):
            diff = sorted(k for k in set(previous) | set(key) if previous.get(k) != json.loads(json.dumps(key)).get(k))
            raise PolydistillError(f"{work} holds checkpoints of a different lm-distill run (differs in {', '.join(diff)}); "
                                   "delete it or use another --out.")
    else:
        atomic_write_json(path, key)


def _model_card(record: dict, provenance: dict) -> str:
    terms = ", ".join(f"{k} {v:.4f}" for k, v in record["best_val_terms"].items())
    return "\n".join([
        "---", "library_name: transformers", "tags: [polydistill, lm-distill, fill-mask]", "---", "",
        f"# {provenance.get('num_layers', '?')}-layer language-specific student of {Path(record['teacher']).name}", "",
        "Made with `polydistill lm-distill` (Eliquare, Singh et al. 2023; DistilBERT triplet loss).", "",
        f"- teacher layers copied (0-indexed): {provenance.get('teacher_layers')} ({provenance.get('layer_map')})",
        f"- corpus: {', '.join(record['corpus'])} ({record['train_lines']:,} train / "
        f"{record['validation_lines']:,} validation lines)",
        f"- loss weights: {record['loss_weights']}, temperature {record['settings']['temperature']}",
        f"- teacher MLM head: {record['teacher_head']}",
        f"- best validation distillation loss {record['best_val_loss']:.4f} ({terms}) at "
        f"{record['best_checkpoint']}",
        "", f"Provenance: `{PROVENANCE_FILE}`; per-step loss terms: `log_history.json`.",
    ]) + "\n"
