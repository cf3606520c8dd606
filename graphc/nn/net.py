"""Net: a Caffe-style DAG of named layers over named blobs, built on graphc's public API.

    net = nn.Net("lenet", seed=1)
    net.input("data", (G.dim("batch"), 1, 28, 28))
    net.input("label", (G.dim("batch"),), "int64")
    net.add(nn.Conv2D("conv1", num_output=20, kernel_size=5), bottom="data")
    ...
    net.add(nn.SoftmaxWithLoss("loss", bottom=["ip2", "label"]))

Every ``add`` builds the layer's graph immediately, once for the TRAIN phase and once for the
TEST phase (the two differ only below Dropout/BatchNorm; elsewhere the TEST blob *is* the TRAIN
blob), so a bad configuration fails right there with the layer's name and its bottom shapes.

* ``net.params``: trainable shared variables by name (``"conv1.W"``, or the name given in the
  layer's ``param=[{"name": ...}]``; two layers naming the same parameter share it, and its
  gradient is the sum of both uses). ``net.lr_mult`` / ``net.decay_mult`` hold Caffe's
  per-parameter multipliers; ``net.buffers`` holds non-trained state (BatchNorm averages).
* ``net["ip1"]`` / ``net.blob("ip1", phase)``: the symbolic blob (features of an inner layer).
* ``net.loss``: the TRAIN objective, sum over loss layers of ``loss_weight * top``.
* ``net.function(outputs, phase)``: compile a function of exactly the net inputs it needs.
* ``net.state_dict()`` / ``net.load_state_dict(d)`` / ``net.load(path)``: by-name save/load;
  loading reports which parameters were loaded and which were skipped (and why).
"""
from collections import OrderedDict

import numpy as np

import graphc as G

from ..train import atomic_savez
from .fillers import get_filler, rng_for

__all__ = ["Net", "ParamSpec", "LoadReport", "format_shape"]

PHASES = ("train", "test")


def format_shape(v):
    """'(batch, 1, 28, 28) float32' for a symbolic variable."""
    dims = ", ".join(str(d) for d in v.static_shape)
    if len(v.static_shape) == 1:
        dims += ","
    return f"({dims}) {v.dtype}"


class ParamSpec:
    """Caffe's ParamSpec: optional shared name, lr_mult, decay_mult."""

    def __init__(self, name=None, lr_mult=None, decay_mult=None):
        self.name = name
        self.lr_mult = lr_mult
        self.decay_mult = decay_mult

    @classmethod
    def make(cls, spec):
        if spec is None:
            return cls()
        if isinstance(spec, cls):
            return spec
        if isinstance(spec, dict):
            unknown = set(spec) - {"name", "lr_mult", "decay_mult"}
            if unknown:
                raise ValueError(f"param spec: unknown keys {sorted(unknown)} (use name, lr_mult, "
                                 "decay_mult)")
            return cls(**spec)
        if isinstance(spec, str):
            return cls(name=spec)
        raise TypeError(f"param spec must be a dict, a name or a ParamSpec, got {spec!r}")

    def __repr__(self):
        return f"ParamSpec(name={self.name!r}, lr_mult={self.lr_mult}, decay_mult={self.decay_mult})"


class LoadReport:
    """What ``Net.load_state_dict`` did: loaded names, and skipped ones with a reason each."""

    def __init__(self):
        self.loaded = []
        self.skipped = OrderedDict()   # name -> reason (shape mismatch, missing in the file)
        self.unused = []               # names in the file that the net does not have

    def __repr__(self):
        return (f"LoadReport(loaded={self.loaded}, skipped={dict(self.skipped)}, "
                f"unused={self.unused})")

    def summary(self):
        lines = [f"loaded {len(self.loaded)} arrays: {', '.join(self.loaded) or '-'}"]
        for name, why in self.skipped.items():
            lines.append(f"kept fresh initialization of {name}: {why}")
        if self.unused:
            lines.append(f"ignored {len(self.unused)} arrays of the file not in this net: "
                         f"{', '.join(self.unused)}")
        return "\n".join(lines)


class _BuildContext:
    """What a layer sees while it builds its graph for one phase."""

    def __init__(self, net, layer, phase):
        self.net, self.layer, self.phase = net, layer, phase
        self._n_params = 0

    @property
    def train(self):
        return self.phase == "train"

    def param(self, suffix, shape, filler, fan_in=None, fan_out=None, lr_mult=1.0,
              decay_mult=1.0, dtype=None):
        """The layer's next trainable parameter (the k-th call matches the layer's k-th param
        spec, as in Caffe), created on first use and shared by name."""
        k = self._n_params
        self._n_params += 1
        return self.net._param(self.layer, k, suffix, tuple(int(s) for s in shape), filler,
                               fan_in, fan_out, lr_mult, decay_mult, dtype or G.config.floatX)

    def buffer(self, suffix, value):
        """Non-trainable state kept in a shared variable (e.g. BatchNorm's running mean)."""
        return self.net._buffer(self.layer, suffix, value)

    def update(self, shared, new_value):
        """A state update applied by every TRAIN-phase step (ignored in the TEST phase)."""
        if self.phase == "train":
            self.net._add_update(self.layer, shared, new_value)

    @property
    def random(self):
        return self.net.random


class Net:
    """A DAG of named layers; see the module docstring."""

    def __init__(self, name="net", seed=0):
        self.name = name
        self.seed = int(seed)
        self.inputs = OrderedDict()        # name -> input Variable
        self.layers = OrderedDict()        # name -> Layer
        self.params = OrderedDict()        # name -> trainable SharedVariable
        self.lr_mult = {}
        self.decay_mult = {}
        self.buffers = OrderedDict()       # name -> non-trainable SharedVariable
        self.param_owners = OrderedDict()  # param name -> [layer names]
        self.layer_params = OrderedDict()  # layer name -> [param names]
        self.updates = OrderedDict()       # shared -> new value (TRAIN phase state updates)
        self._blobs = {p: OrderedDict() for p in PHASES}
        self._deps = {p: {} for p in PHASES}
        self._layer_outputs = {p: {} for p in PHASES}
        self._explicit_mult = {}
        self._random = None
        self._last_top = None

    # ---- construction -------------------------------------------------------------------
    def input(self, name, shape, dtype=None):
        """Declare a net input (Caffe's Input layer / data layer top)."""
        if name in self._blobs["train"] or name in self._blobs["test"]:
            raise ValueError(f"net {self.name}: blob {name!r} already exists")
        v = G.tensor(name, shape, dtype)
        self.inputs[name] = v
        for p in PHASES:
            self._blobs[p][name] = v
            self._deps[p][name] = frozenset([name])
        if self._last_top is None:
            self._last_top = name
        return v

    def add(self, layer, bottom=None, top=None):
        """Add a layer (bottoms: names of blobs, or symbolic variables; default: the previous
        layer's first top). Builds it for both phases; returns its TRAIN (or only) output."""
        if not isinstance(layer, Layer):
            raise TypeError(f"net {self.name}: add() takes a layer, got {layer!r}")
        if layer.name in self.layers:
            raise ValueError(f"net {self.name}: a layer named {layer.name!r} already exists")
        bottoms = bottom if bottom is not None else layer.bottom
        if bottoms is None:
            if layer.n_bottoms not in (None, 1) or self._last_top is None:
                raise ValueError(f"layer {layer.name!r} ({layer.type}): give its bottom blob(s)")
            bottoms = [self._last_top]
        if isinstance(bottoms, (str, G.Variable)):
            bottoms = [bottoms]
        bottoms = list(bottoms)
        if layer.n_bottoms is not None and len(bottoms) != layer.n_bottoms:
            raise ValueError(f"layer {layer.name!r} ({layer.type}) takes {layer.n_bottoms} "
                             f"bottom(s), got {len(bottoms)}: {bottoms}")
        tops = top if top is not None else layer.top
        if tops is None:
            tops = [layer.name] if layer.n_tops == 1 else [f"{layer.name}.{k}" for k in range(layer.n_tops)]
        if isinstance(tops, str):
            tops = [tops]
        tops = list(tops)
        layer.bottom, layer.top = bottoms, tops
        phases = [p for p in PHASES if layer.phase in (None, p)]
        if not phases:
            raise ValueError(f"layer {layer.name!r}: phase must be 'train', 'test' or None, got "
                             f"{layer.phase!r}")
        self.layers[layer.name] = layer
        self.layer_params.setdefault(layer.name, [])
        built = {}
        try:
            for p in phases:
                inputs, deps = self._resolve_bottoms(layer, bottoms, p)
                if (p == "test" and "train" in built and not layer.phase_dependent
                        and all(a is b for a, b in zip(inputs, built["train"][0]))):
                    outs = built["train"][1]
                else:
                    outs = self._build(layer, inputs, p)
                if len(outs) != len(tops):
                    raise ValueError(f"layer {layer.name!r} ({layer.type}) produced {len(outs)} "
                                     f"outputs for {len(tops)} tops {tops}")
                built[p] = (inputs, outs)
                self._layer_outputs[p][layer.name] = outs
                for t, o in zip(tops, outs):
                    self._blobs[p][t] = o
                    self._deps[p][t] = deps
        except BaseException:
            self._remove(layer)
            raise
        self._last_top = tops[0]
        first = built.get("train", built.get("test"))[1]
        return first[0] if len(first) == 1 else tuple(first)

    def _remove(self, layer):
        """Undo a failed add, so the net stays usable (e.g. in an interactive session)."""
        self.layers.pop(layer.name, None)
        for p in PHASES:
            self._layer_outputs[p].pop(layer.name, None)
        for pname in self.layer_params.pop(layer.name, []):
            owners = self.param_owners.get(pname, [])
            if layer.name in owners:
                owners.remove(layer.name)
            if not owners:
                for d in (self.params, self.lr_mult, self.decay_mult, self.param_owners,
                          self._explicit_mult):
                    d.pop(pname, None)
        for key in [k for k in self.buffers if k.startswith(layer.name + ".")]:
            sv = self.buffers.pop(key)
            self.updates.pop(sv, None)

    def _resolve_bottoms(self, layer, bottoms, phase):
        inputs, deps = [], set()
        for b in bottoms:
            if isinstance(b, G.Variable):
                inputs.append(b)
                deps.add(b)
                continue
            if b not in self._blobs[phase]:
                other = [p for p in PHASES if b in self._blobs[p]]
                where = (f"it exists only in phase {other[0]!r}" if other else
                         f"known blobs: {', '.join(self._blobs[phase]) or 'none'}")
                raise ValueError(f"layer {layer.name!r} ({layer.type}): bottom {b!r} is not "
                                 f"produced in phase {phase!r} ({where})")
            inputs.append(self._blobs[phase][b])
            deps |= self._deps[phase][b]
        return inputs, frozenset(deps)

    def _build(self, layer, inputs, phase):
        ctx = _BuildContext(self, layer, phase)
        try:
            outs = layer.build(ctx, *inputs)
        except G.GraphcError as e:
            names = [b if isinstance(b, str) else getattr(b, "name", None) or "var"
                     for b in layer.bottom]
            shapes = "; ".join(f"{n}: {format_shape(v)}" for n, v in zip(names, inputs))
            msg = f"layer {layer.name!r} ({layer.type}): {e} [bottom shapes: {shapes}]"
            try:
                err = type(e)(msg)
            except Exception:  # an error class with a different constructor
                err = G.GraphcShapeError(msg)
            raise err from e
        if isinstance(outs, G.Variable):
            outs = [outs]
        return list(outs)

    def _param(self, layer, k, suffix, shape, filler, fan_in, fan_out, lr_mult, decay_mult,
               dtype):
        specs = layer.param or []
        spec = ParamSpec.make(specs[k] if k < len(specs) else None)
        name = spec.name or f"{layer.name}.{suffix}"
        lm = spec.lr_mult if spec.lr_mult is not None else lr_mult
        dm = spec.decay_mult if spec.decay_mult is not None else decay_mult
        if name in self.params:
            sv = self.params[name]
            if tuple(sv.static_shape) != shape:
                owners = ", ".join(repr(o) for o in self.param_owners[name])
                raise G.GraphcShapeError(
                    f"shared parameter {name!r} has shape {tuple(sv.static_shape)} (created by "
                    f"layer {owners}) but this layer needs shape {shape}")
            if layer.name not in self.param_owners[name]:
                explicit = self._explicit_mult[name]
                for what, new, old_key in (("lr_mult", spec.lr_mult, "lr"),
                                           ("decay_mult", spec.decay_mult, "decay")):
                    old = explicit.get(old_key)
                    if new is not None and old is not None and float(new) != float(old):
                        raise ValueError(
                            f"shared parameter {name!r}: {what} {new} differs from {old} given "
                            f"by layer {self.param_owners[name][0]!r}")
                    if new is not None and old is None:
                        explicit[old_key] = new
                        (self.lr_mult if old_key == "lr" else self.decay_mult)[name] = float(new)
                self.param_owners[name].append(layer.name)
                self.layer_params[layer.name].append(name)
            return sv
        value = get_filler(filler)(shape, rng_for(self.seed, name), fan_in, fan_out, dtype)
        sv = G.shared(value, name=name)
        self.params[name] = sv
        self.lr_mult[name] = float(lm)
        self.decay_mult[name] = float(dm)
        self._explicit_mult[name] = {"lr": spec.lr_mult, "decay": spec.decay_mult}
        self.param_owners[name] = [layer.name]
        self.layer_params[layer.name].append(name)
        return sv

    def _buffer(self, layer, suffix, value):
        name = f"{layer.name}.{suffix}"
        if name not in self.buffers:
            self.buffers[name] = G.shared(np.asarray(value), name=name)
        return self.buffers[name]

    def _add_update(self, layer, shared, new_value):
        if shared in self.updates:
            raise ValueError(f"layer {layer.name!r}: state {shared.name!r} is updated twice")
        self.updates[shared] = new_value

    @property
    def random(self):
        """The net's counter-based random stream (created on first use, seeded by net.seed)."""
        if self._random is None:
            self._random = G.RandomStreams(self.seed, name=f"{self.name}.rng_counter")
            # The counter is state: snapshots save it, and every TRAIN step advances it.
            self.buffers["rng.counter"] = self._random.counter
            self.updates.update(self._random.updates())
        return self._random

    # ---- reading ---------------------------------------------------------------------------
    def blob(self, name, phase="train"):
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
        if name not in self._blobs[phase]:
            raise KeyError(f"net {self.name}: no blob {name!r} in phase {phase!r} (blobs: "
                           f"{', '.join(self._blobs[phase])})")
        return self._blobs[phase][name]

    def __getitem__(self, name):
        if name in self._blobs["train"]:
            return self._blobs["train"][name]
        return self.blob(name, "test")

    def __contains__(self, name):
        return name in self._blobs["train"] or name in self._blobs["test"]

    def blobs(self, phase="train"):
        return OrderedDict(self._blobs[phase])

    def layer_output(self, layer_name, phase="train"):
        outs = self._layer_outputs[phase][layer_name]
        return outs[0] if len(outs) == 1 else tuple(outs)

    def inputs_for(self, outputs, phase="train"):
        """The names of the net inputs that the given blob names/variables depend on."""
        need = set()
        for o in outputs:
            if isinstance(o, str):
                self.blob(o, phase)
                need |= self._deps[phase][o]
            else:
                found = [t for t, v in self._blobs[phase].items() if v is o]
                if not found:  # an expression built on top of blobs: be safe, take them all
                    return list(self.inputs)
                need |= self._deps[phase][found[0]]
        return [n for n in self.inputs if n in need]

    def loss_terms(self, phase="train"):
        """[(top name, loss_weight, variable)] for every top with a non-zero loss weight."""
        terms = []
        for layer in self.layers.values():
            if layer.name not in self._layer_outputs[phase]:
                continue
            weights = layer.loss_weights()
            for t, w, v in zip(layer.top, weights, self._layer_outputs[phase][layer.name]):
                if w:
                    terms.append((t, w, v))
        return terms

    def total_loss(self, phase="train"):
        terms = self.loss_terms(phase)
        if not terms:
            raise ValueError(f"net {self.name}: no loss layer in phase {phase!r}")
        total = None
        for _, w, v in terms:
            t = v if w == 1 else w * v
            total = t if total is None else total + t
        return total

    @property
    def loss(self):
        return self.total_loss("train")

    def output_names(self, phase="test"):
        """Caffe's net outputs: tops of loss and output (accuracy) layers, in layer order."""
        names = []
        for layer in self.layers.values():
            if layer.name in self._layer_outputs[phase] and (layer.is_output or any(layer.loss_weights())):
                names.extend(layer.top)
        return names

    def function(self, outputs, phase="test", updates=None, name=None, **kwargs):
        """Compile outputs (blob names or variables) of the net inputs they need. The returned
        function takes those inputs positionally (``f.input_names`` says which) or by name."""
        single = isinstance(outputs, (str, G.Variable))
        outs = [outputs] if single else list(outputs)
        names = self.inputs_for(outs, phase)
        variables = [self.blob(o, phase) if isinstance(o, str) else o for o in outs]
        f = G.function([self.inputs[n] for n in names], variables[0] if single else variables,
                       updates=updates, name=name or f"{self.name}_{phase}", **kwargs)
        f.input_names = names
        return f

    # ---- state ----------------------------------------------------------------------------
    def state_dict(self, buffers=True):
        """name -> numpy array copy of every parameter (and buffer)."""
        d = OrderedDict((k, v.get_value()) for k, v in self.params.items())
        if buffers:
            d.update((k, v.get_value()) for k, v in self.buffers.items())
        return d

    def load_state_dict(self, arrays, strict=False, names=None):
        """Copy arrays into parameters/buffers with the same name and shape. Returns a
        LoadReport; strict=True raises on anything not loaded instead."""
        report = LoadReport()
        arrays = dict(arrays)
        targets = OrderedDict(self.params)
        targets.update(self.buffers)
        if names is not None:
            targets = OrderedDict((k, v) for k, v in targets.items() if k in set(names))
        for name, sv in targets.items():
            if name not in arrays:
                report.skipped[name] = "not in the snapshot"
                continue
            a = np.asarray(arrays[name])
            if a.shape != tuple(sv.static_shape):
                report.skipped[name] = (f"shape {a.shape} in the snapshot vs "
                                        f"{tuple(sv.static_shape)} in the net")
                continue
            sv.set_value(a.astype(sv.dtype, copy=False))
            report.loaded.append(name)
        report.unused = [k for k in arrays if k not in targets]
        if strict and (report.skipped or report.unused):
            raise ValueError(f"net {self.name}: strict load failed:\n{report.summary()}")
        return report

    def load(self, path, strict=False):
        """Load parameters by name from an .npz written by ``save`` or by the Trainer."""
        with np.load(path, allow_pickle=False) as z:
            files = list(z.files)
            if any(k.startswith("param/") for k in files):
                arrays = {k[len("param/"):]: z[k] for k in files if k.startswith("param/")}
            else:
                arrays = {k: z[k] for k in files}
        return self.load_state_dict(arrays, strict=strict)

    def save(self, path):
        """Write parameters and buffers to an .npz atomically (tmp file + os.replace)."""
        atomic_savez(path, {f"param/{k}": v for k, v in self.state_dict().items()})

    def freeze(self, *layer_names):
        """Set lr_mult = 0 on every parameter of the named layers (Caffe's way to freeze)."""
        for ln in layer_names:
            if ln not in self.layers:
                raise KeyError(f"net {self.name}: no layer {ln!r}")
            for p in self.layer_params[ln]:
                self.lr_mult[p] = 0.0

    # ---- display --------------------------------------------------------------------------
    def summary(self):
        lines = [f"Net {self.name}: {len(self.layers)} layers, "
                 f"{sum(int(np.prod(v.static_shape)) for v in self.params.values())} parameters"]
        for name, v in self.inputs.items():
            lines.append(f"  input {name:12s} -> {format_shape(v)}")
        for layer in self.layers.values():
            phase = next(p for p in PHASES if layer.name in self._layer_outputs[p])
            outs = self._layer_outputs[phase][layer.name]
            shapes = ", ".join(format_shape(o) for o in outs)
            bottoms = ",".join(b if isinstance(b, str) else "var" for b in layer.bottom)
            extra = f"  [{layer.phase} only]" if layer.phase else ""
            lines.append(f"  {layer.type:18s} {layer.name:12s} {bottoms:>12s} -> {shapes}{extra}")
        return "\n".join(lines)

    def __repr__(self):
        return f"Net({self.name!r}, layers={list(self.layers)})"


# --- the base class of layers: here with Net, which builds them and in which a layer used alone
# runs -------------------------------------------------------------------------------------------

class Layer:
    """Base class. Subclasses set ``type``, ``n_bottoms``, ``n_tops`` and implement ``build``."""
    type = "Layer"
    n_bottoms = 1          # None: any number
    n_tops = 1
    phase_dependent = False
    is_output = False      # a net output that is not a loss (Accuracy)
    default_loss_weight = 0.0

    def __init__(self, name, bottom=None, top=None, param=None, loss_weight=None, phase=None):
        if not isinstance(name, str) or not name:
            raise ValueError(f"a layer needs a non-empty string name, got {name!r}")
        self.name = name
        self.bottom = [bottom] if isinstance(bottom, str) else bottom
        self.top = [top] if isinstance(top, str) else top
        self.param = list(param) if param is not None else None
        self.loss_weight = loss_weight
        self.phase = phase.lower() if isinstance(phase, str) else phase
        self._net = None

    def loss_weights(self):
        w = self.loss_weight if self.loss_weight is not None else self.default_loss_weight
        if isinstance(w, (int, float)):
            w = [float(w)] + [0.0] * (len(self.top or [None]) - 1)
        return [float(x) for x in w]

    def build(self, ctx, *inputs):
        raise NotImplementedError

    def _fail(self, msg):
        return ValueError(f"layer {self.name!r} ({self.type}): {msg}")

    # Standalone use (outside a Net): y = layer(x). The layer gets a private one-layer net;
    # its parameters are then in layer.params.
    def __call__(self, *inputs, phase="train", seed=0):
        if self._net is None:
            self._net = Net(self.name, seed=seed)
            self._net.add(self, bottom=list(inputs))
        elif list(inputs) != [b for b in self.bottom]:
            raise ValueError(f"layer {self.name!r} was already applied to other inputs; make a new "
                             "layer, or put layers in a Net and share parameters by name")
        return self._net.layer_output(self.name, phase)

    @property
    def params(self):
        if self._net is None:
            return {}
        net = self._net
        return {n: net.params[n] for n in net.layer_params.get(self.name, [])}

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r})"
