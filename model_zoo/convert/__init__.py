"""PyTorch forms of the released harmonized models.

* :mod:`model_zoo.convert.ports`: the PyTorch architecture equivalent to each one's Keras model
  (timm or torchvision where one exists; a port of keras.applications' ResNet50V2 otherwise);
* :mod:`model_zoo.convert.weight_maps`: where each Keras layer's weights go in it (data);
* :mod:`model_zoo.convert.keras_to_torch`: applies a map to a ``.h5`` file;
* :mod:`model_zoo.convert.export`: writes the result as an exported model folder
  (``alignbench models convert ID --to torch OUT``).

Importing this package imports neither PyTorch nor TensorFlow.
"""
