"""Writes python/unmix/__init__.pyi, the type stub of the package: every option of
`unmix separate` as a typed keyword of `separate` (its choices as a Literal), so that
editors complete and check them. The options come from the built extension:

    pip install ./bindings/python && python bindings/python/stubgen.py

`tests/test_stub.py` fails when the committed stub is not what this writes.
"""

from pathlib import Path

STUB = Path(__file__).resolve().parent / "python" / "unmix" / "__init__.pyi"

HEAD = '''"""Type stub of the package `unmix` (written by bindings/python/stubgen.py: do not edit)."""

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
'''


def annotation(option) -> str:
    """The Python type an option takes."""
    if option.switch:
        return "bool"
    if option.choices:
        kind = "Literal[" + ", ".join(repr(c) for c in option.choices) + "]"
    else:
        kind = {"integer": "int", "real": "float"}.get(option.kind, "str")
    if option.takes_list:
        kind = f"Union[{kind}, Sequence[Union[int, {kind}]]]"
    return f"Optional[{kind}]"


def render() -> str:
    import unmix

    lines = [HEAD.rstrip("\n")]
    for option in unmix.separate_options().values():
        default = repr(option.default)
        lines.append(f"    {option.name}: {annotation(option)} = {default},")
    lines.append(") -> Separation: ...")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    STUB.write_text(render())
    print(f"wrote {STUB}")
