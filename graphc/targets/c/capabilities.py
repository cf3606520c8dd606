"""What the C target decides about a Program that the Program itself leaves open: when a loop
gets threads, which convolution algorithm runs, which BLAS routine a precision calls.

Lowering consults `conv_algorithm` (the choice changes the kernel sequence); the C renderer
consults the rest. Nothing here prints C.
"""
import os
import sympy

from ...errors import CompileError
from ..base import Capabilities

# Elements below which a loop runs on one thread (GC_PAR_THRESHOLD in gc_runtime.h is the same
# rule at run time), and a kernel of known smaller size gets no OpenMP region at all (gcc spends
# ~20 ms compiling each). A 64K-element loop takes ~10 us on one thread; split over 2 awake
# threads it would save a few us, less than one region costs to compile. (The 40-50 us once timed
# for such loops in parallel was mostly gcc running "parallel for simd" as scalar code.)
PARALLEL_THRESHOLD = 262144

CONV_ALGORITHMS = ("auto", "gemm", "direct", "winograd", "blocked")
# Bytes of im2col workspace (the column matrix and the (C_out, images, P) product) one convolution
# may use: the batch is cut into chunks of as many images as fit (at least one). AlexNet's conv1
# at batch 128 would otherwise need ~560 MB; 32 MB keeps LeNet's and CIFAR's convs in one chunk
# at their usual batches, and leaves each chunk's gemm thousands of columns wide.
CONV_WORKSPACE_BYTES = 32 << 20
# Winograd F(2x2, 3x3) does 16 products per 2x2 output tile instead of 36, but pays for the
# tile transforms per channel. Measured (bench/conv_layers.py: forward + both gradients, float32,
# 1 thread, interleaved, vs im2col + gemm): 16 channels 32x32 b128 1.06x slower, 32 channels
# 16x16 1.28x faster, 128 channels 16x16 1.29x faster; so from 32 input and output channels.
WINOGRAD_MIN_CHANNELS = 32
# Its weight gradient, F(3x3, 2x2) (16 products per 2x2 tile of the output gradient instead of 36):
# measured in bench/README.md ("Winograd weight gradient").
WINOGRAD_GRAD_WEIGHTS_MIN_CHANNELS = 64
# F(4x4, 3x3) against F(2x2, 3x3) (bench/README.md, "VGG's step"): one kernel alone F(4x4) was
# 1.2-1.9x faster, but in VGG's whole step (A/B in one process, CPU time) it was no faster: 1749
# vs 1585 ms at 1 thread (its cache-sized chunks hold one image: 4-64 tiles, and the BLAS packs all
# 36 transformed filter matrices again for every chunk), 1624-1634 vs 1647 ms with 2-8 MB chunks,
# 2326 vs 2390 ms at 2 threads. So F(2x2) stays the default; GRAPHC_WINOGRAD_TILE=4 chooses F(4x4).
WINOGRAD_DEFAULT_TILE = 2
_BLAS_PRECISION = {"float32": "s", "float64": "d"}
# Rows above which a loop body's product with a loop-invariant right operand is left to the BLAS
# (packs_loop_product): the packed kernel is for a recurrent step's small batch.
PACKED_PRODUCT_MAX_M = 512
# Multiply-adds below which it is not worth a buffer: such a product takes microseconds, mostly
# the call, and its packing is as cheap to repeat.
PACKED_PRODUCT_MIN_WORK = 32768
# Rows of A from which a dense layer's product packs its weights each call (packs_dense_product).
DENSE_PACK_MIN_ROWS = 32


class CCapabilities(Capabilities):
    __slots__ = ("parallel_threshold",)
    # A max pool whose argmax nothing reads lowers to pool_max_value (no argmax written: LeNet's
    # two inference pools 908 -> 362 us at batch 64, bench/README.md).
    max_pool_without_argmax = True

    def __init__(self, parallel_threshold=PARALLEL_THRESHOLD, **common):
        super().__init__(**common)
        self.parallel_threshold = parallel_threshold

    def may_parallelize(self, n):
        """False when the size is known to be too small for threads (no OpenMP region at all)."""
        n = int(n) if isinstance(n, sympy.Integer) else n
        return not (isinstance(n, int) and n <= self.parallel_threshold)

    @staticmethod
    def blas_precision(dtype):
        """The cblas routine prefix for a product in `dtype` ('s' or 'd')."""
        try:
            return _BLAS_PRECISION[dtype]
        except KeyError:
            raise CompileError(f"gemm: no BLAS routine for dtype {dtype!r}; expected float32 or "
                             "float64") from None

    @staticmethod
    def forced_conv_algorithm():
        """GRAPHC_CONV_ALGO ("gemm" or "direct") forces one algorithm for every convolution; read
        at compile time (it is part of the compiled-artifact signature, as every GRAPHC_ setting)."""
        algo = os.environ.get("GRAPHC_CONV_ALGO", "").strip().lower() or "auto"
        if algo not in CONV_ALGORITHMS:
            raise CompileError(f"GRAPHC_CONV_ALGO must be one of {CONV_ALGORITHMS}, got {algo!r}; "
                               "unset it to let graphc choose")
        return algo

    @staticmethod
    def conv_workspace_bytes():
        """GRAPHC_CONV_WORKSPACE (bytes) overrides the im2col budget; read at compile time."""
        raw = os.environ.get("GRAPHC_CONV_WORKSPACE", "").strip()
        if not raw:
            return CONV_WORKSPACE_BYTES
        try:
            value = int(raw)
        except ValueError:
            value = -1
        if value < 1:
            raise CompileError(f"GRAPHC_CONV_WORKSPACE must be a positive number of bytes, got "
                               f"{raw!r}; unset it for the default ({CONV_WORKSPACE_BYTES})")
        return value

    def winograd_pays(self, kind, channels_in, channels_out):
        """Whether a 3x3 stride-1 conv kernel (kind: fwd, grad_input or grad_weights; lowering
        checks the shape) runs as Winograd instead of im2col + gemm or the blocked direct conv. GRAPHC_CONV_ALGO=winograd
        forces it wherever the shape allows, gemm or direct never."""
        forced = self.forced_conv_algorithm()
        if forced != "auto":
            return forced == "winograd"
        ci = channels_in if isinstance(channels_in, int) else 1 << 30
        co = channels_out if isinstance(channels_out, int) else 1 << 30
        if kind == "grad_weights":
            # 64 -> 64 stays with the blocked weight gradient, as its forward does (quiet, 1
            # thread, b64/b128: 8x8 21 vs 26 ms, 32x32 145 vs 296 ms); 64 -> 128 and wider run
            # Winograd (16x16: 57 vs 75 ms blocked; 128 channels 112 vs 152 / 175 gemm)
            return min(ci, co) >= WINOGRAD_GRAD_WEIGHTS_MIN_CHANNELS and max(ci, co) > 64
        return min(ci, co) >= WINOGRAD_MIN_CHANNELS

    @staticmethod
    def winograd_tile(kind, channels_in, channels_out):
        """The output tile (2 or 4) of a Winograd forward or input gradient (kind: fwd or
        grad_input): F(2x2, 3x3) or F(4x4, 3x3). GRAPHC_WINOGRAD_TILE=2|4 forces one (read at
        compile time, as every GRAPHC_ setting)."""
        raw = os.environ.get("GRAPHC_WINOGRAD_TILE", "").strip()
        if raw:
            if raw not in ("2", "4"):
                raise CompileError(f"GRAPHC_WINOGRAD_TILE must be 2 or 4, got {raw!r}; unset it "
                                   "to let graphc choose")
            return int(raw)
        return WINOGRAD_DEFAULT_TILE

    @staticmethod
    def packs_dense_product(N, K, dtype):
        """The rows of A from which a product op(A) @ op(B), B a K x N parameter, packs B each
        call and runs _gemm_packed.j2's kernel instead of the BLAS (0: never). Measured (float32,
        1 thread, AVX2 Zen, CPU time, pack included, against OpenBLAS 0.3): LeNet's 400 -> 120 at
        64 rows 191 us (B as stored) / 239 us (B transposed, Gemm's transB: its pack is 56 us)
        against 386-391, at 32 rows 148 vs 181-237, at 16 rows 103 vs 97 (a loss); 256 -> 64 at
        64 rows 68 vs 217; 1024 -> 256 1283 vs 2816. Not where N is wide: the MLP's 784 -> 512 at
        128 rows 3285 vs 3142, 512 -> 512 2154-2362 vs 2294-2354, 512 -> 1000 2644 vs 2832 (the
        BLAS's own kernels are good there); nor short K or narrow N: 120 -> 84 47 vs 39, 400 -> 10
        51 vs 22. So: K >= 256 and 64 <= N <= 256, from 32 rows. GRAPHC_PACKED_GEMM=0 turns it off
        (and the loops' packing with it)."""
        if os.environ.get("GRAPHC_PACKED_GEMM", "").strip() == "0" or dtype not in _BLAS_PRECISION:
            return 0
        return DENSE_PACK_MIN_ROWS if K >= 256 and 64 <= N <= 256 else 0

    @property
    def conv_store_epilogue(self):
        """Whether bias, residual and ReLU after a blocked conv run in its stores
        (codegen/conv_epilogue.py; LeNet's bias + ReLU passes were 87 us of 3.3 ms at batch 64).
        GRAPHC_CONV_EPILOGUE=0 keeps them separate kernels (to measure against)."""
        raw = os.environ.get("GRAPHC_CONV_EPILOGUE", "").strip()
        if raw not in ("", "0", "1"):
            raise CompileError(f"GRAPHC_CONV_EPILOGUE must be 0 or 1, got {raw!r}; unset it to "
                               "fold the epilogue (the default)")
        return raw != "0"

    def blocked_conv_pays(self, kind, channels_in, channels_out, kh, kw, stride, padding):
        """Whether conv kernel `kind` (fwd, grad_input, grad_weights; lowering checks the shape
        allows it) runs as the blocked direct convolution (templates/c/_conv_blocked.j2).
        GRAPHC_CONV_ALGO=blocked forces it wherever the shape allows, any other choice never."""
        forced = self.forced_conv_algorithm()
        if forced != "auto":
            return forced == "blocked"
        # Measured per kernel (bench/conv_layers.py, bench/conv_kernels.py; float32, 1 thread, vs
        # im2col + gemm or Winograd; bench/README.md has the tables): it wins where the gemm has
        # few rows (CIFAR conv2 forward 58 -> 37 ms, ResNet 16-channel weight gradient 50 -> 24
        # ms), and since its forward groups small images so that their pixel vectors fill whole
        # tiles (branch resnet-conv), also at 64 channels against main's Winograd forward / input
        # gradient: 8x8 b128 16.9 / 16.3 vs 23.0 / 23.2 ms (torch 17.5 / 15.5), 16x16 b128 71 /
        # 73 vs 83 / 84, 32x32 b64 141 / 144 vs 224 / 227 (torch 152 / 162; loaded machine, CPU
        # time; an earlier run had Winograd at 118 on the last); not 64 -> 128 (16x16 b64: 72 / 76
        # vs Winograd's 52 / 65), so 64 only with 64 on the other side. Its weight gradient wins at 64
        # (214 -> 172 ms), not at 128 or with stride 4 (AlexNet conv1: 128 vs 226 ms). 128 and
        # more channels stay with Winograd / gemm (107-134 vs 140-154 ms). A 1x1 conv is a plain
        # gemm (3.3 vs 4.4 ms). The input gradient of a "valid" conv (padding under (K-1)/2)
        # would correlate mostly zeros (LeNet's conv2: 8 vs 17 ms).
        small = min(channels_in, channels_out)
        if kh * kw <= 1:
            # A strided 1x1 forward reads one row and one column phase in `stride` (the padded
            # copy leaves the rest out) and skips im2col's gather and the gemm's copy back:
            # 8->16 32x32 stride 2 b64 0.50 vs 0.58 ms, 16->32 16x16 0.31 vs 0.39, ResNet-20's
            # 32->64 16x16 b128 2.0-2.2 vs 2.9-3.2, 64->128 equal (1 thread, CPU time).
            return kind == "fwd" and max(stride) > 1 and small <= 64
        if kind == "grad_weights":
            return small <= 64 and max(stride) <= 2
        if kind == "grad_input" and min(2 * padding[0] - (kh - 1), 2 * padding[1] - (kw - 1)) < 0:
            return False
        # The input gradient of a strided conv by phases (lower_cnn_blocked._emit_phases) did not
        # pay against im2col + gemm + col2im: ResNet-20's 32 -> 64 3x3 stride 2 13.3 vs 12.0 ms
        # alone, its whole step 1229 vs 1199 ms (CPU, 1 thread, load 12-16; the 30 ms once read
        # for the gemm path was a fresh output's page faults). GRAPHC_CONV_ALGO=blocked runs it.
        if kind == "grad_input" and max(stride) > 1:
            return False
        return small < 64 or max(channels_in, channels_out) <= 64

    @staticmethod
    def conv_slots():
        """Threads a blocked convolution may use (one padded-image slot each): this machine's
        cores (a program is built for the CPU it runs on; a larger machine runs it on fewer)."""
        try:
            cores = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cores = os.cpu_count() or 1
        return max(1, min(cores, 64))

    def conv_algorithm(self, kind, depth, rows):
        """'gemm' or 'direct' for one of the three conv kernels (kind: fwd, grad_input,
        grad_weights); depth = C/groups*kh*kw (the gemm's K), rows = C_out/groups (its M)."""
        forced = self.forced_conv_algorithm()
        if forced != "auto":
            return forced
        k = depth if isinstance(depth, int) else 1 << 30
        mg = rows if isinstance(rows, int) else 1 << 30
        # Measured (float32, batch 64, 1 and 2 threads): a gemm with M = C_out/groups <= 2 rows
        # (depthwise convolution: 5x faster direct) or a depth K = C/groups*kh*kw <= 4 (a 1x1
        # convolution of 3 channels: 2x faster direct) does not pay for the im2col copy.
        # Everywhere else im2col + gemm wins: 2.4x on LeNet's conv2 forward, 5-30x on the weight
        # gradient (bench/conv_lenet.py).
        if mg <= 2:
            return "direct"
        if k <= 4 and kind in ("fwd", "grad_input"):
            return "direct"
        return "gemm"

    @staticmethod
    def packs_loop_product(M, N, K, dtype):
        """Whether a loop body's product op(A) @ B (M x K by K x N) whose B is loop-invariant
        packs B once before the loop and runs as templates/c/_gemm_packed.j2's kernel. Measured
        (float32, 1 thread, AVX2, 32 products alone): M=32 N=1024 K=256 14-16 ms against
        OpenBLAS's 24-25 ms, M=32 N=256 K=1024 16-17 against 20-21 ms. A large M gets the BLAS
        (its blocking for cache is better there); the panels need N and K known.
        GRAPHC_PACKED_GEMM=0 turns it off (read at compile time, as every GRAPHC_ setting)."""
        if os.environ.get("GRAPHC_PACKED_GEMM", "").strip() == "0":  # (to compare: the BLAS)
            return False
        if dtype not in _BLAS_PRECISION or not all(isinstance(d, (int, sympy.Integer)) for d in (N, K)):
            return False
        if isinstance(M, (int, sympy.Integer)):
            if int(M) > PACKED_PRODUCT_MAX_M or int(M) * int(N) * int(K) < PACKED_PRODUCT_MIN_WORK:
                return False
        return int(N) >= 8 and int(K) >= 1


C_CAPABILITIES = CCapabilities(artifact_cache=True)
