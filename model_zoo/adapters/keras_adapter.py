"""Keras adapter: logits and input-gradient saliency of a Keras 3 (TensorFlow backend) model.

Saliency differentiates the *logit*. Keras models usually end in a softmax (``keras.applications``
default ``classifier_activation="softmax"``, the harmonized ``.h5`` files), so at construction the
adapter finds the layer producing the output and, when it applies a softmax, builds a logits model
that shares every weight with the original but ends before the softmax:

* a final ``Softmax`` layer or ``Activation("softmax")`` -> the model output becomes that layer's input;
* a final layer with ``activation=softmax`` (e.g. ``Dense``) -> a copy of that layer with a linear
  activation and the same weights is applied to its input.

``logits_layer`` names a layer whose output to use instead (its softmax, if any, is removed the
same way). Subclassed models, which have no graph to rewrite, are used as they are.

The forward and the input gradient run in one ``tf.function`` (``reduce_retracing``: a new chunk
size triggers at most one retrace to a shape-generic graph); eager tapes measured 2x slower.
``precision`` "bfloat16"/"float16" runs a clone of the model under the Keras ``mixed_*`` dtype
policy (variables stay float32; float16 is refused on CPU); outputs are returned as float32.

Explainers (:meth:`Adapter.explain`): the gradient primitive differentiates the target w.r.t. the
image or the normalised image in one traced function; Grad-CAM reads the last layer whose output is
a 4-D (N, h, w, C) activation with h, w > 1 (or the layer the explainer names) through a second model
sharing the weights, and refuses a model where token layers (3-D outputs) follow it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from model_zoo.adapters.base import Adapter
from model_zoo.errors import InvalidInputError
from model_zoo.explainers import Explainer
from model_zoo.frameworks import import_tensorflow
from model_zoo.preprocessing import BOUNDARY_SIZE, Preprocess
from model_zoo.preprocessing_tf import TFPreprocess

tf = import_tensorflow()
import keras  # noqa: E402  (after TensorFlow, through the import guard)



# ---------------------------------------------------------------------- model surgery
def _is_softmax(fn: Any) -> bool:
    return fn is keras.activations.softmax or getattr(fn, "__name__", "") == "softmax"


def _graph_inputs(model: "keras.Model") -> Any:
    """The model's symbolic input(s), unwrapped when single (a list would change the call signature)."""
    inputs = model.inputs
    return inputs[0] if len(inputs) == 1 else inputs


def _output_layer(model: "keras.Model") -> tuple[Any, Any]:
    """(layer producing the model's single output, that layer's input tensor) of a graph model."""
    outputs = getattr(model, "outputs", None)
    if not outputs:
        return None, None
    if len(outputs) != 1:
        raise InvalidInputError(f"model: {model.name} has {len(outputs)} outputs; pass logits_layer=<layer name>")
    history = outputs[0]._keras_history
    layer = history.operation
    inputs = layer._inbound_nodes[history.node_index].input_tensors
    return layer, inputs[0] if len(inputs) == 1 else inputs


def _without_softmax(layer: Any, layer_input: Any, output: Any) -> Any:
    """The pre-softmax version of ``output`` (produced by ``layer`` from ``layer_input``)."""
    if isinstance(layer, keras.layers.Softmax):
        return layer_input
    activation = getattr(layer, "activation", None)
    if activation is None or not _is_softmax(activation):
        return output
    if isinstance(layer, keras.layers.Activation):
        return layer_input
    config = dict(layer.get_config(), activation="linear", name=f"{layer.name}_logits")
    head = type(layer).from_config(config)
    head.build(layer_input.shape)
    head.set_weights(layer.get_weights())
    return head(layer_input)


def logits_model(model: "keras.Model", logits_layer: str | None = None) -> "keras.Model":
    """A model sharing ``model``'s weights whose output is the pre-softmax logits (see module doc)."""
    if logits_layer is not None:
        try:
            layer = model.get_layer(logits_layer)
        except ValueError as exc:
            names = [layer.name for layer in model.layers]
            shown = ", ".join(names[-8:])
            raise InvalidInputError(
                f"logits_layer: no layer named {logits_layer!r} in {model.name} (last layers: {shown})"
            ) from exc
        if not getattr(model, "inputs", None):
            raise InvalidInputError("logits_layer needs a functional or Sequential Keras model, not a subclassed one")
        layer_input = layer.input
        output = _without_softmax(layer, layer_input, layer.output)
        return keras.Model(_graph_inputs(model), output, name=f"{model.name}_logits")
    layer, layer_input = _output_layer(model)
    if layer is None:  # subclassed: nothing to rewrite
        return model
    output = _without_softmax(layer, layer_input, model.outputs[0])
    if output is model.outputs[0]:
        return model
    return keras.Model(_graph_inputs(model), output, name=f"{model.name}_logits")


def _with_policy(model: "keras.Model", policy: str) -> "keras.Model":
    """A clone of ``model`` (same weights, new variables) computing under dtype ``policy``."""
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    stack = list(clone.layers)
    while stack:
        layer = stack.pop()
        layer.dtype_policy = keras.DTypePolicy(policy)
        stack.extend(getattr(layer, "layers", []))
    return clone


# ---------------------------------------------------------------------- adapter
class KerasAdapter(Adapter):
    """Adapter for a Keras model mapping NHWC images to (N, C) logits (or softmax, see module doc)."""

    framework = "keras"

    def __init__(
        self,
        model: "keras.Model",
        preprocess: Preprocess | dict | None,
        *,
        spec: Any = None,
        precision: str = "float32",
        weights_sha256: str | None = None,
        logits_layer: str | None = None,
        batch_size: int | None = None,
    ) -> None:
        if not isinstance(model, keras.Model):
            raise InvalidInputError(f"model must be a keras.Model, got {type(model).__name__}")
        super().__init__(preprocess, spec=spec, precision=precision, weights_sha256=weights_sha256, batch_size=batch_size)
        if precision == "float16" and not tf.config.list_logical_devices("GPU"):
            raise InvalidInputError("precision: float16 is not supported on CPU; use 'bfloat16' or 'float32'")
        self.model = model
        self.logits_model = logits_model(model, logits_layer)
        self._check_input_shape(self.logits_model)
        if precision != "float32":
            self.logits_model = _with_policy(self.logits_model, f"mixed_{precision}")
        outputs = getattr(self.logits_model, "outputs", None)
        if outputs and outputs[0].shape[-1] is not None:
            self.num_classes = int(outputs[0].shape[-1])
        self._preprocess = TFPreprocess(self.preprocess)
        self._predict_fn = tf.function(self._forward, reduce_retracing=True)
        self._saliency_fn = tf.function(self._forward_and_gradient, reduce_retracing=True)
        self._gradient_fns: dict[tuple[str, bool], Any] = {}
        self._gradcam_fns: dict[tuple[str | None, str], Any] = {}

    def _check_input_shape(self, model: "keras.Model") -> None:
        inputs = getattr(model, "inputs", None)
        if not inputs:
            return
        shape = tuple(inputs[0].shape)
        side = self.preprocess.input_size if self.preprocess is not None else BOUNDARY_SIZE
        if len(shape) != 4 or shape[-1] not in (None, 3):
            raise InvalidInputError(f"model: {self.name} must take NHWC RGB images, its input shape is {shape}")
        if any(s is not None and s != side for s in shape[1:3]):
            raise InvalidInputError(
                f"preprocess.input_size: {self.name} takes {shape[1]}x{shape[2]} inputs but images would be "
                f"{side}x{side}; set input_size={shape[1]}"
            )

    # ------------------------------------------------------------------ traced functions
    def _model_input(self, x: "tf.Tensor") -> "tf.Tensor":
        return self._preprocess(x)

    def _forward(self, x: "tf.Tensor") -> "tf.Tensor":
        out = self.logits_model(self._model_input(x), training=False)
        return tf.cast(out, tf.float32)

    def _forward_and_gradient(self, x: "tf.Tensor", labels: "tf.Tensor") -> "tuple[tf.Tensor, tf.Tensor]":
        # Watch only the input: the parameters are not differentiated (the "frozen" of PyTorch).
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)
            logits = self._forward(x)
            # one_hot rather than gather: an out-of-range label gives 0 instead of a device error,
            # and the caller validates labels against the logit width.
            target = tf.reduce_sum(logits * tf.one_hot(labels, tf.shape(logits)[-1], dtype=logits.dtype))
        grad = tape.gradient(target, x)
        return logits, tf.reduce_max(tf.abs(grad), axis=-1)

    def _target(self, logits: "tf.Tensor", labels: "tf.Tensor", target: str) -> "tf.Tensor":
        scores = tf.nn.softmax(logits, axis=-1) if target == "probability" else logits
        return tf.reduce_sum(scores * tf.one_hot(labels, tf.shape(scores)[-1], dtype=scores.dtype))

    def _gradient_fn(self, target: str, affine: bool) -> Any:
        key = (target, affine)
        if key not in self._gradient_fns:
            def fn(z: "tf.Tensor", labels: "tf.Tensor", gain: "tf.Tensor", offset: "tf.Tensor") -> Any:
                with tf.GradientTape(watch_accessed_variables=False) as tape:
                    tape.watch(z)
                    logits = self._forward((z - offset) / gain if affine else z)
                    score = self._target(logits, labels, target)
                return logits, tape.gradient(score, z)

            self._gradient_fns[key] = tf.function(fn, reduce_retracing=True)
        return self._gradient_fns[key]

    def gradcam_layer(self, layer: str | None = None) -> str:
        """The name of the layer Grad-CAM uses on this model (``layer`` if given and found)."""
        model = self.logits_model
        if not getattr(model, "inputs", None):
            raise InvalidInputError(f"explainer grad-cam: {self.name} is a subclassed Keras model, with no layer "
                                    "graph to read activations from")
        if layer is not None:
            try:
                model.get_layer(layer)
            except ValueError:
                shown = ", ".join(x.name for x in model.layers[-8:])
                raise InvalidInputError(f"explainer grad-cam: {self.name} has no layer {layer!r} (last layers: {shown})") from None
            return layer
        shapes = [(x.name, tuple(x.output.shape)) for x in model.layers if not isinstance(x, keras.layers.InputLayer)]
        spatial = [i for i, (_, s) in enumerate(shapes) if len(s) == 4 and (s[1] or 2) > 1 and (s[2] or 2) > 1]
        if not spatial:
            raise InvalidInputError(f"explainer grad-cam: {self.name} has no 4-D convolutional activation; "
                                    "Grad-CAM needs a model with a last convolutional stage")
        last = spatial[-1]
        tokens = [n for n, s in shapes[last + 1:] if len(s) == 3]
        if tokens:
            raise InvalidInputError(
                f"explainer grad-cam: {self.name} has no last convolutional stage (its last 4-D activation, "
                f"{shapes[last][0]!r}, is followed by token layers such as {tokens[0]!r}); Grad-CAM needs a "
                "convolutional network (or name a layer: params layer=...)")
        return shapes[last][0]

    def _gradcam_fn(self, layer: str | None, target: str) -> Any:
        key = (layer, target)
        if key not in self._gradcam_fns:
            name = self.gradcam_layer(layer)
            both = keras.Model(self.logits_model.inputs, [self.logits_model.get_layer(name).output,
                                                          self.logits_model.outputs[0]])

            def fn(x: "tf.Tensor", labels: "tf.Tensor") -> Any:
                with tf.GradientTape(watch_accessed_variables=False) as tape:
                    tape.watch(x)  # records the graph, so the activations can be differentiated
                    acts, logits = both(self._model_input(x), training=False)
                    logits = tf.cast(logits, tf.float32)
                    score = self._target(logits, labels, target)
                acts = tf.cast(acts, tf.float32)
                grad = tf.cast(tape.gradient(score, acts), tf.float32)
                if len(acts.shape) != 4:
                    raise InvalidInputError(f"explainer grad-cam: layer {name!r} of {self.name} gives no 4-D activation")
                weights = tf.reduce_mean(grad, axis=(1, 2), keepdims=True)
                cam = tf.nn.relu(tf.reduce_sum(weights * acts, axis=-1, keepdims=True))
                cam = tf.image.resize(cam, (BOUNDARY_SIZE, BOUNDARY_SIZE), method="bilinear", antialias=False)
                return logits, cam[..., 0]

            self._gradcam_fns[key] = tf.function(fn, reduce_retracing=True)
        return self._gradcam_fns[key]

    # ------------------------------------------------------------------ adapter hooks
    def _gradient_chunk(self, z: np.ndarray, labels: np.ndarray, target: str,
                        affine: "tuple[np.ndarray, np.ndarray] | None") -> tuple[np.ndarray, np.ndarray]:
        self._check_labels_known(labels)
        gain, offset = affine if affine is not None else (np.ones(3, np.float32), np.zeros(3, np.float32))
        logits, grad = self._gradient_fn(target, affine is not None)(
            tf.convert_to_tensor(z), tf.convert_to_tensor(labels), tf.constant(gain), tf.constant(offset))
        self._check_output(logits)
        self._set_num_classes(logits.shape[1], labels)
        return logits.numpy(), grad.numpy()

    def _gradcam_chunk(self, images: np.ndarray, labels: np.ndarray, spec: Explainer) -> tuple[np.ndarray, np.ndarray]:
        self._check_labels_known(labels)
        logits, maps = self._gradcam_fn(spec.param("layer"), spec.target)(
            tf.convert_to_tensor(images), tf.convert_to_tensor(labels))
        self._check_output(logits)
        self._set_num_classes(logits.shape[1], labels)
        return logits.numpy(), maps.numpy()

    def _check_labels_known(self, labels: np.ndarray) -> None:
        if self.num_classes is not None:
            self._set_num_classes(self.num_classes, labels)

    def _check_output(self, logits: "tf.Tensor") -> None:
        if len(logits.shape) != 2:
            raise InvalidInputError(f"model: {self.name} must return (N, classes) logits, returned {tuple(logits.shape)}")

    def _predict_chunk(self, images: np.ndarray) -> np.ndarray:
        logits = self._predict_fn(tf.convert_to_tensor(images))
        self._check_output(logits)
        self._set_num_classes(logits.shape[1])
        return logits.numpy()

    def _saliency_chunk(self, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.num_classes is not None:
            self._set_num_classes(self.num_classes, labels)
        logits, maps = self._saliency_fn(tf.convert_to_tensor(images), tf.convert_to_tensor(labels))
        self._check_output(logits)
        self._set_num_classes(logits.shape[1], labels)
        return logits.numpy(), maps.numpy()

    def _is_out_of_memory(self, exc: BaseException) -> bool:
        return isinstance(exc, tf.errors.ResourceExhaustedError)

    def _describe_model(self) -> str:
        return f"keras {self.model.name}"
