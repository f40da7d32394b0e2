"""unmix: separate mixed multichannel signals into their independent sources.

The separation engine of the ``unmix`` command line on NumPy arrays (frames × channels):

- :func:`separate` fits a model on the head of a recording and separates all of it, as
  ``unmix separate`` does, with the same options (as keywords: ``max_train_frames`` is
  ``--max-train-frames``) and the same defaults, model choice and report;
- :class:`Model` reads and writes model files (``model.unmix``), applies them as
  ``unmix apply`` does, and scores windows as a monitor does;
- :func:`read` and :func:`write_wav` read WAV and CSV files and write WAV files as the
  command line does;
- :func:`modes` identifies a structure's modes from its sensors and :func:`monitor` (or a
  :class:`Monitor`) watches them window by window, as ``unmix modes`` and ``unmix
  monitor`` do (:mod:`unmix.structural`);
- :class:`unmix.sklearn.Unmix` is a scikit-learn transformer around both.

The work runs in Rust with the interpreter released; Ctrl-C stops a fit at its next epoch.
"""

from __future__ import annotations

import json
import keyword
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from . import _unmix
from ._unmix import MIN_TRAIN_FRAMES, Model, __version__, read, write_wav
from ._arrays import as_frames, sample_rate_of
from .structural import Modes, Monitor, Monitoring, modes, monitor

__all__ = [
    "MIN_TRAIN_FRAMES",
    "Model",
    "Modes",
    "Monitor",
    "Monitoring",
    "Separation",
    "UnmixWarning",
    "as_frames",
    "modes",
    "monitor",
    "read",
    "separate",
    "separate_options",
    "write_wav",
    "__version__",
]


class UnmixWarning(UserWarning):
    """What ``unmix separate`` warns of: a recording that looks convolutive, outliers left
    out of the fit."""


@dataclass(frozen=True)
class Option:
    """One keyword option of :func:`separate`: the command line's ``--name``."""

    #: The keyword: the option's name with ``_`` for ``-``, and a trailing ``_`` where it
    #: is a word of Python's (``lambda_`` is ``--lambda``).
    name: str
    #: The option's name on the command line, without its dashes, ``_`` for ``-``.
    option: str
    default: Any
    switch: bool
    #: What its value is: ``switch``, ``integer``, ``real`` or ``text``.
    kind: str
    choices: Tuple[str, ...]
    #: It takes a list (``hidden=[64, 64]``).
    takes_list: bool
    help: str


def _typed(text: Optional[str], kind: str) -> Any:
    """A default as the command line writes it, as the Python value that means the same."""
    if kind == "switch":
        return False
    if text is None:
        return None
    return {"integer": int, "real": float}.get(kind, str)(text)


def separate_options() -> Dict[str, Option]:
    """Every keyword option of :func:`separate`, by name, in ``unmix separate --help``'s
    order, with its default and help."""
    options = {}
    for option, default, kind, choices, is_list, help in _unmix.separate_options():
        name = option + "_" if keyword.iskeyword(option) else option
        default = _typed(default, kind)
        options[name] = Option(name, option, default, kind == "switch", kind, tuple(choices), is_list, help)
    return options


_OPTIONS = separate_options()


@dataclass
class Separation:
    """What :func:`separate` returns."""

    #: The sources, frames × sources (``float32``).
    sources: np.ndarray
    #: The fitted model: ``.apply`` separates other recordings, ``.save`` writes it.
    model: Model
    #: ``report.json``'s description of the fit: the model chosen and every candidate's
    #: held-out score, the training, the priors, the timings.
    report: Dict[str, Any]
    #: What the separation warned of (also issued as :class:`UnmixWarning`).
    warnings: List[str] = field(default_factory=list)


def _option_text(name: str, value: Any) -> Optional[str]:
    """An option's value as the command line writes it (``None``: left unset)."""
    option = _OPTIONS[name]
    if value is None:
        return None
    if option.switch:
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{name}: a switch is True or False, not {value!r}")
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}: not a switch; {value!r} is not one of its values")
    return str(value)


class _Progress:
    """Shows the fit's phases: a tqdm bar each when tqdm is installed, else a line each on
    the standard error."""

    def __init__(self) -> None:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            tqdm = None
        self._tqdm = tqdm
        self._bar: Any = None

    def __call__(self, phase: str, new_phase: bool, done: int, total: int, message: str) -> None:
        if self._tqdm is None:
            if new_phase:
                print(f"unmix: {phase} ({total} {message.split()[0]})", file=sys.stderr)
            return
        if new_phase or self._bar is None:
            self.close()
            self._bar = self._tqdm(total=total, desc=phase, leave=False)
        self._bar.n = min(done, total)
        self._bar.set_postfix_str(message.split("  ", 1)[-1], refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def separate(
    x: Any,
    n_sources: Union[int, str],
    sample_rate: Optional[int] = None,
    *,
    verbose: bool = False,
    progress: Optional[Callable[[str, bool, int, int, str], None]] = None,
    **options: Any,
) -> Separation:
    """Separates ``x`` (frames × channels) into ``n_sources`` sources as ``unmix separate``
    does: the model fitted on the head of ``x`` (``max_train_frames``, ``train_frames`` or
    ``train_seconds`` of it), then applied to all of it.

    ``n_sources`` is a count or ``"auto"``; ``sample_rate`` in hertz (``None``: the frames
    carry no rate, taken as 1 Hz). Every other keyword is an option of ``unmix separate``
    with the same name (``-`` as ``_``; ``lambda_`` for ``--lambda``) and the same default: :func:`separate_options`
    lists them with their help; ``None`` leaves one at its default. ``verbose`` shows the
    fit's progress (through tqdm when it is installed); ``progress(phase, new_phase, done,
    total, message)`` receives it instead.

    Bad input raises ``ValueError`` with the command line's one-line message; Ctrl-C stops
    the training at its next epoch and raises ``KeyboardInterrupt``.
    """
    array = as_frames(x)
    if isinstance(n_sources, (bool, np.bool_)) or not isinstance(n_sources, (int, np.integer, str)):
        raise ValueError(f"n_sources: a number of sources or 'auto', not {n_sources!r}")
    rate = 1 if sample_rate is None else sample_rate_of(sample_rate)
    unknown = next((name for name in options if name not in _OPTIONS), None)
    if unknown is not None:
        raise TypeError(f"separate() got an unexpected keyword argument '{unknown}'")
    pairs = [
        (_OPTIONS[name].option, text)
        for name, value in options.items()
        if (text := _option_text(name, value)) is not None
    ]
    shown = _Progress() if verbose and progress is None else None
    try:
        sources, model, report, said = _unmix.separate(
            array, str(n_sources), int(rate), pairs, "array", progress or shown
        )
    finally:
        if shown is not None:
            shown.close()
    for line in said:
        warnings.warn(line, UnmixWarning, stacklevel=2)
    return Separation(sources=sources, model=model, report=json.loads(report), warnings=list(said))


def _option_lines() -> str:
    lines = []
    for option in _OPTIONS.values():
        default = "" if option.default is None else f" (default {option.default!r})"
        choices = f" One of: {', '.join(option.choices)}." if option.choices else ""
        first = " ".join(option.help.split())
        lines.append(f"    {option.name}{default}: {first}{choices}")
    return "\n".join(lines)


separate.__doc__ = (separate.__doc__ or "") + "\n    Options:\n\n" + _option_lines() + "\n"
