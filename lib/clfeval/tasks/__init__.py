"""Task types behind one interface (``tasks.base.Task``); ``task_for`` picks one.

Adding a task type is one new module here and its name in ``TASK_TYPES``.
"""

from __future__ import annotations

from clfeval.config import Config
from clfeval.tasks.base import Task
from clfeval.tasks.binary import BinaryTask
from clfeval.tasks.multiclass import MulticlassTask
from clfeval.tasks.multilabel import MultilabelTask

TASK_TYPES: dict[str, type[Task]] = {
    BinaryTask.type_name: BinaryTask,
    MulticlassTask.type_name: MulticlassTask,
    MultilabelTask.type_name: MultilabelTask,
}


def task_for(config: Config) -> Task:
    """The task of a validated config (``task.type``)."""
    return TASK_TYPES[config.task.type](config)


__all__ = ["TASK_TYPES", "BinaryTask", "MulticlassTask", "MultilabelTask", "Task", "task_for"]
