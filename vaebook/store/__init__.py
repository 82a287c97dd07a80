"""Trained models kept safely: the checkpoint folder (``checkpoints``, over the crash-safe files
of ``files``, the names and places of ``places`` and the safetensors format of ``tensorfile``),
the book's named models and what their records must say (``presets``, ``records``), and the run
files training resumes from (``runs``), and the figures stored beside the checkpoints (``figures``). Chapters write ``from vaebook import store``."""
from .checkpoints import load, manifest_entry, read_manifest, save, update_metrics
from .files import DEFAULT_ROOT, MANIFEST, CheckpointError, root_dir
from .presets import Preset, get_preset, make_presets
from .runs import ResumeError, RunFile, load_run

__all__ = ["load", "manifest_entry", "read_manifest", "save", "update_metrics", "DEFAULT_ROOT",
           "MANIFEST", "CheckpointError", "root_dir", "Preset", "get_preset", "make_presets", "ResumeError",
           "RunFile", "load_run"]
