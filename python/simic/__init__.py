"""simic from Python: the C++ session, presets and sinks (docs/python.md)."""
import torch  # noqa: F401  (LibTorch is loaded before the extension that links it)

from ._simic import (  # noqa: F401
    JsonlSink,
    Session,
    Sink,
    TensorBoardSink,
    gradient_health,
    layer_gradients,
    nan_inf_scan,
    report,
)

__all__ = ["JsonlSink", "Session", "Sink", "TensorBoardSink", "gradient_health", "layer_gradients", "nan_inf_scan",
           "report"]
