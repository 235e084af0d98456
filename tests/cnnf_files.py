"""Small MatConvNet SimpleNN files shaped like imagenet-vgg-f.mat, in both layouts, for the CNN-F tests."""

import numpy as np


def _cell(*items):
    c = np.empty((1, len(items)), dtype=object)
    for i, v in enumerate(items):
        c[0, i] = v
    return c


def tiny_cnnf(rng, layout):
    """A CNN-F-shaped MatConvNet SimpleNN file with few channels (the real one has 61M weights)."""
    ch = [3, 4, 6, 5, 5, 6]
    fc = [7, 9, 1000]
    shapes = {"conv1": (11, 11, ch[0], ch[1]), "conv2": (5, 5, ch[1], ch[2]), "conv3": (3, 3, ch[2], ch[3]),
              "conv4": (3, 3, ch[3], ch[4]), "conv5": (3, 3, ch[4], ch[5]), "fc6": (6, 6, ch[5], fc[0]),
              "fc7": (1, 1, fc[0], fc[1]), "fc8": (1, 1, fc[1], fc[2])}
    pads = {"conv1": [0, 0, 0, 0], "conv2": [2, 2, 2, 2], "conv3": [1, 1, 1, 1], "conv4": [1, 1, 1, 1],
            "conv5": [1, 1, 1, 1], "fc6": [0, 0, 0, 0], "fc7": [0, 0, 0, 0], "fc8": [0, 0, 0, 0]}
    order = ["conv1", "relu1", "norm1", "pool1", "conv2", "relu2", "norm2", "pool2", "conv3", "relu3", "conv4",
             "relu4", "conv5", "relu5", "pool5", "fc6", "relu6", "fc7", "relu7", "fc8", "prob"]
    weights, layers = {}, []
    for name in order:
        if name in shapes:
            w = rng.standard_normal(shapes[name]).astype(np.float32) * 0.1
            b = rng.standard_normal((1, shapes[name][3])).astype(np.float32) * 0.1
            weights[name] = (w, b)
            stride = np.array([[4, 4]] if name == "conv1" else [[1, 1]], dtype=float)
            if layout == "old":  # beta16 field order: weights, pad, type, name, stride
                layers.append({"weights": _cell(w, b), "pad": np.array([pads[name]], float), "type": "conv",
                               "name": name, "stride": stride})
            else:
                layers.append({"name": name, "type": "conv", "weights": _cell(w, b),
                               "size": np.array([shapes[name]], float), "pad": np.array([pads[name]], float),
                               "stride": stride, "dilate": np.array([[1.0]]), "precious": False})
        elif name.startswith("relu"):
            layers.append({"name": name, "type": "relu"})
        elif name.startswith("norm"):
            layers.append({"name": name, "type": "lrn", "param": np.array([[5, 2, 1e-4, 0.75]])})
        elif name.startswith("pool"):
            layers.append({"name": name, "stride": np.array([[2, 2]], float), "pad": np.array([[0, 1, 0, 1]], float),
                           "type": "pool", "method": "max", "pool": np.array([[3, 3]], float)})
        else:
            layers.append({"name": name, "type": "softmax"})
    avg = (rng.random((224, 224, 3)) * 255).astype(np.float32)
    if layout == "old":
        content = {"layers": _cell(*layers), "normalization": {"averageImage": avg, "keepAspect": 1}}
    else:
        content = {"layers": _cell(*layers), "meta": {"normalization": {"averageImage": avg, "imageSize":
                                                                         np.array([[224, 224, 3]])}}}
    return content, weights, avg
