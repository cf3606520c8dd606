"""Theano tutorial programs (deeplearning.net), ported by changing nothing but the imports, each
checked against numpy (or PyTorch) computing the same thing: logistic regression with givens
over a shared dataset, an MLP with early stopping, LeNet with conv2d/pool_2d, a denoising
autoencoder with binomial corruption, the lstm.py tutorial's LSTM with scan. Small sizes: they
test semantics, not speed."""
from collections import OrderedDict

import numpy
import pytest

import graphc.theano as theano
import graphc.theano.tensor as T
from graphc.theano.tensor.nnet import conv2d
from graphc.theano.tensor.shared_randomstreams import RandomStreams
from graphc.theano.tensor.signal import pool


def shared_dataset(data_xy, borrow=True):
    data_x, data_y = data_xy
    shared_x = theano.shared(numpy.asarray(data_x, dtype=theano.config.floatX), borrow=borrow)
    shared_y = theano.shared(numpy.asarray(data_y, dtype=theano.config.floatX), borrow=borrow)
    return shared_x, T.cast(shared_y, "int32")


def toy_digits(n, n_in, n_out, seed):
    rng = numpy.random.RandomState(seed)
    centers = rng.randn(n_out, n_in) * 2
    y = rng.randint(0, n_out, n)
    x = centers[y] + rng.randn(n, n_in)
    return x.astype("float32"), y


class LogisticRegression(object):  # the tutorial's class, as written
    def __init__(self, input, n_in, n_out):
        self.W = theano.shared(value=numpy.zeros((n_in, n_out), dtype=theano.config.floatX),
                               name="W", borrow=True)
        self.b = theano.shared(value=numpy.zeros((n_out,), dtype=theano.config.floatX),
                               name="b", borrow=True)
        self.p_y_given_x = T.nnet.softmax(T.dot(input, self.W) + self.b)
        self.y_pred = T.argmax(self.p_y_given_x, axis=1)
        self.params = [self.W, self.b]
        self.input = input

    def negative_log_likelihood(self, y):
        return -T.mean(T.log(self.p_y_given_x)[T.arange(y.shape[0]), y])

    def errors(self, y):
        return T.mean(T.neq(self.y_pred, y))


class HiddenLayer(object):
    def __init__(self, rng, input, n_in, n_out, W=None, b=None, activation=T.tanh):
        self.input = input
        if W is None:
            W_values = numpy.asarray(rng.uniform(low=-numpy.sqrt(6. / (n_in + n_out)),
                                                 high=numpy.sqrt(6. / (n_in + n_out)),
                                                 size=(n_in, n_out)), dtype=theano.config.floatX)
            W = theano.shared(value=W_values, name="W", borrow=True)
        if b is None:
            b = theano.shared(value=numpy.zeros((n_out,), dtype=theano.config.floatX), name="b",
                              borrow=True)
        self.W, self.b = W, b
        lin_output = T.dot(input, self.W) + self.b
        self.output = lin_output if activation is None else activation(lin_output)
        self.params = [self.W, self.b]


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = numpy.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def test_logistic_regression_sgd_with_givens():
    n_in, n_out, batch_size, learning_rate = 20, 4, 16, 0.13
    train = toy_digits(150, n_in, n_out, 0)  # 150 = 9 batches of 16 and a short one of 6
    train_set_x, train_set_y = shared_dataset(train)
    n_train_batches = -(-train[0].shape[0] // batch_size)
    index = T.lscalar()
    x = T.matrix("x")
    y = T.ivector("y")
    classifier = LogisticRegression(input=x, n_in=n_in, n_out=n_out)
    cost = classifier.negative_log_likelihood(y)
    g_W = T.grad(cost=cost, wrt=classifier.W)
    g_b = T.grad(cost=cost, wrt=classifier.b)
    updates = [(classifier.W, classifier.W - learning_rate * g_W),
               (classifier.b, classifier.b - learning_rate * g_b)]
    train_model = theano.function(
        inputs=[index], outputs=cost, updates=updates,
        givens={x: train_set_x[index * batch_size: (index + 1) * batch_size],
                y: train_set_y[index * batch_size: (index + 1) * batch_size]})
    test_model = theano.function(
        inputs=[index], outputs=classifier.errors(y),
        givens={x: train_set_x[index * batch_size: (index + 1) * batch_size],
                y: train_set_y[index * batch_size: (index + 1) * batch_size]})

    W, b = numpy.zeros((n_in, n_out)), numpy.zeros(n_out)
    X, Y = train[0].astype("float64"), train[1]
    for epoch in range(3):
        for minibatch_index in range(n_train_batches):
            got = train_model(minibatch_index)
            xb = X[minibatch_index * batch_size:(minibatch_index + 1) * batch_size]
            yb = Y[minibatch_index * batch_size:(minibatch_index + 1) * batch_size]
            p = _softmax(xb @ W + b)
            want = -numpy.mean(numpy.log(p[numpy.arange(len(yb)), yb]))
            numpy.testing.assert_allclose(got, want, rtol=1e-4)
            d = p.copy()
            d[numpy.arange(len(yb)), yb] -= 1
            d /= len(yb)
            W -= learning_rate * xb.T @ d
            b -= learning_rate * d.sum(axis=0)
    numpy.testing.assert_allclose(classifier.W.get_value(), W, rtol=1e-3, atol=1e-5)
    errors = [test_model(i) for i in range(n_train_batches)]
    want = [numpy.mean(numpy.argmax(X[i * batch_size:(i + 1) * batch_size] @ W + b, axis=1)
                       != Y[i * batch_size:(i + 1) * batch_size]) for i in range(n_train_batches)]
    numpy.testing.assert_allclose(errors, want, atol=1e-6)


def test_mlp_with_early_stopping():
    n_in, n_hidden, n_out, batch_size = 12, 16, 3, 10
    learning_rate, L2_reg = 0.05, 0.0001
    both = toy_digits(90, n_in, n_out, 1)
    train, valid = (both[0][:60], both[1][:60]), (both[0][60:], both[1][60:])
    (train_set_x, train_set_y), (valid_set_x, valid_set_y) = shared_dataset(train), shared_dataset(valid)
    rng = numpy.random.RandomState(1234)
    index, x, y = T.lscalar(), T.matrix("x"), T.ivector("y")
    hidden = HiddenLayer(rng, input=x, n_in=n_in, n_out=n_hidden, activation=T.tanh)
    log_reg = LogisticRegression(input=hidden.output, n_in=n_hidden, n_out=n_out)
    L2_sqr = (hidden.W ** 2).sum() + (log_reg.W ** 2).sum()
    cost = log_reg.negative_log_likelihood(y) + L2_reg * L2_sqr
    params = hidden.params + log_reg.params
    gparams = [T.grad(cost, param) for param in params]
    updates = [(param, param - learning_rate * gparam) for param, gparam in zip(params, gparams)]
    train_model = theano.function(
        inputs=[index], outputs=cost, updates=updates,
        givens={x: train_set_x[index * batch_size: (index + 1) * batch_size],
                y: train_set_y[index * batch_size: (index + 1) * batch_size]})
    validate_model = theano.function(
        inputs=[index], outputs=log_reg.errors(y),
        givens={x: valid_set_x[index * batch_size:(index + 1) * batch_size],
                y: valid_set_y[index * batch_size:(index + 1) * batch_size]})
    W1, b1 = hidden.W.get_value().astype("float64"), numpy.zeros(n_hidden)
    W2, b2 = numpy.zeros((n_hidden, n_out)), numpy.zeros(n_out)

    def numpy_step(xb, yb):
        nonlocal W1, b1, W2, b2
        h = numpy.tanh(xb @ W1 + b1)
        p = _softmax(h @ W2 + b2)
        cost = -numpy.mean(numpy.log(p[numpy.arange(len(yb)), yb])) + \
            L2_reg * ((W1 ** 2).sum() + (W2 ** 2).sum())
        d = p.copy()
        d[numpy.arange(len(yb)), yb] -= 1
        d /= len(yb)
        dh = (d @ W2.T) * (1 - h ** 2)
        W2, b2 = W2 - learning_rate * (h.T @ d + 2 * L2_reg * W2), b2 - learning_rate * d.sum(0)
        W1, b1 = W1 - learning_rate * (xb.T @ dh + 2 * L2_reg * W1), b1 - learning_rate * dh.sum(0)
        return cost

    def numpy_valid(i):
        xb, yb = valid[0][i * batch_size:(i + 1) * batch_size], valid[1][i * batch_size:(i + 1) * batch_size]
        return numpy.mean(numpy.argmax(numpy.tanh(xb @ W1 + b1) @ W2 + b2, axis=1) != yb)

    # the tutorial's early-stopping loop
    n_train_batches, n_valid_batches = 6, 3
    patience, patience_increase, improvement_threshold = 40, 2, 0.995
    validation_frequency = min(n_train_batches, patience // 2)
    best_validation_loss, epoch, done_looping, history = numpy.inf, 0, False, []
    while epoch < 20 and not done_looping:
        epoch = epoch + 1
        for minibatch_index in range(n_train_batches):
            cost_got = train_model(minibatch_index)
            lo, hi = minibatch_index * batch_size, (minibatch_index + 1) * batch_size
            numpy.testing.assert_allclose(cost_got, numpy_step(train[0][lo:hi], train[1][lo:hi]),
                                          rtol=1e-3)
            iter = (epoch - 1) * n_train_batches + minibatch_index
            if (iter + 1) % validation_frequency == 0:
                this_validation_loss = numpy.mean([validate_model(i) for i in range(n_valid_batches)])
                assert abs(this_validation_loss - numpy.mean([numpy_valid(i) for i in range(3)])) < 1e-6
                history.append(this_validation_loss)
                if this_validation_loss < best_validation_loss:
                    if this_validation_loss < best_validation_loss * improvement_threshold:
                        patience = max(patience, iter * patience_increase)
                    best_validation_loss = this_validation_loss
            if patience <= iter:
                done_looping = True
                break
    assert best_validation_loss < 0.2 and len(history) >= 3
    numpy.testing.assert_allclose(hidden.W.get_value(), W1, rtol=1e-3, atol=1e-4)


class LeNetConvPoolLayer(object):
    def __init__(self, rng, input, filter_shape, image_shape, poolsize=(2, 2)):
        assert image_shape[1] == filter_shape[1]
        fan_in = numpy.prod(filter_shape[1:])
        fan_out = (filter_shape[0] * numpy.prod(filter_shape[2:]) // numpy.prod(poolsize))
        W_bound = numpy.sqrt(6. / (fan_in + fan_out))
        self.W = theano.shared(numpy.asarray(rng.uniform(low=-W_bound, high=W_bound,
                                                         size=filter_shape),
                                             dtype=theano.config.floatX), borrow=True)
        self.b = theano.shared(value=numpy.zeros((filter_shape[0],), dtype=theano.config.floatX),
                               borrow=True)
        conv_out = conv2d(input=input, filters=self.W, filter_shape=filter_shape,
                          input_shape=image_shape)
        pooled_out = pool.pool_2d(input=conv_out, ws=poolsize, ignore_border=True)
        self.output = T.tanh(pooled_out + self.b.dimshuffle("x", 0, "x", "x"))
        self.params = [self.W, self.b]


def _lenet(batch_size, seed):
    rng = numpy.random.RandomState(seed)
    index, x, y = T.lscalar(), T.matrix("x"), T.ivector("y")
    layer0_input = x.reshape((batch_size, 1, 12, 12))
    layer0 = LeNetConvPoolLayer(rng, input=layer0_input, image_shape=(batch_size, 1, 12, 12),
                                filter_shape=(4, 1, 3, 3), poolsize=(2, 2))
    layer1 = LeNetConvPoolLayer(rng, input=layer0.output, image_shape=(batch_size, 4, 5, 5),
                                filter_shape=(6, 4, 2, 2), poolsize=(2, 2))
    layer2 = HiddenLayer(rng, input=layer1.output.flatten(2), n_in=6 * 2 * 2, n_out=10,
                         activation=T.tanh)
    layer3 = LogisticRegression(input=layer2.output, n_in=10, n_out=3)
    layers = [layer0, layer1, layer2, layer3]
    return index, x, y, layers, layer3.negative_log_likelihood(y)


def test_lenet_conv_pool_forward_matches_numpy():
    batch_size = 5
    index, x, y, layers, cost = _lenet(batch_size, 23455)
    data = toy_digits(batch_size, 144, 3, 3)
    f = theano.function([x, y], [layers[0].output, cost])
    out0, got_cost = f(data[0], data[1].astype("int32"))
    w, b = layers[0].W.get_value(), layers[0].b.get_value()
    img = data[0].reshape(batch_size, 1, 12, 12)
    conv = numpy.zeros((batch_size, 4, 10, 10))
    for i in range(10):
        for j in range(10):
            conv[:, :, i, j] = numpy.einsum("nchw,ochw->no", img[:, :, i:i + 3, j:j + 3],
                                            w[:, :, ::-1, ::-1])  # Theano flips the filters
    pooled = conv.reshape(batch_size, 4, 5, 2, 5, 2).max(axis=(3, 5))
    numpy.testing.assert_allclose(out0, numpy.tanh(pooled + b[None, :, None, None]),
                                  rtol=1e-4, atol=1e-5)
    assert numpy.isfinite(got_cost)


def test_lenet_training_matches_torch():
    import pytest
    torch = pytest.importorskip("torch")
    batch_size, learning_rate = 5, 0.1
    index, x, y, layers, cost = _lenet(batch_size, 23455)
    train = toy_digits(20, 144, 3, 4)
    train_set_x, train_set_y = shared_dataset(train)
    params = layers[3].params + layers[2].params + layers[1].params + layers[0].params
    grads = T.grad(cost, params)
    updates = [(p, p - learning_rate * g) for p, g in zip(params, grads)]
    train_model = theano.function(
        [index], cost, updates=updates,
        givens={x: train_set_x[index * batch_size: (index + 1) * batch_size],
                y: train_set_y[index * batch_size: (index + 1) * batch_size]})
    tp = [torch.tensor(p.get_value().astype("float64"), requires_grad=True) for p in params]
    W3, b3, W2, b2, W1, b1, W0, b0 = tp
    F = torch.nn.functional

    def torch_cost(xb, yb):
        h = xb.reshape(batch_size, 1, 12, 12)
        h = torch.tanh(F.max_pool2d(F.conv2d(h, W0.flip(2, 3)), 2) + b0[None, :, None, None])
        h = torch.tanh(F.max_pool2d(F.conv2d(h, W1.flip(2, 3)), 2) + b1[None, :, None, None])
        h = torch.tanh(h.flatten(1) @ W2 + b2)
        return F.cross_entropy(h @ W3 + b3, yb)

    for epoch in range(2):
        for i in range(4):
            got = train_model(i)
            xb = torch.tensor(train[0][i * batch_size:(i + 1) * batch_size].astype("float64"))
            yb = torch.tensor(train[1][i * batch_size:(i + 1) * batch_size])
            c = torch_cost(xb, yb)
            c.backward()
            with torch.no_grad():
                for p in tp:
                    p -= learning_rate * p.grad
                    p.grad = None
            numpy.testing.assert_allclose(got, c.item(), rtol=1e-3)
    for p, t in zip(params, tp):
        numpy.testing.assert_allclose(p.get_value(), t.detach().numpy(), rtol=1e-3, atol=1e-4)


class dA(object):
    def __init__(self, numpy_rng, theano_rng=None, input=None, n_visible=784, n_hidden=500):
        self.n_visible, self.n_hidden = n_visible, n_hidden
        if not theano_rng:
            theano_rng = RandomStreams(numpy_rng.randint(2 ** 30))
        initial_W = numpy.asarray(numpy_rng.uniform(
            low=-4 * numpy.sqrt(6. / (n_hidden + n_visible)),
            high=4 * numpy.sqrt(6. / (n_hidden + n_visible)),
            size=(n_visible, n_hidden)), dtype=theano.config.floatX)
        self.W = theano.shared(value=initial_W, name="W", borrow=True)
        self.b_prime = theano.shared(value=numpy.zeros(n_visible, dtype=theano.config.floatX),
                                     borrow=True)
        self.b = theano.shared(value=numpy.zeros(n_hidden, dtype=theano.config.floatX),
                               name="b", borrow=True)
        self.W_prime = self.W.T
        self.theano_rng = theano_rng
        self.x = T.dmatrix(name="input") if input is None else input
        self.params = [self.W, self.b, self.b_prime]

    def get_corrupted_input(self, input, corruption_level):
        return self.theano_rng.binomial(size=input.shape, n=1, p=1 - corruption_level,
                                        dtype=theano.config.floatX) * input

    def get_hidden_values(self, input):
        return T.nnet.sigmoid(T.dot(input, self.W) + self.b)

    def get_reconstructed_input(self, hidden):
        return T.nnet.sigmoid(T.dot(hidden, self.W_prime) + self.b_prime)

    def get_cost_updates(self, corruption_level, learning_rate):
        tilde_x = self.get_corrupted_input(self.x, corruption_level)
        y = self.get_hidden_values(tilde_x)
        z = self.get_reconstructed_input(y)
        L = - T.sum(self.x * T.log(z) + (1 - self.x) * T.log(1 - z), axis=1)
        cost = T.mean(L)
        gparams = T.grad(cost, self.params)
        updates = [(param, param - learning_rate * gparam)
                   for param, gparam in zip(self.params, gparams)]
        return cost, updates, tilde_x


def test_denoising_autoencoder_with_binomial_corruption():
    n_visible, n_hidden, batch_size, learning_rate, level = 16, 6, 8, 0.1, 0.3
    data = (numpy.random.RandomState(5).rand(32, n_visible) > 0.5).astype("float32")
    train_set_x = theano.shared(data, borrow=True)
    index, x = T.lscalar(), T.matrix("x")
    rng = numpy.random.RandomState(123)
    da = dA(numpy_rng=rng, theano_rng=RandomStreams(rng.randint(2 ** 30)), input=x,
            n_visible=n_visible, n_hidden=n_hidden)
    cost, updates, tilde_x = da.get_cost_updates(corruption_level=level,
                                                 learning_rate=learning_rate)
    train_da = theano.function([index], [cost, tilde_x], updates=updates,
                               givens={x: train_set_x[index * batch_size: (index + 1) * batch_size]})
    W, b, bp = (p.get_value().astype("float64") for p in da.params)
    masks = []
    for epoch in range(3):
        for i in range(4):
            got_cost, corrupted = train_da(i)
            xb = data[i * batch_size:(i + 1) * batch_size].astype("float64")
            mask = corrupted != 0
            assert numpy.array_equal(corrupted, xb * mask)  # binomial(n=1) * x
            masks.append(mask[xb != 0])
            t = corrupted.astype("float64")
            sig = lambda a: 1 / (1 + numpy.exp(-a))  # noqa: E731
            h = sig(t @ W + b)
            z = sig(h @ W.T + bp)
            want = numpy.mean(-numpy.sum(xb * numpy.log(z) + (1 - xb) * numpy.log(1 - z), axis=1))
            numpy.testing.assert_allclose(got_cost, want, rtol=1e-4)
            dz = (z - xb) / batch_size
            dh = (dz @ W) * h * (1 - h)
            gW = t.T @ dh + dz.T @ h
            W, b, bp = W - learning_rate * gW, b - learning_rate * dh.sum(0), bp - learning_rate * dz.sum(0)
    kept = numpy.concatenate(masks).mean()
    assert abs(kept - (1 - level)) < 0.08  # the corruption keeps 70 % of the ones
    assert not all(numpy.array_equal(masks[0], m) for m in masks[1:])  # a new mask per call
    numpy.testing.assert_allclose(da.W.get_value(), W, rtol=1e-3, atol=1e-5)


# --- LSTM with scan: the deeplearning.net lstm.py tutorial's model (embedding, masked LSTM layer
# over theano.scan, mean pooling, softmax), its code shape kept: an OrderedDict of shared params,
# _slice, a _step taking (mask, x, h, c), T.alloc'd initial states, plain SGD updates.
def numpy_floatX(data):
    return numpy.asarray(data, dtype=theano.config.floatX)


def _p(pp, name):
    return "%s_%s" % (pp, name)


def init_lstm_params(n_words, dim_proj, ydim, seed):
    rng = numpy.random.RandomState(seed)
    params = OrderedDict()
    params["Wemb"] = (0.1 * rng.rand(n_words, dim_proj)).astype(theano.config.floatX)
    params[_p("lstm", "W")] = (0.3 * rng.randn(dim_proj, 4 * dim_proj)).astype(theano.config.floatX)
    params[_p("lstm", "U")] = (0.3 * rng.randn(dim_proj, 4 * dim_proj)).astype(theano.config.floatX)
    params[_p("lstm", "b")] = numpy.zeros((4 * dim_proj,)).astype(theano.config.floatX)
    params["U"] = 0.1 * rng.randn(dim_proj, ydim).astype(theano.config.floatX)
    params["b"] = numpy.zeros((ydim,)).astype(theano.config.floatX)
    return params


def lstm_layer(tparams, state_below, options, prefix="lstm", mask=None):
    nsteps = state_below.shape[0]
    n_samples = state_below.shape[1]

    def _slice(_x, n, dim):
        return _x[:, n * dim:(n + 1) * dim]

    def _step(m_, x_, h_, c_):
        preact = T.dot(h_, tparams[_p(prefix, "U")])
        preact += x_
        i = T.nnet.sigmoid(_slice(preact, 0, options["dim_proj"]))
        f = T.nnet.sigmoid(_slice(preact, 1, options["dim_proj"]))
        o = T.nnet.sigmoid(_slice(preact, 2, options["dim_proj"]))
        c = T.tanh(_slice(preact, 3, options["dim_proj"]))
        c = f * c_ + i * c
        c = m_[:, None] * c + (1. - m_)[:, None] * c_
        h = o * T.tanh(c)
        h = m_[:, None] * h + (1. - m_)[:, None] * h_
        return h, c

    state_below = (T.dot(state_below, tparams[_p(prefix, "W")]) + tparams[_p(prefix, "b")])
    dim_proj = options["dim_proj"]
    rval, updates = theano.scan(_step, sequences=[mask, state_below],
                                outputs_info=[T.alloc(numpy_floatX(0.), n_samples, dim_proj),
                                              T.alloc(numpy_floatX(0.), n_samples, dim_proj)],
                                name=_p(prefix, "_layers"),
                                n_steps=nsteps)
    return rval[0]


def build_lstm_model(tparams, options):
    x = T.matrix("x", dtype="int64")
    mask = T.matrix("mask", dtype=theano.config.floatX)
    y = T.vector("y", dtype="int64")
    n_timesteps = x.shape[0]
    n_samples = x.shape[1]
    emb = tparams["Wemb"][x.flatten()].reshape([n_timesteps, n_samples, options["dim_proj"]])
    proj = lstm_layer(tparams, emb, options, prefix="lstm", mask=mask)
    proj = (proj * mask[:, :, None]).sum(axis=0)
    proj = proj / mask.sum(axis=0)[:, None]
    pred = T.nnet.softmax(T.dot(proj, tparams["U"]) + tparams["b"])
    cost = -T.log(pred[T.arange(n_samples), y] + 1e-8).mean()
    return x, mask, y, cost


def _lstm_batches(n_words, n_batches, seed):
    """(x, mask, y) minibatches of variable-length sequences, padded as the tutorial's prepare_data."""
    rng = numpy.random.RandomState(seed)
    for _ in range(n_batches):
        lengths = rng.randint(2, 7, size=4)
        x = numpy.zeros((lengths.max(), 4), dtype="int64")
        mask = numpy.zeros((lengths.max(), 4), dtype=theano.config.floatX)
        for j, n in enumerate(lengths):
            x[:n, j] = rng.randint(1, n_words, size=n)
            mask[:n, j] = 1.
        yield x, mask, rng.randint(0, 2, size=4).astype("int64")


def test_lstm_with_scan_trains_like_torch():
    torch = pytest.importorskip("torch")
    options = dict(dim_proj=5, n_words=12, ydim=2)
    params = init_lstm_params(options["n_words"], options["dim_proj"], options["ydim"], seed=3)
    tparams = OrderedDict((k, theano.shared(v, name=k)) for k, v in params.items())
    x, mask, y, cost = build_lstm_model(tparams, options)
    lr = T.scalar(name="lr")
    grads = T.grad(cost, wrt=list(tparams.values()))
    train = theano.function([x, mask, y, lr], cost,
                            updates=[(p, p - lr * g) for p, g in zip(tparams.values(), grads)],
                            allow_input_downcast=True)

    # PyTorch, the same model written directly (float64)
    tp = {k: torch.tensor(v.astype("float64"), requires_grad=True) for k, v in params.items()}
    d = options["dim_proj"]

    def torch_cost(xb, mb, yb):
        emb = tp["Wemb"][xb.flatten()].reshape(xb.shape[0], xb.shape[1], d)
        xw = emb @ tp["lstm_W"] + tp["lstm_b"]
        h = c = torch.zeros(xb.shape[1], d, dtype=torch.float64)
        hs = []
        for t in range(xb.shape[0]):
            pre = h @ tp["lstm_U"] + xw[t]
            i, f, o = (torch.sigmoid(pre[:, k * d:(k + 1) * d]) for k in range(3))
            c_new = f * c + i * torch.tanh(pre[:, 3 * d:])
            m = mb[t][:, None]
            c = m * c_new + (1 - m) * c
            h = m * (o * torch.tanh(c)) + (1 - m) * h
            hs.append(h)
        proj = (torch.stack(hs) * mb[:, :, None]).sum(0) / mb.sum(0)[:, None]
        pred = torch.softmax(proj @ tp["U"] + tp["b"], dim=1)
        return -torch.log(pred[torch.arange(xb.shape[1]), yb] + 1e-8).mean()

    for xb, mb, yb in _lstm_batches(options["n_words"], 4, seed=4):
        ours = float(train(xb, mb, yb, 0.5))
        ref = torch_cost(torch.tensor(xb), torch.tensor(mb.astype("float64")), torch.tensor(yb))
        ref.backward()
        with torch.no_grad():
            for p in tp.values():
                p -= 0.5 * p.grad
                p.grad = None
        numpy.testing.assert_allclose(ours, float(ref.detach()), rtol=1e-4)
    for k, p in tparams.items():
        numpy.testing.assert_allclose(p.get_value(), tp[k].detach().numpy(), rtol=1e-3, atol=1e-5,
                                      err_msg=k)
