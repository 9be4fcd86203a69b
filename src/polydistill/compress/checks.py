"""compress, the refusals made up front: one sentence each (exit code 2), before anything is read or written
(the refusals that need the data are made while it is loaded: :mod:`polydistill.compress.data`)."""

from __future__ import annotations

from polydistill.architectures import get_adapter, task_of
from polydistill.compress.plan import (
    CompressSettings,
    candidate_architectures,
    plan_rounds,
    requested_architecture,
    split_steps,
    teacher_architecture,
)
from polydistill.compress.stages import check_kd_weights
from polydistill.data.load import get_adapter as dataset_adapter  # not the architecture's get_adapter
from polydistill.errors import require
from polydistill.student.layer_maps import explicit_length, resolve_layer_map

__all__ = ["check_upfront"]


def check_upfront(s: CompressSettings, config) -> None:
    """Refuse, before any data is read or anything written, what the settings and the teacher's ``config``
    rule out: a teacher without a task head, flags that exclude each other, sizes the teacher cannot give, KD
    weights and a layer map the stages would refuse, a prune-round count without distinct shapes or KD steps, a runtime without its packages, bench lengths beyond the
    teacher's positions, a bad hub repo id, an unlabelled source of the wrong form."""
    require(task_of(config) != "base", f"The teacher {s.teacher} has no task head (a bare encoder); fine-tune it "
                                       "first: polydistill finetune MODEL --dataset D --out teacher/.")
    require(not (s.target_speedup is not None and s.size),
            "Give either --size or --target-speedup (which picks the size by measured speed), not both.")
    require(not (s.budget_minutes is not None and s.training.max_steps),
            "Give either --budget-minutes (which fits the number of KD steps) or --max-steps, not both.")
    if s.target_speedup is not None:
        require(s.target_speedup > 1, f"--target-speedup {s.target_speedup:g} asks for no speed-up; give a factor "
                                      "above 1, e.g. 15.")
    teacher = teacher_architecture(config)
    if s.target_speedup is None:
        students = [requested_architecture(s, teacher)]  # refuses impossible sizes
    else:
        students = candidate_architectures(s, teacher)  # the plan stage picks one of these by measured speed

    require(s.heads != "auto" or s.target_speedup is not None,
            "--heads auto picks the head count by measured speed, which --target-speedup measures; add "
            "--target-speedup, or give a number (e.g. --heads 6).")
    # --kd-term, as the KD stage (the 5th) will resolve it: rel's and att's defaults depend on the student
    for width_changes, heads_change in sorted({(arch.changes_width(teacher), arch.changes_heads(teacher))
                                               for arch in students}, reverse=True):
        check_kd_weights(s.kd_weights, width_changes, heads_change)
    # --layer-map, as the depth stage will resolve it for the student's depth (known here unless the plan picks it)
    depths = sorted({arch.layers for arch in students})
    listed = explicit_length(s.layer_map)
    require(listed is None or len(depths) == 1,
            f"--layer-map {s.layer_map} lists {listed} teacher layers, a fixed depth, but --target-speedup picks the "
            f"student's depth by measured speed; add --layers {listed} (the speed-up search then keeps that depth) "
            "or give a named map such as alternate-last.")
    if s.layer_map.strip().lower() != "importance":
        resolve_layer_map(s.layer_map, teacher.layers, depths[0] if len(depths) == 1 else 1)
    # --prune-rounds: the rounds' shapes (known here unless the plan picks the student) and their KD steps
    if s.prune_rounds != 1:
        require(all(not arch.changes_heads(teacher) for arch in students),
                "--prune-rounds narrows every head round by round, which keeps the teacher's head count; drop "
                "--heads, or give --prune-rounds 1.")
        require(listed is None, f"--layer-map {s.layer_map} lists the teacher layers of one copy, but --prune-rounds "
                                "copies layers round by round from the previous student; give a named map such as "
                                "alternate-last, or importance.")
        rounds = len(plan_rounds(s.prune_rounds, teacher, students[0])[0]) if s.target_speedup is None else \
            s.prune_rounds if isinstance(s.prune_rounds, int) else 1
        split_steps(s.training, rounds)
    # --runtime: the int8 stage (the 6th) needs its packages
    if s.runtime == "onnx-int8-unfused":
        from polydistill.export.runtime import require_runtime

        require_runtime()
    elif s.runtime != "auto":  # auto times the runtimes this machine has
        from polydistill.export.runtimes import require_packages

        require_packages(s.runtime)

    limit = get_adapter(config).position_limit(config)
    too_long = [n for n in s.bench_lengths if limit and n > limit]
    require(not too_long, f"--bench-lengths {too_long} exceed the teacher's {limit} positions; pass shorter lengths.")
    if s.push_to_hub:
        from polydistill.hub import check_repo_id

        check_repo_id(s.push_to_hub)
    require(s.unlabelled_max is None or s.unlabelled_data,
            "--unlabelled-max caps --unlabelled-data; give the unlabelled data too, or drop --unlabelled-max.")
    if s.unlabelled_data:  # the source's form and dataset name, before any data is read
        from polydistill.data.unlabelled import parse_source

        kind, name, _ = parse_source(s.unlabelled_data)
        if kind == "dataset":
            dataset_adapter(name)
