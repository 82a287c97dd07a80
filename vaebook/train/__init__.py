"""Training: what a run is (``config``: TrainConfig, History) and the one loop that runs it
(``loop``: ``fit``). The loop knows no file format: resuming goes through a run-file object
handed to ``fit`` (the store's :class:`vaebook.store.RunFile`)."""
from .config import OBJECTIVES, History, NonFiniteLossError, TrainConfig
from .loop import compute_loss, fit, pick_device, run_epoch

__all__ = ["OBJECTIVES", "History", "NonFiniteLossError", "TrainConfig", "compute_loss", "fit",
           "pick_device", "run_epoch"]
