"""Datasets, language partitions, stratified subsets and tokenisation.

Heavy imports (datasets, transformers) happen inside the functions, so importing this package is cheap.
"""

from polydistill.data.load import (
    DATA_ROOT_ENV,
    dataset_names,
    get_adapter,
    load_capped_task_data,
    load_task_data,
)
from polydistill.data.types import TaskData

__all__ = ["DATA_ROOT_ENV", "TaskData", "dataset_names", "get_adapter", "load_capped_task_data", "load_task_data"]
