"""SHAP on the raw clinical features: exactness against shap's own Exact explainer, additivity, the
Shapley axioms, the permutation sampler, and the clinician-facing reasons.

Everything is built here from numpy (synthetic Cleveland-like frame, seeded random networks), so these
tests depend only on the schema, preprocessing and network contracts."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import core.explain.explanation as explanation_mod
import core.explain.shapley as explain_mod
from core.explain import (Explanation, background_sample, explain, global_importance, reasons, reasons_frame,
                          shap_frame, shapley_weights)
from core.model import Network
from core.model import Preprocessor
from core.data import Feature, Schema, cleveland_schema

NUMERIC_RANGES = {"age": (29, 77), "trestbps": (94, 200), "chol": (126, 564), "thalach": (71, 202),
                  "oldpeak": (0.0, 6.2)}


def synthetic_cleveland(n: int = 120, seed: int = 0) -> pd.DataFrame:
    """A Cleveland-shaped frame: numbers within clinical ranges, codes from the schema, a few missing."""
    rng = np.random.default_rng(seed)
    schema = cleveland_schema()
    data = {}
    for f in schema.model_features:
        if f.name in NUMERIC_RANGES:
            lo, hi = NUMERIC_RANGES[f.name]
            values = rng.uniform(lo, hi, n)
            data[f.name] = np.round(values, 1 if f.name == "oldpeak" else 0)
        else:
            data[f.name] = rng.choice(np.array(f.code_values(), dtype=float), n)
    frame = pd.DataFrame(data)
    frame.loc[rng.choice(n, 3, replace=False), "ca"] = np.nan
    frame.loc[rng.choice(n, 2, replace=False), "thal"] = np.nan
    frame.loc[rng.choice(n, 2, replace=False), "chol"] = np.nan
    return frame


def random_network(n_inputs: int, hidden=(10, 5), activation="relu", seed=0, scale=1.0) -> Network:
    rng = np.random.default_rng(seed)
    sizes = [n_inputs, *hidden, 1]
    layers = [(rng.normal(0, scale / np.sqrt(a), (a, b)), rng.normal(0, 0.3, b)) for a, b in zip(sizes[:-1], sizes[1:])]
    return Network(layers=layers, activation=activation)


@pytest.fixture(scope="module")
def cleveland():
    schema = cleveland_schema()
    frame = synthetic_cleveland()
    pre = Preprocessor(schema).fit(frame)
    raw = pre.encode(frame)
    return schema, pre, raw


def model_output(pre: Preprocessor, nets) -> callable:
    """The explained function as a user would write it: raw matrix -> mean probability."""
    return lambda raw: np.mean([net.proba(pre.transform_raw(raw)) for net in nets], axis=0)


def shap_exact(pre, nets, rows, background):
    import shap
    masker = shap.maskers.Independent(background, max_samples=background.shape[0])
    result = shap.explainers.Exact(model_output(pre, nets), masker)(rows, silent=True)
    return np.asarray(result.values), np.asarray(result.base_values)


# ---- exactness and additivity ------------------------------------------------------------------

@pytest.mark.parametrize("activation,hidden", [("relu", (10, 5)), ("tanh", (10, 5)), ("sigmoid", (6,)),
                                               ("relu", ())])  # () = logistic regression
def test_exact_matches_shap_exact_explainer(cleveland, activation, hidden):
    schema, pre, raw = cleveland
    net = random_network(pre.n_outputs_, hidden=hidden, activation=activation, seed=1, scale=2.0)
    background = background_sample(raw, size=40, seed=3)
    rows = raw[[0, 5, 17]]
    expl = explain(pre, [net], rows, background)
    assert expl.method == "exact"
    ours_shap, theirs_base = shap_exact(pre, [net], rows, background)
    np.testing.assert_allclose(expl.shap_values, ours_shap, atol=1e-6, rtol=0)
    np.testing.assert_allclose(expl.base_value, theirs_base, atol=1e-6, rtol=0)
    assert np.abs(expl.shap_values).max() > 1e-3  # a real comparison, not zeros against zeros


@pytest.mark.parametrize("method", ["exact", "permutation"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_additivity_and_output(cleveland, method, activation):
    schema, pre, raw = cleveland
    net = random_network(pre.n_outputs_, activation=activation, seed=2, scale=2.0)
    background = background_sample(raw, size=60)
    rows = raw[:25]
    expl = explain(pre, [net], rows, background, method=method, n_permutations=16)
    assert expl.shap_values.shape == (25, 13) and expl.output.shape == (25,)
    np.testing.assert_allclose(expl.base_value + expl.shap_values.sum(axis=1), expl.output, atol=1e-6, rtol=0)
    # output and base are the model's own probabilities (the network reads float32 inputs: ~1e-7)
    np.testing.assert_allclose(expl.output, net.proba(pre.transform_raw(rows)), atol=1e-6)
    assert expl.base_value == pytest.approx(float(net.proba(pre.transform_raw(background)).mean()), abs=1e-6)


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_float32_games_stay_within_1e_6(cleveland, activation):
    """The float32 lever (bench/_batch.py): additivity within 1e-6 and the values within 1e-6 of float64;
    the default stays float64, the numbers every page shows."""
    schema, pre, raw = cleveland
    net = random_network(pre.n_outputs_, activation=activation, seed=3, scale=2.0)
    background = background_sample(raw, size=80)
    exact = explain(pre, [net, random_network(pre.n_outputs_, activation=activation, seed=4)], raw[:40], background)
    fast = explain(pre, [net, random_network(pre.n_outputs_, activation=activation, seed=4)], raw[:40], background,
                   precision="float32")
    assert np.abs(fast.base_value + fast.shap_values.sum(axis=1) - fast.output).max() <= 1e-6
    assert np.abs(fast.shap_values - exact.shap_values).max() <= 1e-6
    assert np.abs(fast.shap_values - exact.shap_values).max() > 0  # the games really ran in float32
    np.testing.assert_array_equal(fast.output, exact.output)  # the risk itself is float64 either way
    with pytest.raises(ValueError, match="precision"):
        explain(pre, [net], raw[:2], background, precision="float16")


def test_ensemble_is_mean_of_networks(cleveland):
    schema, pre, raw = cleveland
    nets = [random_network(pre.n_outputs_, seed=4, scale=2.0),
            random_network(pre.n_outputs_, hidden=(8,), activation="tanh", seed=5, scale=2.0)]
    background = background_sample(raw, size=30, seed=1)
    rows = raw[[3, 9]]
    both = explain(pre, nets, rows, background)
    single = [explain(pre, [n], rows, background) for n in nets]
    np.testing.assert_allclose(both.shap_values, (single[0].shap_values + single[1].shap_values) / 2, atol=1e-12)
    np.testing.assert_allclose(both.output, model_output(pre, nets)(rows), atol=1e-6)
    np.testing.assert_allclose(both.base_value + both.shap_values.sum(1), both.output, atol=1e-6, rtol=0)
    theirs, _ = shap_exact(pre, nets, rows, background)
    np.testing.assert_allclose(both.shap_values, theirs, atol=1e-6, rtol=0)


def test_single_network_accepted_and_row_vector(cleveland):
    schema, pre, raw = cleveland
    net = random_network(pre.n_outputs_, seed=6)
    background = raw[:20]
    one = explain(pre, net, raw[7], background)
    many = explain(pre, [net], raw[5:9], background)
    assert one.shap_values.shape == (1, 13)
    np.testing.assert_allclose(one.shap_values[0], many.shap_values[2], atol=1e-12)


def test_chunking_does_not_change_values(cleveland, monkeypatch):
    schema, pre, raw = cleveland
    net = random_network(pre.n_outputs_, seed=7, scale=2.0)
    background = background_sample(raw, size=50)
    rows = raw[:12]
    reference = {m: explain(pre, [net], rows, background, method=m, n_permutations=8) for m in ("exact", "permutation")}
    monkeypatch.setattr(explain_mod, "_BLOCK", 700)  # forces row, pair and background chunks
    for m, ref in reference.items():
        for threads in (1, 3):
            again = explain(pre, [net], rows, background, method=m, n_permutations=8, n_threads=threads)
            np.testing.assert_allclose(again.shap_values, ref.shap_values, atol=1e-12)


def test_many_rows_are_split_over_the_cores_this_process_may_use(cleveland, monkeypatch):
    """The thread count comes from the machine (its CPU affinity), not from a constant for 2-core machines."""
    schema, pre, raw = cleveland
    threads = []
    by_rows = explain_mod._by_rows
    monkeypatch.setattr(explain_mod, "_by_rows", lambda *args: threads.append(args[-1]) or by_rows(*args))
    monkeypatch.setattr(explain_mod.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5})
    net = random_network(pre.n_outputs_, seed=2)
    many = explain(pre, [net], raw[:64], raw[64:84])
    assert threads == [6]
    few = explain(pre, [net], raw[:10], raw[64:84])
    assert threads == [6, 1]  # a few rows are not worth a thread pool
    np.testing.assert_allclose(few.shap_values, many.shap_values[:10], atol=1e-12)


def test_in_place_forward_pass_equals_the_network(cleveland, monkeypatch):
    schema, pre, raw = cleveland
    nets = [random_network(pre.n_outputs_, activation=a, seed=20 + k, scale=2.0)
            for k, a in enumerate(("relu", "tanh", "sigmoid"))]
    background = background_sample(raw, size=40)
    fast = {m: explain(pre, nets, raw[:6], background, method=m, n_permutations=8) for m in ("exact", "permutation")}
    monkeypatch.setattr(explain_mod, "_INPLACE_ACTIVATIONS", ())  # every layer through Network.proba_from_first
    for m, ref in fast.items():
        plain = explain(pre, nets, raw[:6], background, method=m, n_permutations=8)
        np.testing.assert_allclose(plain.shap_values, ref.shap_values, atol=1e-12)


def test_missing_value_is_explained_as_the_imputed_value(cleveland):
    schema, pre, raw = cleveland
    net = random_network(pre.n_outputs_, seed=8, scale=2.0)
    j = pre.feature_names.index("chol")
    row = raw[2].copy()
    row[j] = np.nan
    filled = row.copy()
    filled[j] = pre.fill_[j]
    a = explain(pre, [net], row, raw[:40])
    b = explain(pre, [net], filled, raw[:40])
    np.testing.assert_allclose(a.shap_values, b.shap_values, atol=1e-12)
    assert np.isnan(a.raw[0, j])  # the explanation keeps what the patient file said


# ---- Shapley axioms ----------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["exact", "permutation"])
def test_feature_ignored_by_the_network_gets_zero(cleveland, method):
    schema, pre, raw = cleveland
    net = random_network(pre.n_outputs_, seed=9, scale=2.0)
    for name in ("cp", "chol"):  # a one-hot group and a number
        net.layers[0][0][pre.slices_[pre.feature_names.index(name)]] = 0.0
    expl = explain(pre, [net], raw[:10], background_sample(raw, 50), method=method, n_permutations=8)
    for name in ("cp", "chol"):
        assert np.all(expl.shap_values[:, pre.feature_names.index(name)] == 0.0)
    assert np.abs(expl.shap_values).sum() > 0.01


def test_feature_equal_to_every_background_row_gets_zero(cleveland):
    schema, pre, raw = cleveland
    net = random_network(pre.n_outputs_, seed=10, scale=2.0)
    background = raw[:30].copy()
    j = pre.feature_names.index("sex")
    background[:, j] = 1.0
    row = raw[40].copy()
    row[j] = 1.0
    expl = explain(pre, [net], row, background)
    assert expl.shap_values[0, j] == 0.0


def small_numeric_setup(n_features: int, seed: int = 0):
    features = [Feature(name=f"x{k}", kind="numeric", label=f"Marker {k}", unit="mg/dl", step=1)
                for k in range(n_features)]
    schema = Schema(features=features)
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(100, 15, (80, n_features)), columns=[f.name for f in features])
    pre = Preprocessor(schema).fit(frame)
    return schema, pre, pre.encode(frame)


def test_symmetric_features_get_equal_values():
    schema, pre, raw = small_numeric_setup(4, seed=1)
    raw[:, 1] = raw[:, 0]  # x0 and x1: same values everywhere ...
    pre.fit(pd.DataFrame(raw, columns=pre.feature_names))
    net = random_network(pre.n_outputs_, seed=11, scale=2.0)
    net.layers[0][0][1] = net.layers[0][0][0]  # ... and the same weights: interchangeable players
    expl = explain(pre, [net], raw[:6], raw[10:60], method="exact")
    np.testing.assert_allclose(expl.shap_values[:, 0], expl.shap_values[:, 1], atol=1e-12)
    assert np.abs(expl.shap_values[:, 0]).max() > 1e-3
    assert not np.allclose(expl.shap_values[:, 0], expl.shap_values[:, 2])


def test_shapley_weights_telescope():
    for q in (1, 2, 5, 13):
        A = shapley_weights(q)
        assert A.shape == (1 << q, q)
        col_sums = A.sum(axis=1)
        expected = np.zeros(1 << q)
        expected[0], expected[-1] = -1.0, 1.0
        np.testing.assert_allclose(col_sums, expected, atol=1e-12)
    # a 2-player game: phi_0 = (v(0)-v() + v(01)-v(1))/2
    v = np.array([0.0, 1.0, 3.0, 10.0])
    np.testing.assert_allclose(shapley_weights(2).T @ v, [(1.0 + 7.0) / 2, (3.0 + 9.0) / 2])


# ---- permutation sampling ----------------------------------------------------------------------

def test_permutation_converges_to_exact(cleveland):
    schema, pre, raw = cleveland
    net = random_network(pre.n_outputs_, activation="tanh", seed=12, scale=2.0)
    background = background_sample(raw, size=25, seed=2)
    rows = raw[[1, 2]]
    exact = explain(pre, [net], rows, background, method="exact").shap_values
    errors = {}
    for n_perm in (4, 1000):
        sampled = explain(pre, [net], rows, background, method="permutation", n_permutations=n_perm, seed=3)
        assert sampled.n_permutations == n_perm
        errors[n_perm] = np.abs(sampled.shap_values - exact).max()
    assert errors[1000] < 0.05 * np.abs(exact).max()
    assert errors[1000] < errors[4]


def test_permutation_is_seeded(cleveland):
    schema, pre, raw = cleveland
    net = random_network(pre.n_outputs_, seed=13, scale=2.0)
    args = (pre, [net], raw[:3], raw[50:90])
    a = explain(*args, method="permutation", n_permutations=6, seed=1).shap_values
    b = explain(*args, method="permutation", n_permutations=6, seed=1).shap_values
    c = explain(*args, method="permutation", n_permutations=6, seed=2).shap_values
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_many_features_use_permutation_and_stay_additive():
    schema, pre, raw = small_numeric_setup(17, seed=2)
    net = random_network(pre.n_outputs_, seed=14, scale=2.0)
    expl = explain(pre, [net], raw[:5], raw[20:70], n_permutations=20)
    assert expl.method == "permutation" and expl.shap_values.shape == (5, 17)
    np.testing.assert_allclose(expl.base_value + expl.shap_values.sum(1), expl.output, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="permutation"):
        small = small_numeric_setup(21)
        explain(small[1], [random_network(21)], small[2][:1], small[2][:5], method="exact")


def test_bad_shapes_are_refused(cleveland):
    schema, pre, raw = cleveland
    net = random_network(pre.n_outputs_)
    with pytest.raises(ValueError, match="13 columns"):
        explain(pre, [net], raw[:2, :12], raw[:10])
    with pytest.raises(ValueError, match="background"):
        explain(pre, [net], raw[:2], raw[:0])
    with pytest.raises(ValueError, match="method"):
        explain(pre, [net], raw[:2], raw[:10], method="kernel")


# ---- background, tables, reasons ---------------------------------------------------------------

def test_background_sample_is_deterministic_subset():
    raw = np.arange(1000 * 3, dtype=float).reshape(1000, 3)
    a = background_sample(raw, size=100, seed=0)
    assert a.shape == (100, 3)
    np.testing.assert_array_equal(a, background_sample(raw, size=100, seed=0))
    assert not np.array_equal(a, background_sample(raw, size=100, seed=1))
    assert len({tuple(r) for r in a}) == 100 and set(a[:, 0]).issubset(set(raw[:, 0]))
    np.testing.assert_array_equal(background_sample(raw[:40], size=100), raw[:40])
    assert background_sample(raw, size=10_000).shape[0] == explanation_mod.MAX_BACKGROUND


def test_global_importance_and_shap_frame(cleveland):
    schema, pre, raw = cleveland
    net = random_network(pre.n_outputs_, seed=15, scale=2.0)
    expl = explain(pre, [net], raw[:8], raw[60:100])
    imp = global_importance(expl)
    assert list(imp.columns) == ["feature", "mean_abs_shap"]
    assert sorted(imp["feature"]) == sorted(pre.feature_names)
    assert imp["mean_abs_shap"].is_monotonic_decreasing
    top = imp["feature"].iloc[0]
    assert imp["mean_abs_shap"].iloc[0] == pytest.approx(np.abs(expl.shap_values[:, pre.feature_names.index(top)]).mean())
    tidy = shap_frame(expl)
    assert list(tidy.columns) == ["row", "feature", "value", "shap_value"] and len(tidy) == 8 * 13
    line = tidy[(tidy.row == 3) & (tidy.feature == "thalach")].iloc[0]
    j = pre.feature_names.index("thalach")
    assert line.value == expl.raw[3, j] and line.shap_value == expl.shap_values[3, j]


def thalach_cp_network(pre) -> Network:
    """A network that reads only max heart rate (strongly) and chest-pain type (weakly)."""
    net = random_network(pre.n_outputs_, seed=16, scale=1.0)
    W1 = net.layers[0][0]
    keep = np.zeros(W1.shape[0], dtype=bool)
    keep[pre.slices_[pre.feature_names.index("thalach")]] = True
    keep[pre.slices_[pre.feature_names.index("cp")]] = True
    W1[~keep] = 0.0
    W1[pre.slices_[pre.feature_names.index("thalach")]] *= 6.0
    return net


def test_reasons_text_order_and_points(cleveland):
    schema, pre, raw = cleveland
    net = thalach_cp_network(pre)
    row = raw[4].copy()
    row[pre.feature_names.index("thalach")] = 108.0
    row[pre.feature_names.index("cp")] = pre.encode_value(pre.feature_names.index("cp"), 4.0)
    expl = explain(pre, [net], row, raw[20:120])
    found = reasons(expl, 0, schema, pre, top=3)
    # only the two features the network reads are reasons; the largest |shap| first
    assert [r.feature for r in found] == ["thalach", "cp"]
    assert abs(found[0].shap) >= abs(found[1].shap) > 0
    for r in found:
        assert r.points == int(np.sign(r.shap) * np.floor(abs(r.shap) * 100 + 0.5))
    first = found[0]
    sign = "+" if first.shap > 0 else "-"
    assert re.fullmatch(rf"Max heart rate 108 bpm: \{sign}\d+ points?", first.text), first.text
    assert first.text.endswith(f"{abs(first.points)} points" if abs(first.points) != 1 else "1 point")
    assert first.value == "108 bpm" and first.label == "Max heart rate" and first.subject == "Max heart rate 108 bpm"
    assert found[1].text.startswith("Chest pain type (asymptomatic): ")
    assert found[1].subject == "Chest pain type (asymptomatic)"
    zh = reasons(expl, 0, schema, pre, top=1, lang="zh")
    assert len(zh) == 1
    assert re.fullmatch(rf"最大心率 108 bpm：\{sign}\d+ 个百分点", zh[0].text), zh[0].text


def test_a_binary_feature_without_code_labels_reads_as_a_code_in_reasons_and_what_ifs(cleveland):
    """One definition of a coded feature: reasons once read a label-less binary as a measurement ('... 1.0')
    while the what-ifs and the form read it as a code."""
    from core.workflow import Change, change_text
    schema, pre, raw = cleveland
    bare = schema.model_copy(deep=True)
    bare["fbs"].codes = []
    net = random_network(pre.n_outputs_, seed=5)
    W1 = net.layers[0][0]
    reads = np.zeros(W1.shape[0], dtype=bool)
    reads[pre.slices_[pre.feature_names.index("fbs")]] = True
    W1[~reads] = 0.0
    W1[reads] *= 8.0
    j = pre.feature_names.index("fbs")
    row = raw[0].copy()
    row[j] = pre.encode_value(j, 1.0)
    (reason,) = reasons(explain(pre, [net], row, raw[20:120]), 0, bare, pre, top=1)
    label, value = bare["fbs"].display_label(), bare["fbs"].format_value(1.0)
    assert reason.feature == "fbs" and reason.text.startswith(f"{label} ({value}): ")
    assert change_text(Change("fbs", 1.0, 0.0, 1.0), bare).endswith(f"were “{bare['fbs'].format_value(0.0)}” "
                                                                  f"instead of “{value}”")


def test_reasons_sorted_by_magnitude_on_a_dense_network(cleveland):
    schema, pre, raw = cleveland
    net = random_network(pre.n_outputs_, seed=17, scale=2.0)
    expl = explain(pre, [net], raw[:5], raw[50:110])
    for i in range(5):
        found = reasons(expl, i, schema, pre, top=3)
        assert len(found) == 3
        mags = [abs(r.shap) for r in found]
        assert mags == sorted(mags, reverse=True)
        assert mags[0] == pytest.approx(np.abs(expl.shap_values[i]).max())
    table = reasons_frame(expl, schema, pre, top=3)
    assert len(table) == 15 and list(table["rank"][:3]) == [1, 2, 3]
    assert table.loc[table.row == 2, "text"].tolist() == [r.text for r in reasons(expl, 2, schema, pre)]


def test_explanation_is_a_dataclass_of_arrays(cleveland):
    schema, pre, raw = cleveland
    expl = explain(pre, [random_network(pre.n_outputs_)], raw[:2], raw[:10])
    assert isinstance(expl, Explanation) and len(expl) == 2
    assert expl.feature_names == pre.feature_names and expl.background_size == 10
    assert isinstance(expl.base_value, float)
