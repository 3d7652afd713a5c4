"""Model-parameter randomisation (Adebayo et al., 2018): layer groups, exact restore, cascading Grad-CAM test."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from core.errors import ConfigError, ModelError
from tests.conftest import tiny_two_head_model
from xai.explainers.gradcam import GradCAM
from xai.metrics.randomisation import (
    cascading_randomisation,
    learned_variables,
    random_logit_test,
    randomisation_steps,
    randomised_weights,
)
from xai.similarity import spearman

HEAD_LAYERS = {"magnitude_logits", "azimuth_logits"}


def normalised_model(nested: bool = False) -> keras.Model:
    """Input -> Normalization -> conv -> BatchNorm -> conv ``feat`` -> GAP -> two heads (optionally nested trunk)."""
    keras.utils.set_random_seed(5)
    inputs = keras.Input((16, 16, 3), name="spectrogram")
    x = keras.layers.Normalization(mean=[0.1, 0.2, 0.3], variance=[1.0, 2.0, 3.0], name="norm")(inputs)
    x = keras.layers.Conv2D(4, 3, name="c1")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.Conv2D(6, 3, activation="relu", name="feat")(x)
    if nested:
        trunk = keras.Model(inputs, x, name="trunk")
        inputs = keras.Input((16, 16, 3), name="outer")
        x = trunk(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = []
    for head, n in (("magnitude", 2), ("azimuth", 3)):
        outputs.append(keras.layers.Activation("softmax", name=head)(keras.layers.Dense(n, name=f"{head}_logits")(x)))
    model = keras.Model(inputs, outputs, name="normalised")
    bn = model.get_layer("trunk").get_layer("bn") if nested else model.get_layer("bn")
    rng = np.random.default_rng(0)
    bn.moving_mean.assign(rng.normal(size=4).astype(np.float32))  # non-trivial statistics to keep
    bn.moving_variance.assign(rng.uniform(0.5, 2.0, size=4).astype(np.float32))
    bn.gamma.assign(rng.uniform(0.5, 1.5, size=4).astype(np.float32))
    return model


def _weights(model: keras.Model) -> list[np.ndarray]:
    return [np.array(w, copy=True) for w in model.get_weights()]


def _assert_same(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


# --------------------------------------------------------------------------- steps
def test_steps_heads_first_then_towards_the_input():
    model = tiny_two_head_model()
    steps = randomisation_steps(model)
    assert set(steps[0]) == HEAD_LAYERS and len(steps[0]) == 2
    assert steps[1:] == [["shared"], ["feat"], ["c1"]]
    two = randomisation_steps(model, max_steps=2)
    assert set(two[0]) == HEAD_LAYERS and two[1] == ["shared", "feat", "c1"]
    assert [sorted(group) for group in randomisation_steps(model, max_steps=1)] == [
        sorted(HEAD_LAYERS | {"shared", "feat", "c1"})
    ]
    with pytest.raises(ConfigError):
        randomisation_steps(model, max_steps=0)
    single = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3, name="a"), keras.layers.Flatten(),
         keras.layers.Dense(3, name="d1"), keras.layers.Dense(2, name="out")]
    )  # fmt: skip
    assert randomisation_steps(single) == [["out"], ["d1"], ["a"]]  # one output: its last layer is the head


def test_steps_skip_preprocessing_and_expand_nested_models():
    flat = randomisation_steps(normalised_model())
    assert set(flat[0]) == HEAD_LAYERS and flat[1:] == [["feat"], ["bn"], ["c1"]]
    assert learned_variables(normalised_model().get_layer("norm")) == []
    nested = randomisation_steps(normalised_model(nested=True), max_steps=3)
    assert set(nested[0]) == HEAD_LAYERS and nested[1:] == [["trunk/feat", "trunk/bn"], ["trunk/c1"]]


# --------------------------------------------------------------------------- randomised_weights
def test_randomised_weights_changes_only_learned_weights_and_restores_exactly():
    model = normalised_model()
    before = {layer.name: [np.array(w) for w in layer.get_weights()] for layer in model.layers}
    all_before = _weights(model)
    bn = model.get_layer("bn")
    with randomised_weights(model, ["bn", "c1"], seed=3) as changed:
        assert sorted(changed) == ["bn/beta", "bn/gamma", "c1/bias", "c1/kernel"]
        kernel = model.get_layer("c1").kernel.numpy()
        original = before["c1"][0]
        assert abs(np.corrcoef(kernel.ravel(), original.ravel())[0, 1]) < 0.4
        assert kernel.std() == pytest.approx(original.std(), rel=0.35)
        np.testing.assert_array_equal(model.get_layer("c1").bias.numpy(), 0.0)  # a zero bias stays 0
        assert not np.allclose(bn.gamma.numpy(), before["bn"][0])
        assert not np.allclose(bn.beta.numpy(), before["bn"][1]) or np.ptp(before["bn"][1]) == 0
        np.testing.assert_array_equal(bn.moving_mean.numpy(), before["bn"][2])  # statistics kept
        np.testing.assert_array_equal(bn.moving_variance.numpy(), before["bn"][3])
        for name in ("norm", "feat", "magnitude_logits"):
            _assert_same(model.get_layer(name).get_weights(), before[name])
        first = _weights(model)
        first_kernel = kernel.copy()
    with randomised_weights(model, ["bn", "c1"], seed=3):
        _assert_same(_weights(model), first)  # same seed, same draw
    with randomised_weights(model, ["bn"], seed=3), randomised_weights(model, ["c1"], seed=3):
        _assert_same(_weights(model), first)  # group by group = all at once (cascading steps extend each other)
    with randomised_weights(model, ["bn", "c1"], seed=4):
        assert not np.array_equal(model.get_layer("c1").kernel.numpy(), first_kernel)
    _assert_same(_weights(model), all_before)


def test_randomised_weights_restores_after_an_exception_and_rejects_bad_layers():
    model = normalised_model()
    before = _weights(model)
    feat = model.get_layer("feat").kernel.numpy().copy()
    with pytest.raises(RuntimeError, match="boom"), randomised_weights(model, ["feat", "magnitude_logits"], seed=1):
        assert not np.array_equal(model.get_layer("feat").kernel.numpy(), feat)
        raise RuntimeError("boom")
    _assert_same(_weights(model), before)
    with pytest.raises(ConfigError, match="no learned weights"), randomised_weights(model, ["norm"]):
        pass
    with pytest.raises(ModelError), randomised_weights(model, ["no_such_layer"]):
        pass
    _assert_same(_weights(model), before)


def test_randomised_weights_on_nested_paths():
    model = normalised_model(nested=True)
    before = _weights(model)
    c1 = model.get_layer("trunk").get_layer("c1")
    original = c1.kernel.numpy().copy()
    with randomised_weights(model, ["trunk/c1"], seed=0) as changed:
        assert len(changed) == 2
        assert not np.array_equal(c1.kernel.numpy(), original)
    _assert_same(_weights(model), before)


# --------------------------------------------------------------------------- cascading + random logit
@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(6, 32, 32, 3)).astype(np.float32)


def test_cascading_randomisation_of_gradcam(images):
    model = tiny_two_head_model(seed=1)
    explainer = GradCAM(model, target_layer="feat")
    classes = np.zeros(len(images), int)

    def explain(x: np.ndarray, c: np.ndarray) -> np.ndarray:
        return explainer(x, "magnitude", c).maps

    original = explain(images, classes)
    before = _weights(model)
    # near-identity check: explaining twice gives the same ranks
    again = [spearman(a, b) for a, b in zip(original, explain(images, classes))]
    assert again == pytest.approx([1.0] * len(images))

    steps = cascading_randomisation(model, explain, images, classes, max_steps=6, seed=0)
    assert len(steps) == 4 and steps[-1]["label"] == "up to c1"
    assert set(steps[0]["layers"]) == HEAD_LAYERS and steps[-1]["layers"][-3:] == ["shared", "feat", "c1"]
    for step in steps:
        rho = step["spearman"]
        assert rho.shape == (len(images),) and rho.dtype == np.float64
        finite = rho[np.isfinite(rho)]
        assert ((finite >= -1.0) & (finite <= 1.0)).all()
    full = steps[-1]["spearman"]
    assert np.isfinite(full).sum() >= 3
    assert np.nanmean(full) < 0.5, f"fully randomised Grad-CAM still matches the original maps: {full}"

    _assert_same(_weights(model), before)  # exactly restored
    np.testing.assert_array_equal(explain(images, classes), original)  # compiled Grad-CAM sees the originals


def test_cascading_randomisation_restores_after_explain_fails(images):
    model = tiny_two_head_model(seed=2)
    before = _weights(model)
    calls = []

    def explain(x: np.ndarray, c: np.ndarray) -> np.ndarray:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("explainer failed")
        return np.asarray(model(x, training=False)[0])[:, None, :].repeat(2, axis=1)

    with pytest.raises(RuntimeError, match="explainer failed"):
        cascading_randomisation(model, explain, images[:2], np.zeros(2, int))
    _assert_same(_weights(model), before)


def test_random_logit_test(images):
    model = tiny_two_head_model(seed=1)
    explainer = GradCAM(model, target_layer="feat")
    classes = np.array([0, 1, 2, 3, 0, 1])
    seen = []

    def explain(x: np.ndarray, c: np.ndarray) -> np.ndarray:
        seen.append(np.array(c))
        return explainer(x, "magnitude", c).maps

    rho = random_logit_test(explain, images, classes, n_classes=4, seed=0)
    assert rho.shape == (6,)
    finite = rho[np.isfinite(rho)]
    assert finite.size >= 3 and ((finite >= -1.0) & (finite <= 1.0)).all()
    others = seen[1]
    assert (others != classes).all() and ((others >= 0) & (others < 4)).all()
    np.testing.assert_array_equal(random_logit_test(explain, images, classes, 4, seed=0), rho)

    # a class-insensitive "explanation" (the input itself) is perfectly correlated: the test's alarm value
    def blind(x: np.ndarray, c: np.ndarray) -> np.ndarray:
        return x.mean(axis=-1)

    np.testing.assert_allclose(random_logit_test(blind, images, classes, 4), 1.0)
    with pytest.raises(ConfigError):
        random_logit_test(blind, images, np.zeros(6, int), n_classes=1)
    with pytest.raises(ConfigError):
        random_logit_test(blind, images, np.full(6, 4), n_classes=4)
