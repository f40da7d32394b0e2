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
    def scores(
        self, x: npt.ArrayLike, window_s: float = 1.0, hop_s: Optional[float] = None
    ) -> Dict[str, npt.NDArray[np.float64]]: ...
    @property
    def priors(self) -> Dict[str, np.ndarray]: ...
    @property
    def n_channels(self) -> int: ...
    @property
    def n_sources(self) -> int: ...
    @property
    def sample_rate(self) -> int: ...
    @property
    def header(self) -> Dict[str, Any]: ...

def separate_options() -> List[Tuple[str, Optional[str], bool, List[str], str]]: ...
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
