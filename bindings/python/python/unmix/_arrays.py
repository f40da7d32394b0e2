"""The arrays and rates the engine takes, checked and converted once for every call."""

from typing import Any

import numpy as np


def as_frames(x: Any, name: str = "x") -> np.ndarray:
    """``x`` as the engine reads it: a C-ordered ``float32`` frames × channels array (``x``
    itself when it already is one). A 1-D array, complex numbers or a non-numeric array
    raise ``ValueError``."""
    array = np.asarray(x)
    if array.ndim != 2:
        raise ValueError(
            f"{name}: a frames × channels array is needed, got {array.ndim} dimension(s)"
            + (" (one channel is x.reshape(-1, 1))" if array.ndim == 1 else "")
        )
    if np.iscomplexobj(array) or not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise ValueError(f"{name}: real numbers are needed, got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.float32)


def sample_rate_of(value: Any) -> int:
    """``value`` as a sample rate: a positive whole number of hertz that fits 32 bits."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or not 0 < value < 2**32:
        raise ValueError(f"sample_rate: a positive whole number of hertz, not {value!r}")
    return int(value)
