"""simic from Python: the C++ session, presets and sinks (docs/python.md)."""
import collections.abc

import torch  # noqa: F401  (LibTorch is loaded before the extension that links it)

from ._simic import (  # noqa: F401
    JsonlSink,
    LayerList,
    Session,
    Sink,
    TensorBoardSink,
    gradient_health,
    layer_gradients,
    nan_inf_scan,
    process_measured_fields,
    report,
)

# isinstance(layers, Sequence); len, indexing and iteration are its own.
collections.abc.Sequence.register(LayerList)

__all__ = ["JsonlSink", "LayerList", "Session", "Sink", "TensorBoardSink", "gradient_health", "layer_gradients",
           "nan_inf_scan", "process_measured_fields", "report"]
