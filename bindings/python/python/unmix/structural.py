"""Structural-health monitoring: a structure's modes from its sensors (``unmix modes``) and
a monitor that watches them window by window (``unmix monitor``), on NumPy arrays of
frames × sensors (accelerometers, strain gauges, …) under ambient excitation.

The same code as the command line's: the same arguments give the same modes, the same
damage indices and the same alarms, and the reports are its JSON (modes.json, and
``monitor``'s lines) as dicts.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

import numpy as np

from . import _unmix
from ._arrays import as_frames, sample_rate_of
from ._unmix import Monitor

__all__ = ["Modes", "Monitor", "Monitoring", "modes", "monitor"]

#: A duration as the command line takes it: seconds, or text such as ``"600s"``,
#: ``"10min"``, ``"1.5h"``.
Duration = Union[float, int, str]


def _count(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name}: a whole number, not {value!r}")
    return int(value)


@dataclass
class Modes:
    """What :func:`modes` returns."""

    #: Every mode's coordinate over the record, frames × modes (``float32``), lowest mode
    #: first: the record is ``Σ_j shape_j · coordinate_j`` plus what no mode explains.
    coordinates: np.ndarray
    #: modes.json's fields: the modes (frequency, damping ratio, shape, their standard
    #: errors, the fitted resonance), the demixing, the comparison with ``reference`` and
    #: the score against ``truth``.
    report: Dict[str, Any]

    @property
    def frequencies_hz(self) -> np.ndarray:
        """Every mode's natural frequency, in hertz."""
        return np.array([m["frequency_hz"] for m in self.report["modes"]])

    @property
    def damping_ratios(self) -> np.ndarray:
        """Every mode's damping ratio (a fraction of critical)."""
        return np.array([m["damping_ratio"] for m in self.report["modes"]])

    @property
    def shapes(self) -> np.ndarray:
        """The mode shapes, modes × sensors: unit length, largest entry positive."""
        return np.array([m["shape"] for m in self.report["modes"]])

    @property
    def demixing(self) -> np.ndarray:
        """The demixing of the sensors (after removing each one's mean), modes × sensors."""
        return np.array(self.report["demixing"])

    def to_frame(self) -> Any:
        """The modes as a pandas DataFrame, one row per mode: frequency, damping ratio,
        their standard errors (NaN without blocks), the coordinate's RMS and the shape."""
        import pandas as pd

        rows = []
        for j, m in enumerate(self.report["modes"]):
            row = {
                "mode": j + 1,
                "frequency_hz": m["frequency_hz"],
                "frequency_std_hz": _nan(m.get("frequency_std_hz")),
                "damping_ratio": m["damping_ratio"],
                "damping_std": _nan(m.get("damping_std")),
                "rms": m["rms"],
            }
            row.update({f"shape_{c + 1}": v for c, v in enumerate(m["shape"])})
            rows.append(row)
        return pd.DataFrame(rows).set_index("mode")


def _nan(value: Optional[float]) -> float:
    return float("nan") if value is None else float(value)


def modes(
    x: Any,
    n_modes: int,
    sample_rate: int,
    *,
    blocks: int = 4,
    reference: Optional[Union[str, "os.PathLike[str]"]] = None,
    truth: Any = None,
) -> Modes:
    """Identifies ``n_modes`` modes of a structure from ``x`` (frames × sensors, at
    ``sample_rate`` hertz) as ``unmix modes`` does: natural frequencies, damping ratios
    and mode shapes with their standard errors (from ``blocks`` contiguous blocks, each
    identified on its own; fewer than 2 or blocks under 4 000 frames: none), and every
    mode's coordinate.

    ``reference`` (a modes.json of an earlier run, or the meta.json of ``unmix synth shm``)
    is compared with by MAC, frequency and damping; ``truth`` (frames × modes) scores the
    coordinates. Bad input raises ``ValueError`` with the command line's message (``OSError``
    for a reference file that cannot be read).
    """
    array = as_frames(x, "x")
    truth_array = None if truth is None else as_frames(truth, "truth")
    n = _count(n_modes, "n_modes")
    coordinates, report = _unmix.modes(
        array, n, sample_rate_of(sample_rate), _count(blocks, "blocks"), reference, truth_array, "x"
    )
    return Modes(coordinates=coordinates, report=json.loads(report))


@dataclass
class Monitoring:
    """What :func:`monitor` returns: ``unmix monitor``'s JSON lines as dicts."""

    #: The monitor fitted on the baseline: ``assess`` goes on with later windows.
    monitor: Monitor
    #: The baseline's line: its modes, windows, control limit.
    baseline: Dict[str, Any]
    #: One line per window after the baseline: its modes (frequency and its change from
    #: the baseline, damping, MAC), damage index, alarm, bad frames, dead channels.
    windows: List[Dict[str, Any]] = field(default_factory=list)
    #: The summary line: windows, alarms, unusable windows, the first alarm's start.
    summary: Dict[str, Any] = field(default_factory=dict)

    @property
    def alarms(self) -> np.ndarray:
        """Whether each window alarmed."""
        return np.array([w["alarm"] for w in self.windows], dtype=bool)

    @property
    def damage_index(self) -> np.ndarray:
        """Each window's damage index (NaN for an unusable window)."""
        return np.array([_nan(w["damage_index"]) for w in self.windows])

    def to_frame(self) -> Any:
        """The windows as a pandas DataFrame, one row each: start and end (s), damage index,
        limit, alarm, reconstruction error, bad frames, why unusable, and per mode its
        frequency, frequency change (%), damping ratio and MAC (NaN when unusable)."""
        import pandas as pd

        n = len(self.baseline["modes"])
        rows = []
        for w in self.windows:
            row = {
                "t_start": w["t_start"],
                "t_end": w["t_end"],
                "damage_index": _nan(w["damage_index"]),
                "limit": w["limit"],
                "alarm": w["alarm"],
                "reconstruction_error": _nan(w["reconstruction_error"]),
                "bad_frames": w["bad_frames"],
                "unusable": w["unusable"],
            }
            for j in range(n):
                mode = (w["modes"] or [{}] * n)[j]
                for key in ("frequency_hz", "frequency_change_percent", "damping_ratio", "mac"):
                    row[f"{key}_{j + 1}"] = _nan(mode.get(key))
            rows.append(row)
        return pd.DataFrame(rows)


def monitor(
    x: Any,
    sample_rate: int,
    baseline: Duration,
    *,
    modes: Optional[int] = None,
    window: Optional[Duration] = None,
    hop: Optional[Duration] = None,
    environment_factors: Optional[int] = None,
    false_alarm_rate: Optional[float] = None,
) -> Monitoring:
    """Watches a structure's sensors as ``unmix monitor`` does: a modal baseline fitted on
    the first ``baseline`` of ``x`` (frames × sensors, at ``sample_rate`` hertz; it should
    span the environment's range), then every window after it — ``window`` long (default
    60 s), one every ``hop`` (default: the window) — assessed against it.

    The options are ``unmix monitor``'s: durations in seconds or as text (``"10min"``);
    ``None`` leaves one at the command line's default (``modes``: one per channel,
    ``environment_factors`` 1, ``false_alarm_rate`` 0.01). NaN samples are dropouts: a
    window's line counts them, and one with too many is unusable rather than an error.
    """
    array = as_frames(x, "x")
    fitted = Monitor.fit(
        array,
        sample_rate_of(sample_rate),
        baseline=baseline,
        modes=modes,
        window=window,
        hop=hop,
        environment_factors=environment_factors,
        false_alarm_rate=false_alarm_rate,
    )
    rate = fitted.sample_rate
    size, hop_frames = fitted.window_frames, fitted.hop_frames
    lines = []
    start = fitted.baseline_frames
    while start + size <= array.shape[0]:
        lines.append(fitted.assess(array[start : start + size], t_start=start / rate))
        start += hop_frames
    alarmed = [w["t_start"] for w in lines if w["alarm"]]
    summary = {
        "kind": "summary",
        "t_end": array.shape[0] / rate,
        "windows": len(lines),
        "alarms": len(alarmed),
        "unusable_windows": sum(w["modes"] is None for w in lines),
        "first_alarm_t_start": alarmed[0] if alarmed else None,
    }
    return Monitoring(monitor=fitted, baseline=fitted.baseline, windows=lines, summary=summary)
