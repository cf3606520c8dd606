"""Logistic regression: Theano's tutorial program with `T.`/`theano.` replaced by `G.`.

Run: python examples/logistic_regression.py
"""
import numpy as np

import graphc as G

rng = np.random.RandomState(123)
N, feats = 400, 100
D = (rng.randn(N, feats).astype("float32"), rng.randint(size=N, low=0, high=2).astype("float32"))
training_steps = 1000

# Declare the symbolic variables and the shared model parameters.
x = G.matrix("x")
y = G.vector("y")
w = G.shared(rng.randn(feats).astype("float32"), name="w")
b = G.shared(np.float32(0.0), name="b")
print("Initial model:", w.get_value()[:5], "...", b.get_value())

# Construct the expression graph.
p_1 = 1 / (1 + G.exp(-G.dot(x, w) - b))  # probability that target = 1
prediction = p_1 > 0.5  # the prediction thresholded
xent = -y * G.log(p_1) - (1 - y) * G.log(1 - p_1)  # cross-entropy loss
cost = xent.mean() + 0.01 * (w ** 2).sum()  # the cost to minimize
gw, gb = G.grad(cost, [w, b])

# Compile.
train = G.function(inputs=[x, y], outputs=[prediction, xent],
                   updates={w: w - 0.1 * gw, b: b - 0.1 * gb}, name="train")
predict = G.function(inputs=[x], outputs=prediction, name="predict")
print(f"compiled train in {train.timings['total']:.2f} s (cache hit: {train.timings['cache_hit']})")

# Train.
for i in range(training_steps):
    pred, err = train(D[0], D[1])
    if i % 200 == 0:
        print(f"step {i:4d}  mean cross-entropy {err.mean():.4f}")

print("Final model:", w.get_value()[:5], "...", b.get_value())
print("target values for D:", D[1][:20].astype(int))
print("prediction on D:    ", predict(D[0])[:20].astype(int))
print(f"training accuracy: {(predict(D[0]) == D[1]).mean():.3f}")
