"""`unmix.sklearn.Unmix` is a scikit-learn transformer: its parameters are the command
line's options, and it passes scikit-learn's estimator checks but those listed."""

import pickle

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.decomposition import FastICA  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import unmix  # noqa: E402
from conftest import mixture  # noqa: E402
from unmix.sklearn import Unmix  # noqa: E402


def test_parameters_are_the_options_with_their_defaults():
    params = Unmix().get_params()
    assert params["n_components"] is None and params["sample_rate"] is None
    for name, option in unmix.separate_options().items():
        assert params[name] == option.default, name
    changed = clone(Unmix(3, model="linear", seed=5)).get_params()
    assert (changed["n_components"], changed["model"], changed["seed"]) == (3, "linear", 5)
    with pytest.raises(TypeError, match="colour"):
        Unmix(colour="blue")


def test_fit_transform_separates_as_well_as_fastica():
    x, s = mixture(frames=6000, seed=21)
    ours = Unmix(3, model="linear").fit(x)
    sources = ours.transform(x)
    ica = FastICA(3, random_state=0, whiten="unit-variance").fit_transform(x)

    def abs_corr(estimate):
        c = np.abs(np.corrcoef(s.T, estimate.T)[:3, 3:])
        return c.max(axis=1).mean()

    assert abs_corr(sources) >= abs_corr(ica) - 0.002
    assert ours.n_components_ == 3 and ours.n_features_in_ == 3
    assert np.array_equal(ours.fit_transform(x), sources)
    again = pickle.loads(pickle.dumps(ours))
    assert np.array_equal(again.transform(x), sources)
    piped = make_pipeline(StandardScaler(), Unmix(3, model="linear")).fit_transform(x.astype(np.float64))
    assert piped.dtype == np.float64 and abs_corr(piped) > 0.99


# scikit-learn's checks fit on 10 to 100 samples; unmix fits a prior per source and needs
# MIN_TRAIN_FRAMES (256) frames for it, and says so. These checks cannot apply: each must
# fail with that message and no other (the same properties are tested below on data long
# enough); every other check must pass.
TOO_SHORT = "while a minimum of 256 is required by Unmix"
CHECKS_ON_TOO_FEW_SAMPLES = {
    name: f"fits on fewer than {unmix.MIN_TRAIN_FRAMES} samples"
    for name in [
        "check_fit_score_takes_y",
        "check_estimators_overwrite_params",
        "check_dont_overwrite_parameters",
        "check_estimators_fit_returns_self",
        "check_readonly_memmap_input",
        "check_n_features_in_after_fitting",
        "check_estimators_dtypes",
        "check_dtype_object",
        "check_pipeline_consistency",
        "check_estimators_nan_inf",
        "check_estimators_pickle",
        "check_f_contiguous_array_estimator",
        "check_transformer_data_not_an_array",
        "check_transformer_general",
        "check_transformer_preserve_dtypes",
        "check_methods_sample_order_invariance",
        "check_methods_subset_invariance",
        "check_fit2d_1feature",
        "check_dict_unchanged",
        "check_fit_idempotent",
        "check_fit_check_is_fitted",
        "check_n_features_in",
        "check_fit2d_predict1d",
    ]
}
# This one fits on iris (150 samples) and reports any ValueError in its own words.
CHECKS_ON_TOO_FEW_SAMPLES["check_positive_only_tag_during_fit"] = "fits on iris's 150 samples"
WORDED_BY_THE_CHECK = {"check_positive_only_tag_during_fit": "raised ValueError unexpectedly"}


def test_scikit_learn_estimator_checks():
    from sklearn.utils.estimator_checks import check_estimator

    results = check_estimator(Unmix(model="linear"), on_fail=None)
    failed = {}
    for r in results:
        if r["status"] == "failed":
            failed.setdefault(r["check_name"], []).append(str(r["exception"]))
    unexpected = {
        name: messages
        for name, messages in failed.items()
        if name not in CHECKS_ON_TOO_FEW_SAMPLES
        or not all(WORDED_BY_THE_CHECK.get(name, TOO_SHORT) in m for m in messages)
    }
    assert not unexpected, unexpected
    passed = {r["check_name"] for r in results if r["status"] == "passed"}
    assert len(passed) >= 15, sorted(passed)


def test_the_checks_properties_on_enough_samples():
    """What the checks above test on too few samples, on 2 000."""
    from sklearn.exceptions import NotFittedError

    x, _ = mixture(frames=2000, seed=22)
    estimator = Unmix(3, model="linear")
    with pytest.raises(NotFittedError):
        estimator.transform(x)
    params = estimator.get_params()
    assert estimator.fit(x) is estimator
    assert estimator.get_params() == params
    sources = estimator.transform(x)
    # Idempotent, order- and subset-invariant, every dtype and layout.
    assert np.array_equal(Unmix(3, model="linear").fit(x).transform(x), sources)
    order = np.random.default_rng(0).permutation(2000)
    assert np.array_equal(estimator.transform(x[order]), sources[order])
    assert np.array_equal(estimator.transform(x[:500]), sources[:500])
    assert estimator.transform(x.astype(np.float64)).dtype == np.float64
    assert np.array_equal(estimator.transform(np.asfortranarray(x)), sources)
    readonly = x.copy()
    readonly.setflags(write=False)
    assert np.array_equal(estimator.transform(readonly), sources)
    # Wrong width, NaN and Inf are refused.
    with pytest.raises(ValueError, match="features"):
        estimator.transform(x[:, :2])
    for bad in (np.nan, np.inf):
        y = x.astype(np.float64)
        y[3, 1] = bad
        with pytest.raises(ValueError):
            Unmix(3, model="linear").fit(y)
        with pytest.raises(ValueError):
            estimator.transform(y)


def test_a_linear_fit_has_its_matrices_and_inverts():
    x, _ = mixture(frames=3000, seed=23)
    x = x.astype(np.float64)
    estimator = Unmix(3, model="linear").fit(x)
    sources = estimator.transform(x)
    np.testing.assert_allclose(x @ estimator.components_.T + estimator.intercept_, sources, rtol=1e-4, atol=1e-4)
    assert estimator.mixing_.shape == (3, 3)
    back = estimator.inverse_transform(sources)
    assert back.dtype == np.float64
    np.testing.assert_allclose(back, x, rtol=1e-3, atol=1e-3 * x.std())
    vae = Unmix(3, model="vae", hidden=[8], epochs=5, restarts=1).fit(x)
    assert not hasattr(vae, "components_") and not hasattr(vae, "mixing_")
    assert vae.inverse_transform(vae.transform(x)).shape == x.shape
    assert not hasattr(Unmix(3), "components_")
