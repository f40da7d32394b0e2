"""A scikit-learn transformer around :func:`unmix.separate`: ``Unmix(n_components=3)``
fits like ``FastICA`` does and transforms with the fitted model's encoder.

Its parameters are ``n_components``, ``sample_rate`` and every option of
``unmix separate`` (:func:`unmix.separate_options`), with the command line's defaults.
"""

from __future__ import annotations

import inspect
from typing import Any, Optional

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from . import MIN_TRAIN_FRAMES, Model, as_frames, separate, separate_options

try:  # scikit-learn ≥ 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn

    def _validate_data(estimator: Any, X: Any, reset: bool = True, **kwargs: Any) -> np.ndarray:
        return estimator._validate_data(X, reset=reset, **kwargs)


_OPTIONS = separate_options()


class Unmix(TransformerMixin, BaseEstimator):
    """Separates the columns of ``X`` (samples × features, samples in time order) into
    ``n_components`` independent sources with unmix's model choice (the linear model at
    the linear optimum, or a nonlinear model where held-out frames say it explains them
    better; PDGMM-VAE with ``model="vae"``).

    Parameters are ``n_components`` (``None``: as many as features; ``"auto"``: estimated),
    ``sample_rate`` (hertz, ``None``: 1) and every option of ``unmix separate``.

    Attributes after ``fit``: ``model_`` (:class:`unmix.Model`, which ``save`` writes as
    ``unmix apply`` reads it), ``report_`` (``report.json``'s description of the fit),
    ``n_features_in_``, ``n_components_``.
    """

    def __init__(self, n_components: Any = None, *, sample_rate: Optional[int] = None, **options: Any) -> None:
        self.n_components = n_components
        self.sample_rate = sample_rate
        for name, option in _OPTIONS.items():
            setattr(self, name, options.pop(name, option.default))
        if options:
            raise TypeError(f"Unmix() got an unexpected keyword argument '{next(iter(options))}'")

    def _options(self) -> dict:
        return {name: getattr(self, name) for name in _OPTIONS}

    def fit(self, X: Any, y: Any = None) -> "Unmix":
        """Fits the model on ``X`` (samples × features)."""
        self._fit(X)
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """Fits on ``X`` and returns its sources (the fit's own pass over ``X``)."""
        return self._fit(X)

    def _fit(self, X: Any) -> np.ndarray:
        X = _validate_data(self, X, dtype=[np.float64, np.float32])
        if X.shape[0] < MIN_TRAIN_FRAMES:
            # The engine's own rule, said in scikit-learn's words.
            raise ValueError(
                f"Found array with {X.shape[0]} sample(s) (shape={X.shape}) while a minimum of "
                f"{MIN_TRAIN_FRAMES} is required by Unmix (frames to fit each source's prior on)."
            )
        n = X.shape[1] if self.n_components is None else self.n_components
        result = separate(as_frames(X), n, self.sample_rate, **self._options())
        self.model_ = result.model
        self.report_ = result.report
        self.n_components_ = result.model.n_sources
        return result.sources.astype(X.dtype, copy=False)

    def transform(self, X: Any) -> np.ndarray:
        """The sources of ``X`` under the fitted model."""
        check_is_fitted(self, "model_")
        X = _validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        return self.model_.apply(as_frames(X)).astype(X.dtype, copy=False)

    def inverse_transform(self, X: Any) -> np.ndarray:
        """The samples the fitted model's decoder reconstructs from sources ``X``: the
        input back for the linear model (its projection when there are fewer components
        than features), the decoder's mean for PDGMM-VAE."""
        check_is_fitted(self, "model_")
        sources = np.asarray(X)
        dtype = sources.dtype if sources.dtype in (np.float32, np.float64) else np.float64
        return self.model_.reconstruct(as_frames(sources, "X")).astype(dtype, copy=False)

    @property
    def components_(self) -> np.ndarray:
        """The unmixing matrix (components × features) of a fitted linear model: the
        sources are ``X @ components_.T + intercept_``. Absent for a nonlinear model."""
        return self._affine()[0]

    @property
    def intercept_(self) -> np.ndarray:
        """The sources' offset of a fitted linear model (see ``components_``)."""
        return self._affine()[1]

    @property
    def mixing_(self) -> np.ndarray:
        """The pseudo-inverse of ``components_`` (features × components): the mixing the
        linear model undoes."""
        return np.linalg.pinv(self._affine()[0])

    def _affine(self) -> Any:
        check_is_fitted(self, "model_")
        affine = self.model_.affine
        if affine is None:
            raise AttributeError(
                f"the fitted model ({self.report_['model']['chosen']}) is not linear: it has no unmixing matrix"
            )
        return affine

    def __sklearn_is_fitted__(self) -> bool:
        # Not scikit-learn's default test (any attribute ending in `_`): `lambda_` is a
        # parameter, the command line's `--lambda`.
        return hasattr(self, "model_")

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        # Samples are frames in time order: the temporal prior reads them so; the other
        # models treat them as independent.
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


# scikit-learn reads an estimator's parameters off its `__init__` signature: every option
# appears there, by name, with its default.
_parameters = [
    inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
    inspect.Parameter("n_components", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None),
    inspect.Parameter("sample_rate", inspect.Parameter.KEYWORD_ONLY, default=None),
] + [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=o.default) for name, o in _OPTIONS.items()]
Unmix.__init__.__signature__ = inspect.Signature(_parameters)  # type: ignore[attr-defined]

__all__ = ["Model", "Unmix"]
