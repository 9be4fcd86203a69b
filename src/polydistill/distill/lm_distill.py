"""Task-agnostic, language-specific distillation (Eliquare, Singh et al. 2023, §4) with the DistilBERT triplet loss.

    loss = α_ce · KL(softmax(t/T) ‖ softmax(s/T)) · T²   soft targets, every non-padding position
         + α_mlm · CE(s, masked tokens)                  the student's own MLM loss
         + α_cos · mean(1 − cos(h_s, h_t))               last hidden states, non-padding positions
         [+ α_mse · MSE(h_s, h_t)]                       optional, off by default

The terms are entries of the KD-term registry run by the training core (``distill/run.py``):
DistilBERT's L_ce is the ``pred`` term (KL at T, every real token), L_mlm the ``ce`` term (on the
masked tokens), L_cos the ``cos`` term, the MSE the ``last_mse`` term; logs keep DistilBERT's names
(``loss_ce``, ``loss_mlm``, ``loss_cos``, ``loss_mse``).

Defaults α_ce=5, α_mlm=2, α_cos=1, T=2 (DistilBERT / Singh et al. 2023); every weight and T is
configurable so the loss-component and temperature ablations (Singh et al. 2023, Tables 6–7) can be
rerun. Teacher and student see the same masked input. The student copies the teacher's embeddings,
layers 2n−1 (``alternate-first``: 1-indexed 1,3,…,11 for 6 of 12) and MLM head.

**A teacher without an MLM head** (multilingual-e5 is a sentence encoder; detected because loading it
as ``*ForMaskedLM`` reports the head's weights missing) cannot give soft targets. Default (option A):
fit a fresh MLM head on the *frozen* teacher's last hidden states at the masked positions of
``fit_teacher_head_steps`` batches (decoder tied to the teacher's word embeddings, so only the transform and
the output bias learn; trained to its best held-out MLM loss, :func:`fit_teacher_head`), then distil as usual;
the student starts from that fitted head too. With ``fit_teacher_head_steps=0`` (option B) the soft-target
term is dropped with a warning and MLM (through the student's freshly initialised head) + cosine remain.

The corpus is plain-text files, one sentence or document per line, read with ``datasets``' text loader
(memory-mapped Arrow, so corpora larger than RAM work), split 90/10 deterministically by ``seed``.
Checkpoints live in ``<out>.work/``; re-running the same command resumes from the last one. The best
checkpoint by validation distillation loss (with fixed validation masks) becomes ``out``, an ordinary
HF ``*ForMaskedLM`` directory that ``polydistill finetune`` / ``AutoModel`` load.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import trange

from polydistill.architectures import get_adapter
from polydistill.data.load import content_fingerprint
from polydistill.data.tokenize import fit_max_length
from polydistill.distill import losses
from polydistill.distill.checkpoints import last_complete_checkpoint
from polydistill.distill.mlm import SmoothedMLMCollator, masking_weights, token_counts
from polydistill.distill.run import (
    TrainingJob,
    claimed_run,
    fingerprint_of,
    finished_result,
    model_digest,
    run_training,
)
from polydistill.distill.settings import KDSettings, LMDistillSettings
from polydistill.distill.terms import get_term
from polydistill.distill.trainer import ActiveTerm, PolydistillTrainer
from polydistill.errors import PolydistillError, require
from polydistill.io import check_output_dir, check_utf8_text, wait_lock
from polydistill.logs import interactive
from polydistill.modeling import (
    check_finite_weights,
    load_config,
    load_tokenizer,
    quiet_loading,
    resolve_model_dir,
)
from polydistill.steps import digest
from polydistill.student.build import build_student
from polydistill.student.provenance import read_provenance

logger = logging.getLogger(__name__)
# DistilBERT's name of each term (logs, records) → the registry term that computes it
TERMS = {"ce": "pred", "mlm": "ce", "cos": "cos", "mse": "last_mse"}
HEAD_FILE = "teacher_mlm_head.pt"


@dataclass
class LMDistillResult:
    output_dir: Path
    best_val_loss: float
    best_val_terms: dict[str, float]
    teacher_head: str  # "pretrained" | "fitted" | "none (soft targets dropped)"
    log_history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    resumed_from: str | None = None


# ------------------------------------------------------------------------------------------- the losses
# DistilBERT's terms as functions of tensors (the registry terms compute exactly these).
def soft_target_loss(s_logits: torch.Tensor, t_logits: torch.Tensor, mask: torch.Tensor, temperature: float):
    """KL(teacher ‖ student) at temperature T, times T², averaged over the positions in ``mask``."""
    return losses.prediction_loss(s_logits, t_logits, "kl", temperature, mask)


def mlm_loss(s_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return losses.classification_loss(s_logits, labels)


cosine_loss = losses.cosine_loss
hidden_mse_loss = losses.masked_mse


# ------------------------------------------------------------------------------------------- the teacher
def load_mlm_teacher(source: str | Path):
    """(teacher as *ForMaskedLM, has_pretrained_head). The head is absent when its weights are missing."""
    from transformers import AutoModelForMaskedLM

    config = load_config(source)
    try:
        with quiet_loading():  # a head-less teacher's missing head is expected, not news
            model, info = AutoModelForMaskedLM.from_pretrained(str(source), config=config, use_safetensors=True,
                                                               output_loading_info=True)
    except (OSError, ValueError, RuntimeError) as err:
        raise PolydistillError(f"Could not load {source} as a masked-LM encoder ({str(err).splitlines()[0][:200]}); "
                               "lm-distill needs a BERT-family encoder checkpoint.") from err
    prefix = model.base_model_prefix + "."
    head_missing = [k for k in info["missing_keys"] if not k.startswith(prefix)]
    body_missing = [k for k in info["missing_keys"] if k.startswith(prefix) and "position_ids" not in k]
    require(not body_missing, f"The teacher {source} lacks encoder weights ({body_missing[:3]}); is it corrupt?")
    check_finite_weights(model, source)
    model.eval()
    return model, not head_missing


def _head_parameters(model) -> list[torch.nn.Parameter]:
    """Trainable MLM-head parameters, excluding a decoder tied to the (frozen) word embeddings."""
    body = {id(p) for p in model.base_model.parameters()}
    return [p for n, p in model.named_parameters() if id(p) not in body]


# The head fit (option A): the frozen body runs once per batch; the head then trains on the kept positions.
HEAD_FIT_POSITIONS = 512  # masked positions per head-training step
HEAD_FIT_CHECK_EVERY = 25  # head-training steps between held-out checks
HEAD_FIT_PATIENCE = 4  # checks without a better held-out loss before the fit stops
HEAD_FIT_MAX_STEPS = 3000
HEAD_FIT_HELDOUT = 0.1  # share of the positions held out to choose the head


def head_logits(model, hidden: torch.Tensor) -> torch.Tensor:
    """The MLM head of a ``*ForMaskedLM`` ``model`` applied to last hidden states ``hidden`` ([n, d] → [n, V]).

    Layout-free (BERT ``cls``, XLM-R ``lm_head``, DeBERTa-v2 ``lm_predictions``, ELECTRA generator): the model
    runs on one token with its backbone's output replaced by ``hidden``, so its own forward applies the head."""
    def replace(_module, _args, output):
        output.last_hidden_state = hidden.unsqueeze(0)
        return output

    handle = model.base_model.register_forward_hook(replace)
    try:
        one = torch.zeros((1, 1), dtype=torch.long)
        return model(input_ids=one, attention_mask=torch.ones_like(one)).logits[0]
    finally:
        handle.remove()


def fit_teacher_head(teacher, dataset, collator, batches: int, lr: float, batch_size: int, seed: int
                     ) -> dict[str, Any]:
    """Fit only the MLM head on the frozen teacher body (option A for head-less teachers), to a held-out optimum.

    The body runs once over ``batches`` masked batches of the corpus (no graph: its parameters need no
    gradient; eval mode, no dropout); its last hidden states at the masked positions and their tokens are kept,
    a tenth held out. The head (transform and output bias; the decoder stays tied to the frozen word embeddings)
    trains on the rest, ``HEAD_FIT_POSITIONS`` positions a step, until the held-out MLM loss has not improved for
    ``HEAD_FIT_PATIENCE`` checks; the best head is kept. One pass of online steps (the fit before) learnt next to
    nothing on e5 (docs/lang.md: 7.51 nats after 100 steps, uniform 7.35); this fit reached 5.88 held out on the
    same teacher and corpus. Returns the fit's record.
    """
    params = _head_parameters(teacher)
    require(params, "The teacher's MLM head has no trainable parameters apart from its tied decoder.")
    for p in teacher.parameters():
        p.requires_grad_(False)
    teacher.eval()
    generator = torch.Generator().manual_seed(seed)
    hidden, labels = [], []
    with torch.no_grad():
        for _ in trange(batches, desc="teacher states for its MLM head", mininterval=10, disable=not interactive()):
            idx = torch.randint(len(dataset), (batch_size,), generator=generator).tolist()
            batch = collator([dataset[i] for i in idx])
            states = teacher.base_model(input_ids=batch["input_ids"],
                                        attention_mask=batch["attention_mask"]).last_hidden_state
            masked = batch["labels"] != -100
            hidden.append(states[masked])
            labels.append(batch["labels"][masked])
    x, y = torch.cat(hidden), torch.cat(labels)
    require(len(y) >= 2, "Fitting the teacher's MLM head needs at least 2 masked tokens; give it more corpus "
                         "or more --fit-teacher-head-steps.")
    order = torch.randperm(len(y), generator=generator)
    n_held = max(1, int(len(y) * HEAD_FIT_HELDOUT))
    held, train = order[:n_held], order[n_held:]

    def held_out_loss() -> float:
        with torch.no_grad():
            total = sum(float(mlm_loss(head_logits(teacher, x[chunk]), y[chunk])) * len(chunk)
                        for chunk in held.split(HEAD_FIT_POSITIONS))
        return total / len(held)

    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=lr)
    first = best = held_out_loss()
    best_state = {id(p): p.detach().clone() for p in params}
    best_step = steps = checks_worse = 0
    while steps < HEAD_FIT_MAX_STEPS and checks_worse < HEAD_FIT_PATIENCE:
        pick = train[torch.randint(len(train), (HEAD_FIT_POSITIONS,), generator=generator)]
        loss = mlm_loss(head_logits(teacher, x[pick]), y[pick])
        if not torch.isfinite(loss):
            raise PolydistillError(f"Fitting the teacher's MLM head stopped at step {steps + 1}: the loss is "
                                   f"{float(loss)}; lower --fit-teacher-head-lr.")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps += 1
        if steps % HEAD_FIT_CHECK_EVERY == 0:
            current = held_out_loss()
            if current < best:
                best, best_step, checks_worse = current, steps, 0
                best_state = {id(p): p.detach().clone() for p in params}
            else:
                checks_worse += 1
    with torch.no_grad():
        for p in params:
            p.copy_(best_state[id(p)])
            p.requires_grad_(False)
    return {"batches": batches, "positions": len(train), "heldout_positions": n_held, "lr": lr,
            "steps": steps, "best_step": best_step, "mlm_loss_first": first, "mlm_loss_last": best}


# ------------------------------------------------------------------------------------------- the student
def build_mlm_student(teacher, tokenizer, layers: int, layer_map: str, seed: int):
    """Depth-reduced copy of the teacher's body (``build_student``) plus the teacher's MLM head."""
    from transformers import AutoModel, AutoModelForMaskedLM

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
    missing, unexpected = student.load_state_dict(get_adapter(teacher).mlm_head_state(teacher), strict=False)
    require(not unexpected, f"Teacher head weights did not fit the student: {unexpected[:3]}.")
    student.tie_weights()
    provenance = built.provenance.model_copy(update={"task": "mlm", "copied": [*built.provenance.copied, "mlm head"]})
    return student, provenance


# ------------------------------------------------------------------------------------------- data
def check_corpus(files: Sequence[str | Path]) -> list[Path]:
    """The corpus files, each existing and UTF-8 (one sentence on the first bad line otherwise)."""
    require(files, "Pass at least one --corpus file.")
    for f in files:
        require(Path(f).is_file(), f"Corpus file {f} does not exist; pass plain-text files, one sentence per line.")
        check_utf8_text(f)
    require(any(line.strip() for f in files for line in Path(f).open(encoding="utf-8")),
            f"The corpus ({', '.join(map(str, files))}) has no non-empty line; pass text, one sentence per line.")
    return [Path(f) for f in files]


def load_corpus(files: Sequence[str], tokenizer, max_length: int, validation_fraction: float, seed: int,
                max_lines: int | None = None):
    """Tokenised train/validation DatasetDict from plain-text files (one sentence/document per line)."""
    from datasets import DatasetDict, load_dataset

    check_corpus(files)
    raw = load_dataset("text", data_files={"train": [str(f) for f in files]}, split="train")
    raw = raw.filter(lambda row: bool(row["text"].strip()))
    if max_lines is not None:
        raw = raw.select(range(min(max_lines, len(raw))))
    require(len(raw) >= 2, "The corpus needs at least two non-empty lines (one for training, one for validation).")
    split = raw.train_test_split(test_size=validation_fraction, seed=seed)

    def tokenize(batch):
        return {"input_ids": tokenizer(batch["text"], truncation=True, max_length=max_length)["input_ids"]}

    data = DatasetDict(train=split["train"], validation=split["test"]).map(
        tokenize, batched=True, remove_columns=["text"], desc="tokenising"
    )
    # lines of invisible characters (zero-width spaces, BOMs, control codes) pass the strip() above but
    # tokenise to special tokens alone: a student trained on them learns nothing (no token to mask)
    specials = set(tokenizer.all_special_ids)
    require(any(any(i not in specials for i in ids) for batch in data["train"].iter(batch_size=1000)
                for ids in batch["input_ids"]),
            f"The corpus ({', '.join(map(str, files))}) has no text: its training lines tokenise to special tokens "
            "only (whitespace or invisible characters); pass text, one sentence per line.")
    return data


# ------------------------------------------------------------------------------------------- the run
class LMDistillTrainer(PolydistillTrainer):
    """The core trainer with fixed validation masks, so validation losses compare across checkpoints."""

    def __init__(self, *args, eval_seed: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.eval_seed = eval_seed

    def evaluate(self, *args, **kwargs):
        collator = self.data_collator
        assert isinstance(collator, SmoothedMLMCollator)  # what lm-distill trains with
        with collator.seeded(self.eval_seed):
            return super().evaluate(*args, **kwargs)


# What decides a fitted head besides the teacher and the corpus: the fit's and the masking's settings.
HEAD_FIT_FIELDS = ("fit_teacher_head_steps", "fit_teacher_head_lr", "batch_size", "seed", "mlm_probability",
                   "mlm_smoothing", "max_length", "validation_fraction", "max_lines")


def _head_file(settings: LMDistillSettings, identity: dict[str, Any], work: Path) -> Path:
    """Where the fitted head is kept: the run's work dir, or ``teacher_head_dir`` under a name made of what
    decides the head, so runs that differ only in the distillation (weights, τ, steps) fit it once."""
    if settings.teacher_head_dir is None:
        return work / HEAD_FILE
    fit = {k: v for k, v in settings.identity().items() if k in HEAD_FIT_FIELDS}
    return Path(settings.teacher_head_dir) / f"teacher-head-{digest({**identity, **fit})}.pt"


def _teacher_head(teacher, has_head: bool, data, collator, settings: LMDistillSettings, head_file: Path):
    """(kind, record) of the teacher's MLM head; a fitted head is kept in ``head_file`` for a resume (and for
    other runs, when shared)."""
    if has_head:
        return "pretrained", {}
    if settings.fit_teacher_head_steps == 0:
        logger.warning("The teacher has no MLM head and --fit-teacher-head-steps is 0: the soft-target term is "
                       "dropped; training uses MLM (student head freshly initialised) and cosine only.")
        return "none (soft targets dropped)", {}
    with wait_lock(head_file):  # a run sharing the file fits it meanwhile: wait, then read it
        if head_file.is_file():  # fitted before (a resumed or another run): reuse it
            saved = torch.load(head_file, weights_only=True)
            teacher.load_state_dict(saved["state"], strict=False)
            return "fitted", saved["record"]
        with collator.seeded(settings.seed):
            record = fit_teacher_head(teacher, data["train"], collator, settings.fit_teacher_head_steps,
                                      settings.fit_teacher_head_lr, settings.batch_size, settings.seed)
        temporary = head_file.with_name(f".{head_file.name}.tmp")
        torch.save({"state": get_adapter(teacher).mlm_head_state(teacher), "record": record}, temporary)
        temporary.replace(head_file)
        logger.info("Teacher has no MLM head: fitted one on the frozen teacher (%s).", record)
        return "fitted", record


def lm_distill(teacher_source: str | Path, corpus: Sequence[str], settings: LMDistillSettings,
               callbacks: Sequence[Any] = ()) -> LMDistillResult:
    """Distil ``teacher_source`` into a ``settings.layers``-layer MLM student on the corpus files."""
    files = check_corpus(corpus)  # every input is checked before anything is written
    n_teacher = load_config(teacher_source).num_hidden_layers
    require(settings.layers <= n_teacher, f"--layers {settings.layers} exceeds the teacher's {n_teacher} layers.")
    tokenizer = load_tokenizer(teacher_source)
    torch.manual_seed(settings.seed)  # a missing MLM head is initialised reproducibly
    teacher, has_head = load_mlm_teacher(teacher_source)
    max_length = fit_max_length(settings.max_length, teacher)  # the student has the teacher's positions
    data = load_corpus([str(f) for f in files], tokenizer, max_length, settings.validation_fraction,
                       settings.seed, settings.max_lines)
    identity = {"teacher": {"source": str(teacher_source), "weights": model_digest(teacher)},
                "corpus": content_fingerprint(data, *map(str, files))}
    fingerprint = fingerprint_of("lm-distill", settings, identity)
    done = finished_result(settings.output_dir, fingerprint, "lm-distill", settings.overwrite)
    if done is not None:
        return _result(done, read_provenance(done.output_dir))
    check_output_dir(settings.output_dir, settings.overwrite)
    counts = token_counts(data["train"]["input_ids"], len(tokenizer))
    collator = SmoothedMLMCollator(tokenizer, masking_weights(counts, settings.mlm_smoothing, tokenizer.all_special_ids),
                                   settings.mlm_probability)
    with claimed_run(fingerprint, settings) as work:
        head, head_record = _teacher_head(teacher, has_head, data, collator, settings,
                                          _head_file(settings, identity, work))
        weights = settings.weights()
        if head.startswith("none"):
            weights["ce"] = 0.0
            require(any(w > 0 for w in weights.values()), "With the soft-target term dropped no loss term is left.")
        # Option B: the student starts from the teacher's freshly initialised (seeded) head.
        student, provenance = build_mlm_student(teacher, tokenizer, settings.layers, settings.layer_map, settings.seed)
        objective = [ActiveTerm(label, get_term(TERMS[label]), w) for label, w in weights.items() if w > 0]

        record = {
            "teacher": str(teacher_source), "corpus": [str(c) for c in corpus],
            "train_lines": len(data["train"]), "validation_lines": len(data["validation"]),
            "teacher_head": head, "teacher_head_fit": head_record, "loss_weights": weights,
            "settings": settings.model_dump(mode="json"),
        }
        teacher_provenance = read_provenance(resolve_model_dir(teacher_source))

        def finish(trainer, dev: dict[str, float]) -> dict[str, Any]:
            best = {k: dev[f"loss_{k}"] for k in TERMS if f"loss_{k}" in dev}
            done_record = {**record, "best_val_loss": dev["loss"], "best_val_terms": best,
                           "best_checkpoint": trainer.state.best_model_checkpoint,
                           "global_step": trainer.state.global_step}
            job.provenance = provenance.with_step(
                "lm_distill", done_record,
                **({"teacher_provenance": teacher_provenance.to_json()} if teacher_provenance else {}))
            return {"lm_distill": done_record}

        job = TrainingJob(
            stage="lm-distill", settings=settings, model=student, tokenizer=tokenizer,
            train_dataset=data["train"], eval_dataset=data["validation"], collator=collator, objective=objective,
            identity=identity, best_metric="loss", greater_is_better=False,
            trainer_class=LMDistillTrainer,
            trainer_kwargs={"teacher": teacher, "kd": KDSettings(pred_loss="kl", temperature=settings.temperature),
                            "prediction_positions": "tokens", "eval_objective": True,
                            "eval_seed": settings.seed + 1},
            argument_overrides={
                # the untrained student's validation terms: the baseline each should beat
                "eval_on_start": last_complete_checkpoint(work / "checkpoints") is None,
                "adam_epsilon": 1e-6,  # Singh et al. 2023, §4
                "prediction_loss_only": True,
            },
            callbacks=list(callbacks), provenance=provenance, source=str(teacher_source), record=record,
            finish=finish,
        )
        result = run_training(job)
    return _result(result, job.provenance)


def _result(result, provenance) -> LMDistillResult:
    record = (provenance.get("lm_distill") if provenance is not None else None) or {}
    return LMDistillResult(output_dir=result.output_dir, best_val_loss=record.get("best_val_loss", float("nan")),
                           best_val_terms=record.get("best_val_terms", {}),
                           teacher_head=record.get("teacher_head", "?"), log_history=result.log_history,
                           train_seconds=result.train_seconds, resumed_from=result.resumed_from)
