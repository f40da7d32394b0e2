"""Type stubs of the extension module `unmix._unmix` (the Rust half of the package)."""

from os import PathLike
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str
#: Frames a fit needs at the least.
MIN_TRAIN_FRAMES: int

_Path = Union[str, PathLike[str]]
_Frames = npt.NDArray[np.float32]

class Model:
    """A model saved by `unmix separate` (or by `Model.save`)."""

    @staticmethod
    def load(path: _Path) -> Model: ...
    @staticmethod
    def from_bytes(bytes: bytes) -> Model: ...
    def save(self, path: _Path) -> None: ...
    def to_bytes(self) -> bytes: ...
    def apply(self, x: npt.ArrayLike) -> _Frames: ...
    def reconstruct(self, sources: npt.ArrayLike) -> _Frames: ...
    def scores(
        self, x: npt.ArrayLike, window_s: Optional[float] = None, hop_s: Optional[float] = None
    ) -> Union[Dict[str, npt.NDArray[np.float64]], Any]:
        """A pandas DataFrame when pandas is installed, else a dict of columns."""
    @property
    def affine(self) -> Optional[Tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]: ...
    @property
    def priors(self) -> Dict[str, np.ndarray]: ...
    @property
    def n_channels(self) -> int: ...
    @property
    def n_sources(self) -> int: ...
    @property
    def sample_rate(self) -> int: ...
    @property
    def domain(self) -> str: ...
    @property
    def header(self) -> Dict[str, Any]: ...

class Monitor:
    """A structure's health monitor, as `unmix monitor` runs one."""

    @staticmethod
    def fit(
        head: npt.ArrayLike,
        sample_rate: int,
        *,
        baseline: Optional[Union[float, str]] = None,
        modes: Optional[int] = None,
        window: Optional[Union[float, str]] = None,
        hop: Optional[Union[float, str]] = None,
        environment_factors: Optional[int] = None,
        false_alarm_rate: Optional[float] = None,
        name: str = "x",
    ) -> Monitor: ...
    def assess(self, window: npt.ArrayLike, t_start: float = 0.0) -> Dict[str, Any]: ...
    @property
    def baseline(self) -> Dict[str, Any]: ...
    @property
    def baseline_frames(self) -> int: ...
    @property
    def window_frames(self) -> int: ...
    @property
    def hop_frames(self) -> int: ...
    @property
    def limit(self) -> float: ...
    @property
    def n_modes(self) -> int: ...
    @property
    def n_channels(self) -> int: ...
    @property
    def sample_rate(self) -> int: ...

def modes(
    x: _Frames,
    n_modes: int,
    sample_rate: int,
    blocks: int,
    reference: Optional[_Path],
    truth: Optional[_Frames],
    name: str,
) -> Tuple[_Frames, str]: ...
def separate_options() -> List[Tuple[str, Optional[str], str, List[str], bool, str]]: ...
def separate(
    x: _Frames,
    n_sources: str,
    sample_rate: int,
    options: List[Tuple[str, str]],
    name: str,
    progress: Optional[Callable[[str, bool, int, int, str], None]] = None,
) -> Tuple[_Frames, Model, str, List[str]]: ...
def read(path: _Path, csv_rate: Optional[int] = None) -> Tuple[_Frames, int]: ...
def write_wav(path: _Path, x: npt.ArrayLike, sample_rate: int) -> None: ...
