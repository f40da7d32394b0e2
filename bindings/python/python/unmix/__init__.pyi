"""Type stub of the package `unmix` (written by bindings/python/stubgen.py: do not edit)."""

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Literal, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

from ._unmix import MIN_TRAIN_FRAMES as MIN_TRAIN_FRAMES
from ._unmix import Model as Model
from ._unmix import __version__ as __version__
from ._unmix import read as read
from ._unmix import write_wav as write_wav
from .structural import Modes as Modes
from .structural import Monitor as Monitor
from .structural import Monitoring as Monitoring
from .structural import modes as modes
from .structural import monitor as monitor

class UnmixWarning(UserWarning): ...

@dataclass(frozen=True)
class Option:
    name: str
    option: str
    default: Any
    switch: bool
    kind: str
    choices: Tuple[str, ...]
    takes_list: bool
    help: str

@dataclass
class Separation:
    sources: npt.NDArray[np.float32]
    model: Model
    report: Dict[str, Any]
    warnings: List[str]

def separate_options() -> Dict[str, Option]: ...
def as_frames(x: npt.ArrayLike, name: str = ...) -> npt.NDArray[np.float32]: ...
def separate(
    x: npt.ArrayLike,
    n_sources: Union[int, str],
    sample_rate: Optional[int] = None,
    *,
    verbose: bool = False,
    progress: Optional[Callable[[str, bool, int, int, str], None]] = None,
    max_sources: Optional[int] = None,
    train_seconds: Optional[float] = None,
    train_frames: Optional[int] = None,
    max_train_frames: Optional[int] = 131072,
    model: Optional[Literal['auto', 'vae', 'chain', 'linear', 'postnonlinear']] = 'auto',
    prior: Optional[Literal['auto', 'gmm', 'ar-gmm', 'laplace', 'gauss', 'low-rank']] = 'auto',
    domain: Optional[Literal['time', 'stft']] = 'time',
    stft_frame: Optional[int] = 2048,
    stft_hop: Optional[int] = 512,
    stft_iterations: Optional[int] = 50,
    stft_bases: Optional[int] = 2,
    stft_spatial_iterations: Optional[int] = 50,
    stft_components: Optional[int] = 8,
    stft_starts: Optional[int] = None,
    ar_order: Optional[int] = 8,
    no_whiten: bool = False,
    no_denoise: bool = False,
    components: Optional[int] = 4,
    hidden: Optional[Union[str, Sequence[Union[int, str]]]] = '32',
    activation: Optional[Literal['tanh', 'relu', 'leaky-relu', 'silu']] = 'tanh',
    beta: Optional[float] = 0.1,
    lambda_: Optional[float] = 1.0,
    restarts: Optional[int] = 4,
    restart_rounds: Optional[int] = 3,
    restart_epochs: Optional[int] = 8,
    threads: Optional[int] = 0,
    no_warm_start: bool = False,
    lr: Optional[float] = None,
    epochs: Optional[int] = 400,
    batch_size: Optional[int] = None,
    seed: Optional[int] = 0,
    backend: Optional[Literal['flex', 'ndarray']] = 'flex',
    device: Optional[Literal['cpu', 'gpu', 'auto']] = 'cpu',
    kernel: Optional[Literal['amx', 'avx512', 'avx2', 'portable']] = None,
) -> Separation: ...
