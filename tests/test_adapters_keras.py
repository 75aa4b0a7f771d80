"""KerasAdapter: softmax removal, logits_layer, batching, OOM fallback, precision, validation."""
from __future__ import annotations

import numpy as np
import pytest

from model_zoo.frameworks import import_tensorflow

tf = import_tensorflow()
import keras  # noqa: E402

from model_zoo.adapters.keras_adapter import KerasAdapter, logits_model  # noqa: E402
from model_zoo.errors import AlignbenchError, InvalidInputError  # noqa: E402
from model_zoo.preprocessing import Preprocess  # noqa: E402
from model_zoo.wrap import wrap  # noqa: E402

pytestmark = pytest.mark.tf

PREP = Preprocess(input_size=160, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), channel_order="BGR")


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, 224, 224, 3)).astype(np.float32)


def small_net(head_activation: str | None = "softmax", side: int | None = None, classes: int = 6) -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((side, side, 3))
    x = keras.layers.Conv2D(4, 5, strides=4, activation="tanh")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(classes, activation=head_activation, name="head")(x)
    return keras.Model(inputs, outputs)


def pre_softmax(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """Logits computed by hand from the model's own weights (the adapter must match them)."""
    features = keras.Model(model.input, model.get_layer("head").input)(x).numpy()
    kernel, bias = model.get_layer("head").get_weights()
    return features @ kernel + bias


# ---------------------------------------------------------------------- softmax removal
def test_final_dense_softmax_is_removed_and_weights_are_shared():
    model = small_net("softmax")
    adapter = wrap(model, None)
    assert isinstance(adapter, KerasAdapter) and adapter.num_classes == 6
    x = images(2)
    np.testing.assert_allclose(adapter.predict(x), pre_softmax(model, x), rtol=1e-5, atol=1e-6)
    assert not np.allclose(model(x).numpy().sum(axis=1), adapter.predict(x).sum(axis=1))


@pytest.mark.parametrize("final", [keras.layers.Softmax(), keras.layers.Activation("softmax")])
def test_separate_softmax_layer_is_removed(final):
    keras.utils.set_random_seed(1)
    inputs = keras.Input((224, 224, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(3, 3)(inputs))
    logits = keras.layers.Dense(4, name="head")(x)
    model = keras.Model(inputs, final(logits))
    x = images(2)
    expected = keras.Model(inputs, logits)(x).numpy()
    np.testing.assert_allclose(KerasAdapter(model, None).predict(x), expected, rtol=1e-5, atol=1e-6)


def test_sequential_softmax_model_and_linear_model_untouched():
    keras.utils.set_random_seed(2)
    seq = keras.Sequential([keras.Input((224, 224, 3)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")])
    assert logits_model(seq) is not seq
    linear = small_net(None)
    assert logits_model(linear) is linear


def test_logits_layer_selects_an_inner_layer():
    model = small_net("softmax")
    x = images(1)
    adapter = KerasAdapter(model, None, logits_layer="pool")
    features = keras.Model(model.input, model.get_layer("pool").output)(x).numpy()
    np.testing.assert_allclose(adapter.predict(x), features, rtol=1e-5, atol=1e-6)
    with pytest.raises(InvalidInputError, match="logits_layer.*nope.*pool"):
        KerasAdapter(model, None, logits_layer="nope")


def test_labels_select_the_logit_of_a_linear_model():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((224, 224, 3))
    dense = keras.layers.Dense(5, activation="softmax")
    model = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    labels = np.array([4, 1, 1])
    maps = KerasAdapter(model, None).saliency(images(3), labels)
    kernel = dense.get_weights()[0].reshape(224, 224, 3, 5)
    np.testing.assert_allclose(maps, np.abs(kernel).max(axis=2).transpose(2, 0, 1)[labels], rtol=1e-6)


def test_wrap_without_preprocess_feeds_the_model_raw_pixels():
    model = small_net(None)
    x, labels = images(2), np.array([0, 5])
    xt = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        target = tf.reduce_sum(tf.gather(model(xt), labels, batch_dims=1))
    expected = tf.reduce_max(tf.abs(tape.gradient(target, xt)), axis=-1).numpy()
    logits, maps = wrap(model).predict_and_saliency(x, labels)
    np.testing.assert_allclose(logits, model(x).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-6 * float(expected.max()))


# ---------------------------------------------------------------------- batching, memory, precision
def test_batched_equals_unbatched():
    model = small_net()
    x, labels = images(5), np.array([0, 1, 2, 3, 4])
    whole = KerasAdapter(model, PREP, batch_size=5).predict_and_saliency(x, labels)
    chunked_adapter = KerasAdapter(model, PREP, batch_size=2)
    chunked = chunked_adapter.predict_and_saliency(x, labels)
    singles = [KerasAdapter(model, PREP).predict_and_saliency(x[i : i + 1], labels[i : i + 1]) for i in range(5)]
    for out in (chunked, (np.concatenate([s[0] for s in singles]), np.concatenate([s[1] for s in singles]))):
        np.testing.assert_allclose(out[0], whole[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out[1], whole[1], rtol=1e-4, atol=1e-6 * float(whole[1].max()))
    # chunks of 2, 2, 1 traced at most twice (reduce_retracing generalises the batch dimension)
    assert chunked_adapter._saliency_fn.experimental_get_tracing_count() <= 2


def test_resource_exhausted_halves_the_chunk():
    adapter = KerasAdapter(small_net(), PREP, batch_size=8)
    real, sizes = adapter._saliency_fn, []

    def limited(x, labels):
        sizes.append(int(x.shape[0]))
        if x.shape[0] > 3:
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor (simulated)")
        return real(x, labels)

    adapter._saliency_fn = limited
    x, labels = images(6), np.arange(6)
    maps = adapter.saliency(x, labels)
    assert sizes[:3] == [6, 3, 3] and adapter.batch_size == 3
    np.testing.assert_allclose(maps, KerasAdapter(small_net(), PREP).saliency(x, labels), rtol=1e-4, atol=1e-9)

    def always(x, labels):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM (simulated)")

    adapter._saliency_fn = always
    with pytest.raises(AlignbenchError, match="batch of one"):
        adapter.saliency(x, labels)


def test_bfloat16_runs_a_mixed_precision_clone():
    from scipy.stats import spearmanr

    model = small_net()
    x, labels = images(2), np.array([1, 2])
    full = KerasAdapter(model, PREP).saliency(x, labels)
    adapter = KerasAdapter(model, PREP, precision="bfloat16")
    half = adapter.saliency(x, labels)
    assert adapter.logits_model.layers[1].compute_dtype == "bfloat16"
    assert model.layers[1].compute_dtype == "float32"  # the user's model is left alone
    assert half.dtype == np.float32 and not np.array_equal(half, full)
    assert min(spearmanr(h.ravel(), f.ravel())[0] for h, f in zip(half, full)) > 0.95
    with pytest.raises(InvalidInputError, match="float16 is not supported on CPU"):
        KerasAdapter(model, PREP, precision="float16")


# ---------------------------------------------------------------------- validation
def test_input_size_must_match_a_fixed_model_input():
    with pytest.raises(InvalidInputError, match="input_size=160"):
        KerasAdapter(small_net(side=160), None)
    assert KerasAdapter(small_net(side=160), PREP).saliency(images(1), np.array([0])).shape == (1, 224, 224)


def test_labels_beyond_the_logits_are_rejected():
    adapter = KerasAdapter(small_net(classes=6), None)
    with pytest.raises(InvalidInputError, match="labels must be in 0..5"):
        adapter.saliency(images(1), np.array([6]))


def test_non_keras_model_is_rejected():
    with pytest.raises(InvalidInputError, match="keras.Model"):
        KerasAdapter(object(), None)
