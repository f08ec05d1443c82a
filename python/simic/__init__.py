"""simic from Python: the C++ session, presets and sinks (docs/python.md)."""
import torch  # noqa: F401  (LibTorch is loaded before the extension that links it)

from ._simic import JsonlSink, Session, Sink, TensorBoardSink, report  # noqa: F401

__all__ = ["JsonlSink", "Session", "Sink", "TensorBoardSink", "report"]
