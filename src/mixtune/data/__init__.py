"""Data sources (GLUE folders, the hub, a user's files), low-resource sampling and batching."""

from mixtune.config import DataConfig
from mixtune.data.examples import Examples, TaskData, TaskSpec
from mixtune.data.files import load_user_files
from mixtune.data.glue import GLUE_TASKS, glue_task, load_glue
from mixtune.errors import MixtuneError


def load_task(config: DataConfig) -> TaskData:
    """The task named by the data config: a GLUE task, or the user's own files."""
    if config.train_file:
        return load_user_files(config)
    if not config.task:
        raise MixtuneError("no data given: pass --task (a GLUE task such as rte) or --train-file with your own data")
    return load_glue(config.task, config.data_dir)


__all__ = ["Examples", "TaskData", "TaskSpec", "GLUE_TASKS", "glue_task", "load_task"]
