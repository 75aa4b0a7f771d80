"""Reference child for the harmonized-model tests: builds the authors' architectures under Keras 2.

Run as ``TF_USE_LEGACY_KERAS=1 python -m tests.harmonized_support.kecam_reference JOB.json`` (the
variable must be set before TensorFlow is imported, so only a child process can have it). For every
model in the job it

1. builds the architecture with the package and call the authors' loader used
   (serre-lab/Harmonization ``harmonization/models/*.py``; paper-notes.md section 1.3): tf-keras's
   ``keras.applications`` (VGG16, ResNet50V2), the ``efficientnet`` package (EfficientNetB0),
   ``vit_keras`` (ViT-B16) and keras-cv-attention-models (ConvNeXt-T, MaxViT-T, LeViT-128);
2. gives every variable seeded random values: kernels keep their initialiser's draw, and the
   variables initialised to constants (norm scales and offsets, batch-norm statistics, biases,
   layer scales, position embeddings and biases) are drawn too, so a mis-mapped one shows;
3. writes it as legacy HDF5 as the released files are (``model.save("x.h5")``, which
   ``tf.keras.models.load_model`` reads, or ``save_weights``), and
4. computes the reference: for boundary images (N, 224, 224, 3) in [0, 255], the authors'
   ``preprocess_input`` (x/255, ImageNet mean/std) after a bilinear resize to the model's input
   size, the pre-softmax logits, and the saliency ``max_c |d logit[label] / d image|``.

Where a model's entry names ``float64_inputs`` (model inputs, already preprocessed, (N, S', S', 3)),
the same weights also run in a float64 copy of the model, and the ``.npz`` gets ``logits64`` and
``saliency64`` (gradient with respect to those inputs): the float32 maps of networks with max
pooling are not a continuous function of rounding (see ``tests/test_zoo_harmonized.py``).

The job (JSON): ``{"images": "x.npy", "labels": "y.npy", "models": [{"id", "size", "h5", "format",
"seed", "out", "float64_inputs"?}]}``; each model's ``out`` gets an ``.npz`` with ``logits`` and
``saliency``.
"""
from __future__ import annotations

import json
import os
import sys
import types

if os.environ.get("TF_USE_LEGACY_KERAS") != "1":  # importing TensorFlow first would pick Keras 3
    sys.exit("kecam_reference must run with TF_USE_LEGACY_KERAS=1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

# vit_keras 0.1 (the authors' era; 0.2 renamed the layers for Keras 3) imports three modules at
# module level that its model code never uses here: TensorFlow Addons (a fallback GELU for TF < 2.4),
# OpenCV and pkg_resources (its image-file reader and class-name list). Placeholders stand in.
for _unused in ("tensorflow_addons", "cv2", "pkg_resources"):
    sys.modules.setdefault(_unused, types.ModuleType(_unused))

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def build(model_id: str, size: int):
    shape = (size, size, 3)
    if model_id == "harmonized_vgg16":
        return tf_keras.applications.VGG16(weights=None, input_shape=shape)
    if model_id == "harmonized_resnet50v2":
        return tf_keras.applications.ResNet50V2(weights=None, input_shape=shape)
    if model_id == "harmonized_efficientnet_b0":
        import efficientnet.tfkeras as efn

        return efn.EfficientNetB0(weights=None, input_shape=shape)
    if model_id == "harmonized_vit_b16":
        from vit_keras import vit

        return vit.vit_b16(image_size=size, activation="linear", pretrained=False, include_top=True,
                           pretrained_top=False)
    if model_id == "harmonized_convnext_tiny":
        from keras_cv_attention_models import convnext

        return convnext.ConvNeXtTiny(input_shape=shape, classifier_activation=None, pretrained=None)
    if model_id == "harmonized_maxvit_tiny":
        from keras_cv_attention_models import maxvit

        return maxvit.MaxViT_Tiny(input_shape=shape, classifier_activation=None, pretrained=None)
    if model_id == "harmonized_levit_128":
        from keras_cv_attention_models import levit

        return levit.LeViT128(input_shape=shape, classifier_activation=None, use_distillation=False, pretrained=None)
    raise SystemExit(f"unknown model {model_id!r}")


def randomize(model, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for var in model.weights:
        leaf = var.name.split("/")[-1].split(":")[0]
        shape = tuple(var.shape)
        if leaf in ("gamma", "moving_variance", "weight"):  # norm scales, BN variance, kecam layer scale
            value = rng.uniform(0.5, 1.5, shape)
        elif leaf in ("beta", "bias", "moving_mean"):
            value = rng.normal(0.0, 0.1, shape)
        elif leaf in ("positional_embedding", "pos_embedding", "cls"):
            value = rng.normal(0.0, 0.5, shape)
        else:
            continue  # kernels: the initialiser's seeded draw keeps activations in range
        var.assign(value.astype(np.float32))


def logits_of(model):
    """Differentiate the pre-softmax output: heads built with a softmax get a linear activation."""
    head = model.layers[-1]
    if getattr(head, "activation", None) is tf_keras.activations.softmax:
        head.activation = tf_keras.activations.linear
    return model


def reference_float64(entry: dict, weights: list, labels: np.ndarray) -> dict:
    """Logits and saliency (with respect to the model input) of a float64 copy of the model, built
    at the inputs' size (which may differ from the float32 model's where no weight depends on it)."""
    inputs = np.load(entry["float64_inputs"]).astype(np.float64)
    tf_keras.backend.set_floatx("float64")
    try:
        model = logits_of(build(entry["id"], inputs.shape[1]))
        model.set_weights(weights)
        x = tf.convert_to_tensor(inputs)
        with tf.GradientTape() as tape:
            tape.watch(x)
            logits = model(x, training=False)
            target = tf.reduce_sum(tf.gather(logits, labels, axis=1, batch_dims=1))
        grad = tape.gradient(target, x)
    finally:
        tf_keras.backend.set_floatx("float32")
    return {"logits64": logits.numpy(), "saliency64": tf.reduce_max(tf.abs(grad), axis=-1).numpy()}


def reference(model, images: np.ndarray, labels: np.ndarray, size: int) -> dict:
    x = tf.convert_to_tensor(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.image.resize(x, (size, size), method="bilinear") if size != images.shape[1] else x
        logits = model((y / 255.0 - MEAN) / STD, training=False)
        target = tf.reduce_sum(tf.gather(logits, labels, axis=1, batch_dims=1))
    grad = tape.gradient(target, x)
    return {"logits": logits.numpy(), "saliency": tf.reduce_max(tf.abs(grad), axis=-1).numpy()}


def main(job_path: str) -> None:
    with open(job_path, encoding="utf-8") as fh:
        job = json.load(fh)
    images, labels = np.load(job["images"]), np.load(job["labels"])
    for entry in job["models"]:
        tf_keras.backend.clear_session()
        tf_keras.utils.set_random_seed(entry["seed"])
        model = build(entry["id"], entry["size"])
        randomize(model, entry["seed"])
        if entry["format"] == "model":
            model.save(entry["h5"])
        else:
            model.save_weights(entry["h5"])
        result = reference(logits_of(model), images, labels, entry["size"])
        if entry.get("float64_inputs"):
            result.update(reference_float64(entry, model.get_weights(), labels))
        np.savez(entry["out"], **result)
        print(f"{entry['id']}: {model.count_params()} parameters at {entry['size']}px", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
