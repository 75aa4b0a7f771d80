"""ViT-B/16 in Keras 3, equivalent to ``vit_keras.vit.vit_b16`` of vit_keras 0.1 (faustomorales/vit-keras),
the version whose layer names the harmonized file carries (0.2 runs on Keras 3 but renamed the layers).

What makes it equivalent (checked against vit_keras's ``vit.py``/``layers.py``/``utils.py``, and by
``tests/test_zoo_harmonized.py`` against vit_keras 0.1 itself under Keras 2):

* the same graph: 16x16 patch conv ``embedding`` -> class token -> learned position embeddings -> 12
  pre-norm transformer blocks (LayerNorm eps 1e-6, 12-head attention scaled by sqrt(64), exact GELU MLP
  of width 3072) -> ``encoder_norm`` -> class token -> ``head`` (linear: logits);
* the same layer names, with one change forced by Keras 3, which forbids ``/`` in names: vit_keras's
  ``Transformer/encoderblock_0`` is ``Transformer.encoderblock_0`` here (:func:`keras_layer_name`);
* the same sub-layer and variable order inside a block (attention query/key/value/out, MLP Dense_0 and
  Dense_1, LayerNorm_0, LayerNorm_2), so a ``.h5`` saved from vit_keras loads weight by weight. The
  loader (:func:`model_zoo.h5weights.load_into_keras`) also checks every variable's name and
  shape against the file, so a mismatch fails loudly rather than loading silently shuffled weights.

Pretrained weights for ``vit_keras_vit_b16`` are vit_keras's ImageNet-21k+2012 ``.npz`` (the original
Google ViT release), mapped as vit_keras's ``load_weights_numpy`` does; the position embeddings,
fine-tuned at 384 px, are resized to the 14x14 grid by linear zoom (``scipy.ndimage.zoom(order=1)``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from model_zoo.catalog import ModelSpec
from model_zoo.errors import InvalidInputError
from model_zoo.fileio import sha256_file
from model_zoo.frameworks import import_tensorflow
from model_zoo.weights import Built, WeightsRequest, fetch_url

import_tensorflow()
import keras  # noqa: E402  (after TensorFlow, through the safe import)
from keras import layers, ops  # noqa: E402

VIT_B16 = dict(patch_size=16, num_layers=12, hidden_size=768, num_heads=12, mlp_dim=3072)


def keras_layer_name(vit_keras_name: str) -> str:
    """vit_keras layer name -> this model's (Keras 3 forbids '/' in names)."""
    return vit_keras_name.replace("/", ".")


@keras.saving.register_keras_serializable(package="alignbench_vit")
class ClassToken(layers.Layer):
    def build(self, input_shape):
        self.cls = self.add_weight(name="cls", shape=(1, 1, input_shape[-1]), initializer="zeros")

    def call(self, x):
        cls = ops.broadcast_to(ops.cast(self.cls, x.dtype), (ops.shape(x)[0], 1, ops.shape(x)[-1]))
        return ops.concatenate([cls, x], axis=1)


@keras.saving.register_keras_serializable(package="alignbench_vit")
class AddPositionEmbs(layers.Layer):
    def build(self, input_shape):
        self.pe = self.add_weight(name="pos_embedding", shape=(1, input_shape[1], input_shape[2]),
                                  initializer=keras.initializers.RandomNormal(stddev=0.06))

    def call(self, x):
        return x + ops.cast(self.pe, x.dtype)


@keras.saving.register_keras_serializable(package="alignbench_vit")
class MultiHeadSelfAttention(layers.Layer):
    def __init__(self, *, num_heads: int, hidden_size: int, **kwargs):
        super().__init__(**kwargs)
        self.num_heads, self.hidden_size = num_heads, hidden_size
        self.query_dense = layers.Dense(hidden_size, name="query")
        self.key_dense = layers.Dense(hidden_size, name="key")
        self.value_dense = layers.Dense(hidden_size, name="value")
        self.combine_heads = layers.Dense(hidden_size, name="out")

    def build(self, input_shape):
        for dense in (self.query_dense, self.key_dense, self.value_dense, self.combine_heads):
            dense.build(input_shape)

    def _heads(self, x):
        x = ops.reshape(x, (ops.shape(x)[0], -1, self.num_heads, self.hidden_size // self.num_heads))
        return ops.transpose(x, (0, 2, 1, 3))

    def call(self, x):
        q, k, v = (self._heads(d(x)) for d in (self.query_dense, self.key_dense, self.value_dense))
        score = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) / ops.sqrt(
            ops.cast(self.hidden_size // self.num_heads, x.dtype))
        out = ops.matmul(ops.softmax(score, axis=-1), v)
        out = ops.reshape(ops.transpose(out, (0, 2, 1, 3)), (ops.shape(x)[0], -1, self.hidden_size))
        return self.combine_heads(out)

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "hidden_size": self.hidden_size}


@keras.saving.register_keras_serializable(package="alignbench_vit")
class TransformerBlock(layers.Layer):
    def __init__(self, *, num_heads: int, mlp_dim: int, hidden_size: int, dropout: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.num_heads, self.mlp_dim, self.hidden_size, self.dropout = num_heads, mlp_dim, hidden_size, dropout
        # attribute order = variable order = vit_keras's (att, mlpblock, layernorm1, layernorm2)
        self.att = MultiHeadSelfAttention(num_heads=num_heads, hidden_size=hidden_size, name="MultiHeadDotProductAttention_1")
        self.dense_0 = layers.Dense(mlp_dim, name="Dense_0")
        self.dense_1 = layers.Dense(hidden_size, name="Dense_1")
        self.layernorm1 = layers.LayerNormalization(epsilon=1e-6, name="LayerNorm_0")
        self.layernorm2 = layers.LayerNormalization(epsilon=1e-6, name="LayerNorm_2")
        self.drop = layers.Dropout(dropout)

    def build(self, input_shape):
        self.att.build(input_shape)
        self.dense_0.build(input_shape)
        self.dense_1.build((*input_shape[:-1], self.mlp_dim))
        self.layernorm1.build(input_shape)
        self.layernorm2.build(input_shape)

    def call(self, x, training=None):
        y = x + self.drop(self.att(self.layernorm1(x)), training=training)
        h = keras.activations.gelu(self.dense_0(self.layernorm2(y)), approximate=False)
        h = self.drop(self.dense_1(self.drop(h, training=training)), training=training)
        return y + h

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "mlp_dim": self.mlp_dim,
                "hidden_size": self.hidden_size, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="alignbench_vit")
class ExtractToken(layers.Layer):
    def call(self, x):
        return x[:, 0]


def vit_b16(image_size: int = 224, classes: int = 1000, dropout: float = 0.1, num_layers: int | None = None):
    """The ViT-B/16 Keras model: (N,S,S,3) normalised images -> (N,classes) logits.
    ``num_layers`` < 12 only for tests."""
    cfg = dict(VIT_B16, num_layers=num_layers or VIT_B16["num_layers"])
    h, p = cfg["hidden_size"], cfg["patch_size"]
    if image_size % p:
        raise InvalidInputError(f"ViT-B/16 needs an image size divisible by {p}, got {image_size}")
    x = keras.Input((image_size, image_size, 3))
    y = layers.Conv2D(h, p, strides=p, padding="valid", name="embedding")(x)
    y = layers.Reshape(((image_size // p) ** 2, h))(y)
    y = ClassToken(name="class_token")(y)
    y = AddPositionEmbs(name=keras_layer_name("Transformer/posembed_input"))(y)
    for n in range(cfg["num_layers"]):
        y = TransformerBlock(num_heads=cfg["num_heads"], mlp_dim=cfg["mlp_dim"], hidden_size=h, dropout=dropout,
                             name=keras_layer_name(f"Transformer/encoderblock_{n}"))(y)
    y = layers.LayerNormalization(epsilon=1e-6, name=keras_layer_name("Transformer/encoder_norm"))(y)
    y = ExtractToken(name="ExtractToken")(y)
    y = layers.Dense(classes, name="head")(y)
    return keras.Model(x, y, name="vit-b16")


def load_npz(model, path: Path) -> None:
    """Load an original-ViT ``.npz`` (vit_keras's ImageNet weights) into :func:`vit_b16`."""
    with np.load(path, allow_pickle=False) as f:
        params = {k: f[k] for k in f.files}
    used: set[str] = set()

    def take(*keys):
        missing = [k for k in keys if k not in params]
        if missing:
            raise InvalidInputError(f"{path}: missing arrays {missing}")
        used.update(keys)
        return [params[k] for k in keys]

    def put(layer, arrays):
        arrays = [a.reshape(v.shape) for a, v in zip(arrays, layer.weights)]  # (768,12,64) -> (768,768)
        layer.set_weights(arrays)

    blocks = [l for l in model.layers if isinstance(l, TransformerBlock)]
    for i, blk in enumerate(blocks):
        src = f"Transformer/encoderblock_{i}"
        put(blk.layernorm1, take(f"{src}/LayerNorm_0/scale", f"{src}/LayerNorm_0/bias"))
        put(blk.layernorm2, take(f"{src}/LayerNorm_2/scale", f"{src}/LayerNorm_2/bias"))
        for j, dense in enumerate((blk.dense_0, blk.dense_1)):
            put(dense, take(f"{src}/MlpBlock_3/Dense_{j}/kernel", f"{src}/MlpBlock_3/Dense_{j}/bias"))
        for name, dense in (("query", blk.att.query_dense), ("key", blk.att.key_dense),
                            ("value", blk.att.value_dense), ("out", blk.att.combine_heads)):
            put(dense, take(f"{src}/MultiHeadDotProductAttention_1/{name}/kernel",
                            f"{src}/MultiHeadDotProductAttention_1/{name}/bias"))
    for name in ("embedding", "head"):
        put(model.get_layer(name), take(f"{name}/kernel", f"{name}/bias"))
    put(model.get_layer("class_token"), take("cls"))
    put(model.get_layer(keras_layer_name("Transformer/encoder_norm")),
        take("Transformer/encoder_norm/scale", "Transformer/encoder_norm/bias"))
    pe_layer = model.get_layer(keras_layer_name("Transformer/posembed_input"))
    (pe,) = take("Transformer/posembed_input/pos_embedding")
    want = tuple(pe_layer.weights[0].shape)
    if pe.shape != want:
        import scipy.ndimage

        token, grid = pe[0, :1], pe[0, 1:]
        sin, sout = int(np.sqrt(grid.shape[0])), int(np.sqrt(want[1] - 1))
        grid = scipy.ndimage.zoom(grid.reshape(sin, sin, -1), (sout / sin, sout / sin, 1), order=1)
        pe = np.concatenate([token, grid.reshape(sout * sout, -1)], axis=0)[None]
    pe_layer.set_weights([pe])
    extra = sorted(set(params) - used - {"pre_logits/kernel", "pre_logits/bias"})
    if extra:
        raise InvalidInputError(f"{path}: arrays not used by ViT-B/16 (wrong file?): {extra[:5]}")


def build(spec: ModelSpec, request: WeightsRequest) -> Built:
    model = vit_b16(spec.input_size)
    if request.random:
        return Built(model)
    path = request.path if request.mode == "file" else fetch_url(spec.weights_url, model_id=spec.id,
                                                                   sha256=spec.weights_sha256 or None)
    if Path(path).suffix == ".npz":
        load_npz(model, Path(path))
    else:
        from model_zoo.h5weights import load_into_keras

        load_into_keras(model, Path(path), rename=keras_layer_name)
    return Built(model, sha256_file(path), Path(path))
