"""The classic Keras MNIST tutorial, exactly as written, exported to ONNX with tf2onnx.

Sequential(Flatten, Dense(100), Dense(10)); Adam; SparseCategoricalCrossentropy(from_logits=True);
3 epochs validating on the test set; raw pixels 0..255, since the tutorial never scales them.
`--conv` enables the tutorial's Conv2D(32, 3) line before the Flatten. MNIST is read from the
IDX files (no download). Run it in a venv with
`pip install tensorflow-cpu==2.15.1 tf2onnx==1.16.1 "numpy<2"`:

    python docs/keras_mnist.py data/mnist keras_mlp.onnx [--conv]
"""
import gzip
import sys

import numpy as np
import tensorflow as tf
import tf2onnx


def idx(path):
    with gzip.open(path) as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


data, out = sys.argv[1], sys.argv[2]
x_train = idx(f"{data}/train-images-idx3-ubyte.gz").astype("float32")[..., None]
y_train = idx(f"{data}/train-labels-idx1-ubyte.gz")
x_test = idx(f"{data}/t10k-images-idx3-ubyte.gz").astype("float32")[..., None]
y_test = idx(f"{data}/t10k-labels-idx1-ubyte.gz")

tf.keras.utils.set_random_seed(0)
conv = [tf.keras.layers.Conv2D(32, 3, activation="relu")] if "--conv" in sys.argv else []
model = tf.keras.Sequential([
    tf.keras.layers.InputLayer(input_shape=(28, 28, 1)),
    *conv,
    tf.keras.layers.Flatten(),
    tf.keras.layers.Dense(100),
    tf.keras.layers.Dense(10),
])
model.compile(
    optimizer="adam",
    loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
model.fit(x_train, y_train, epochs=3, validation_data=(x_test, y_test), verbose=2)
print("test image 1 is predicted as", int(np.argmax(model.predict(x_test[1:2], verbose=0))))

spec = (tf.TensorSpec((None, 28, 28, 1), tf.float32, name="input"),)
tf2onnx.convert.from_keras(model, input_signature=spec, opset=17, output_path=out)
print("wrote", out)
