# Type stubs of simic's Python module (docs/python.md).
from typing import Iterable, Literal, Mapping, Optional, Sequence, Tuple, TypedDict, Union

import torch

class Sink: ...

class JsonlSink(Sink):
    def __init__(self, path: str) -> None: ...

class TensorBoardSink(Sink):
    def __init__(self, log_dir: str) -> None: ...

class LayerList(Sequence[dict]):
    def __len__(self) -> int: ...
    def __getitem__(self, index: int) -> dict: ...  # type: ignore[override]

class Anomaly(TypedDict):
    kind: str
    severity: Literal["warning", "critical"]
    value: float
    threshold: float
    baseline: Optional[float]
    detail: str

class StepResult(TypedDict):
    action: Literal["proceed", "skip", "stop"]
    anomalies: list[Anomaly]
    level: Literal["OFF", "MINIMAL", "NORMAL", "DEBUG"]

NamedParameters = Union[torch.nn.Module, Iterable[Tuple[str, torch.Tensor]]]

class Session:
    def __init__(
        self,
        model_or_named_parameters: NamedParameters,
        sinks: Sequence[Sink] = ...,
        preset: Literal["ppo", "ppo_feedforward", "supervised", "reference"] = "ppo",
        *,
        level: Literal["OFF", "MINIMAL", "NORMAL", "DEBUG"] = "NORMAL",
        auto_escalate: bool = True,
        escalation_epochs: int = ...,
        escalation_checks: int = ...,
        missing_signal_checks: int = 1000,
        max_consecutive_skips: int = ...,
        skip_critical: bool = True,
        skip_on: Sequence[str] = (),
        pass_on: Sequence[str] = (),
        watch: Sequence[str] = (),
        ignore: Sequence[str] = (),
        queue_capacity: int = 8192,
        close_deadline_ms: int = ...,
    ) -> None: ...
    def step(
        self,
        *,
        loss: Optional[float] = None,
        approx_kl: Optional[float] = None,
        ratio_max: Optional[float] = None,
        ratio_min: Optional[float] = None,
        explained_variance: Optional[float] = None,
        performance: Optional[float] = None,
        reward_rate: Optional[float] = None,
        update_ratio: Optional[float] = None,
        host_module_ratio: Optional[float] = None,
        entropy: Optional[Mapping[str, float]] = None,
        progress: Optional[Tuple[int, int]] = None,
        user: Optional[Mapping[str, float]] = None,
    ) -> StepResult: ...
    def begin_update(self) -> None: ...
    def end_rollout(self, reward_rate: Optional[float] = None, explained_variance: Optional[float] = None) -> None: ...
    def lstm_state(self, h: torch.Tensor, c: torch.Tensor) -> None: ...
    def end_epoch(self, performance: Optional[float] = None) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> "Session": ...
    def __exit__(self, *args: object) -> None: ...

def gradient_health(model_or_named_parameters: NamedParameters) -> dict: ...
def layer_gradients(model_or_named_parameters: NamedParameters) -> dict: ...
def nan_inf_scan(model_or_named_parameters: NamedParameters, loss: Optional[float] = None) -> dict: ...
def report(events_path: str, html_path: str) -> None: ...

# The event fields measured of the process, not the training: what the same
# run's events may differ in (the JSONL "time" and process byte counts).
process_measured_fields: Tuple[str, ...]
