/* graphc runtime helpers shared by every generated CUDA program: the context (stream, device
   workspace, device error word, cuBLAS handle), the launch and shared-memory macros the kernel
   templates must use, and the scalar helpers the C printer's bodies call, as host+device code.
   Compiled by nvcc, or by g++ as host code after gc_cuda_emulate.h (GRAPHC_CUDA_EMULATE=1). */
#ifndef GC_CUDA_RUNTIME_H
#define GC_CUDA_RUNTIME_H
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifndef GC_CUDA_EMULATE
#include <cuda_runtime.h>
#include <dlfcn.h>
#endif

/* ---- launching (templates launch ONLY through GC_LAUNCH) ---- */
#ifdef GC_CUDA_EMULATE
#define GC_LAUNCH(kernel, grid, block, shmem, ...) GC_EMU_LAUNCH(kernel, grid, block, shmem, __VA_ARGS__)
#define GC_SHARED_DYN(T, name) GC_EMU_SHARED_DYN(T, name)
#define GC_SHFL_DOWN(v, off) gc_emu_shfl_down((v), (off))
#define GC_WARP_SIZE GC_EMU_WARP_SIZE
/* Few blocks: the emulator runs every thread as a fiber; grid-stride loops cover the rest and
   are still exercised across blocks. */
#define GC_MAX_GRID 2
#else
#define GC_LAUNCH(kernel, grid, block, shmem, ...) kernel<<<dim3(grid), dim3(block), (shmem), ctx->stream>>>(__VA_ARGS__)
#define GC_SHARED_DYN(T, name) extern __shared__ T name[]
#define GC_SHFL_DOWN(v, off) __shfl_down_sync(0xffffffffu, (v), (off))
#define GC_WARP_SIZE 32
/* Enough blocks to fill an H200 (132 SMs x 2048 threads) several times; kernels loop over the
   rest (grid-stride). */
#define GC_MAX_GRID 8192
#endif

/* Blocks for n items at `block` threads each: at least 1, at most GC_MAX_GRID. */
static inline unsigned gc_grid(int64_t n, int block) {
    int64_t g = (n + block - 1) / block;
    return (unsigned)(g < 1 ? 1 : g > GC_MAX_GRID ? GC_MAX_GRID : g);
}

/* ---- whole-tensor (few-row) reductions over many blocks ----
   A reduction of few rows (A <= GC_SPLIT_MAX_ROWS) that are long (R >= 2 slices) runs in two
   passes: each block reduces one slice of a row into the context's partials buffer, then one
   block per row reduces the row's partials. One block per row would leave all but A of the
   GPU's SMs idle. The emulator takes small slices so that tests reach the split. */
#ifdef GC_CUDA_EMULATE
#define GC_REDUCE_SLICE 256
#else
#define GC_REDUCE_SLICE 16384
#endif
#define GC_SPLIT_MAX_ROWS 64
#define GC_PARTIALS 4096  /* entries (of at most 8 bytes) in ctx->partials */
#define GC_PARTIALS_BYTES (GC_PARTIALS * 8)

/* Slices per row for a reduction of `rows` rows of `width`: 1 when one block per row is best. */
static inline int64_t gc_reduce_slices(int64_t rows, int64_t width) {
    if (rows > GC_SPLIT_MAX_ROWS || width < 2 * (int64_t)GC_REDUCE_SLICE) return 1;
    int64_t s = (width + GC_REDUCE_SLICE - 1) / GC_REDUCE_SLICE;
    return s < GC_PARTIALS / rows ? s : GC_PARTIALS / rows;
}

/* The grid-stride loop of 1-D kernels: i over [0, n). */
#define GC_GRID_STRIDE(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

/* ---- errors found inside kernels ----
   The device error block: word 0 the code (the failing kernel's index + 1), then three int64
   details the first failing thread writes. The launcher reads it back after the step. */
#define GC_ERR_BYTES 32
#define GC_KERNEL_ERROR(err, code, a, b, c) do {                                     \
        if (atomicCAS((err), 0, (code)) == 0) {                                      \
            long long *gc_v_ = (long long *)((err) + 2);                             \
            gc_v_[0] = (long long)(a); gc_v_[1] = (long long)(b); gc_v_[2] = (long long)(c); \
        }                                                                            \
    } while (0)

/* ---- scalar helpers (the C target's gc_runtime.h, as host+device C++) ---- */
#define GC_MAX(a, b) (((a) > (b) || (a) != (a)) ? (a) : (b))
#define GC_MIN(a, b) (((a) < (b) || (a) != (a)) ? (a) : (b))
#define GC_ABS(a) ((a) < 0 ? -(a) : (a))
#define GC_SIGN(a) ((a) != (a) ? (a) : ((a) > 0) - ((a) < 0))
#define GC_HD __host__ __device__ static inline
GC_HD float gc_sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }
GC_HD double gc_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
GC_HD float gc_softplusf(float x) { return (x > 0.0f ? x : 0.0f) + log1pf(expf(-fabsf(x))); }
GC_HD double gc_softplus(double x) { return (x > 0.0 ? x : 0.0) + log1p(exp(-fabs(x))); }
GC_HD float gc_reluf(float x) { return x < 0.0f ? 0.0f : x; }
GC_HD double gc_relu(double x) { return x < 0.0 ? 0.0 : x; }
/* Max/Min of integer size expressions (as templates/c/gc_runtime.h: functions, so nesting does
   not duplicate arguments). */
GC_HD int64_t gc_max_i64(int64_t a, int64_t b) { return a > b ? a : b; }
GC_HD int64_t gc_min_i64(int64_t a, int64_t b) { return a < b ? a : b; }
GC_HD int64_t gc_floordiv_i64(int64_t a, int64_t b) {
    if (b == 0) return 0;
    if (b == -1) return (int64_t)(0 - (uint64_t)a);
    int64_t q = a / b;
    return (q * b != a && ((a < 0) != (b < 0))) ? q - 1 : q;
}
GC_HD int64_t gc_mod_i64(int64_t a, int64_t b) {
    if (b == 0 || b == -1) return 0;
    int64_t r = a % b;
    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
/* numpy's npy_divmod for floats (see gc_runtime.h) */
template <class T> GC_HD T gc_floordiv_fp(T a, T b) {
    if (!b) return a / b;
    T mod = fmod(a, b), div = (a - mod) / b;
    if (mod && ((b < 0) != (mod < 0))) div -= 1;
    if (!div) return copysign((T)0, a / b);
    T fl = floor(div);
    return div - fl > (T)0.5 ? fl + 1 : fl;
}
template <class T> GC_HD T gc_mod_fp(T a, T b) {
    T mod = fmod(a, b);
    if (!b) return mod;
    if (!mod) return copysign((T)0, b);
    return ((b < 0) != (mod < 0)) ? mod + b : mod;
}
/* _Generic in C; overloads here (the type of a + b picks the version, as in C) */
GC_HD float gc_floordiv_sel(float a, float b) { return gc_floordiv_fp<float>(a, b); }
GC_HD double gc_floordiv_sel(double a, double b) { return gc_floordiv_fp<double>(a, b); }
GC_HD int64_t gc_floordiv_sel(int64_t a, int64_t b) { return gc_floordiv_i64(a, b); }
GC_HD float gc_mod_sel(float a, float b) { return gc_mod_fp<float>(a, b); }
GC_HD double gc_mod_sel(double a, double b) { return gc_mod_fp<double>(a, b); }
GC_HD int64_t gc_mod_sel(int64_t a, int64_t b) { return gc_mod_i64(a, b); }
template <class T> struct gc_arith { typedef int64_t type; };
template <> struct gc_arith<float> { typedef float type; };
template <> struct gc_arith<double> { typedef double type; };
template <class A, class B> GC_HD auto gc_floordiv(A a, B b) -> typename gc_arith<decltype(a + b)>::type {
    typedef typename gc_arith<decltype(a + b)>::type U;
    return gc_floordiv_sel((U)a, (U)b);
}
template <class A, class B> GC_HD auto gc_mod(A a, B b) -> typename gc_arith<decltype(a + b)>::type {
    typedef typename gc_arith<decltype(a + b)>::type U;
    return gc_mod_sel((U)a, (U)b);
}
GC_HD int64_t gc_ipow_i64(int64_t a, int64_t b) {
    if (b < 0) return a == 1 ? 1 : a == -1 ? ((b & 1) ? -1 : 1) : 0;
    uint64_t r = 1, base = (uint64_t)a;
    for (; b; b >>= 1, base *= base) if (b & 1) r *= base;
    return (int64_t)r;
}
#define gc_ipow(a, b) gc_ipow_i64((a), (b))

/* ---- cuBLAS, bound at run time ----
   graphc finds libcublas (NVIDIA's nvidia-cublas wheel, or the system's) when it loads a program
   that multiplies, and loads it globally; its v2 entry points are looked up by name here, so
   building needs no cuBLAS headers. Emulated, the same wrappers call the C target's BLAS helpers
   (graphc's runtime library, linked in). */
#ifndef GC_CUDA_EMULATE
typedef void *gc_cublas_handle;
typedef int (*gc_cublas_create_fn)(gc_cublas_handle *);
typedef int (*gc_cublas_destroy_fn)(gc_cublas_handle);
typedef int (*gc_cublas_set_stream_fn)(gc_cublas_handle, cudaStream_t);
typedef int (*gc_cublas_sgemm_fn)(gc_cublas_handle, int, int, int, int, int, const float *,
        const float *, int, long long, const float *, int, long long, const float *, float *, int,
        long long, int);
typedef int (*gc_cublas_dgemm_fn)(gc_cublas_handle, int, int, int, int, int, const double *,
        const double *, int, long long, const double *, int, long long, const double *, double *,
        int, long long, int);
#else
typedef void *gc_cublas_handle;
#endif

/* ---- the context: one per loaded program ---- */
typedef struct gc_ctx {
    cudaStream_t stream;
    char *ws;          /* device workspace (the memory plan's arena) */
    size_t ws_bytes;
    int *d_err;        /* device error block, GC_ERR_BYTES */
    int h_err[GC_ERR_BYTES / sizeof(int)];
    gc_cublas_handle blas;
    void *partials;    /* GC_PARTIALS_BYTES: split reductions' per-block results */
    char error[512];
} gc_ctx;

/* `bytes`: sizeof(gc_ctx), or more for a context that extends it (the profiling build's). */
static gc_ctx *gc_ctx_create(size_t bytes) {
    gc_ctx *ctx = (gc_ctx *)calloc(1, bytes < sizeof(gc_ctx) ? sizeof(gc_ctx) : bytes);
    if (!ctx) return NULL;
    if (cudaStreamCreate(&ctx->stream) != cudaSuccess ||
        cudaMalloc((void **)&ctx->d_err, GC_ERR_BYTES) != cudaSuccess ||
        cudaMalloc(&ctx->partials, GC_PARTIALS_BYTES) != cudaSuccess) {
        cudaFree(ctx->d_err);
        free(ctx);
        return NULL;
    }
    cudaMemset(ctx->d_err, 0, GC_ERR_BYTES);
    return ctx;
}

static void gc_ctx_destroy(gc_ctx *ctx) {
    if (!ctx) return;
    cudaStreamSynchronize(ctx->stream);
#ifndef GC_CUDA_EMULATE
    if (ctx->blas) {
        gc_cublas_destroy_fn destroy = (gc_cublas_destroy_fn)dlsym(RTLD_DEFAULT, "cublasDestroy_v2");
        if (destroy) destroy(ctx->blas);
    }
#endif
    cudaFree(ctx->ws);
    cudaFree(ctx->partials);
    cudaFree(ctx->d_err);
    cudaStreamDestroy(ctx->stream);
    free(ctx);
}

/* Grow the device workspace to `bytes` (kept between calls). */
static int gc_reserve(gc_ctx *ctx, size_t bytes) {
    if (bytes <= ctx->ws_bytes) return 0;
    cudaStreamSynchronize(ctx->stream);  /* the old workspace may still be in use */
    cudaFree(ctx->ws);
    ctx->ws = NULL;
    ctx->ws_bytes = 0;
    size_t rounded = (bytes + 255) / 256 * 256;
    if (cudaMalloc((void **)&ctx->ws, rounded) != cudaSuccess) {
        ctx->ws = NULL;
        cudaGetLastError();
        snprintf(ctx->error, sizeof ctx->error, "out of device memory: workspace of %zu bytes", rounded);
        return -1;
    }
    ctx->ws_bytes = rounded;
    return 0;
}

/* Clears the device error word before the step's kernels run. */
static int gc_begin(gc_ctx *ctx) {
    cudaGetLastError();
    return cudaMemsetAsync(ctx->d_err, 0, GC_ERR_BYTES, ctx->stream) == cudaSuccess ? 0 : -1;
}

/* Waits for the step and reads the error block back: the CUDA error (message in ctx->error,
   returns -1), or 0 and ctx->h_err[0] the failing kernel's code (0: none). */
static int gc_sync_errors(gc_ctx *ctx) {
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess)
        e = cudaMemcpyAsync(ctx->h_err, ctx->d_err, GC_ERR_BYTES, cudaMemcpyDeviceToHost, ctx->stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(ctx->stream);
    if (e != cudaSuccess) {
        snprintf(ctx->error, sizeof ctx->error, "CUDA error: %s", cudaGetErrorString(e));
        return -1;
    }
    return 0;
}

/* The int64 detail `i` (0..2) the failing thread wrote. */
static inline long long gc_err_detail(const gc_ctx *ctx, int i) {
    long long v;
    memcpy(&v, (const char *)ctx->h_err + 8 * (i + 1), sizeof v);
    return v;
}

/* ---- gemm: C[bt] = alpha * op(A[bt]) @ op(B[bt]) + beta * C[bt], row-major, as the C target's
   graphc_rt_?gemm; sa/sb/sc the strides between batch items. Returns 0 or -1 (ctx->error). */
#ifdef GC_CUDA_EMULATE
extern "C" void graphc_rt_sgemm(int, int, int64_t, int64_t, int64_t, int64_t, float, const float *,
        int64_t, int64_t, const float *, int64_t, int64_t, float, float *, int64_t, int64_t);
extern "C" void graphc_rt_dgemm(int, int, int64_t, int64_t, int64_t, int64_t, double, const double *,
        int64_t, int64_t, const double *, int64_t, int64_t, double, double *, int64_t, int64_t);
#define GC_GEMM_WRAPPER(P, T)                                                                  \
static int gc_gemm_##P(gc_ctx *ctx, int trans_a, int trans_b, int64_t batch, int64_t M, int64_t N, \
        int64_t K, T alpha, const T *A, int64_t lda, int64_t sa, const T *B, int64_t ldb, int64_t sb, \
        T beta, T *C, int64_t ldc, int64_t sc) {                                               \
    (void)ctx;                                                                                 \
    graphc_rt_##P##gemm(trans_a, trans_b, batch, M, N, K, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc); \
    return 0;                                                                                  \
}
#else
static int gc_blas_handle(gc_ctx *ctx) {
    if (ctx->blas) return 0;
    gc_cublas_create_fn create = (gc_cublas_create_fn)dlsym(RTLD_DEFAULT, "cublasCreate_v2");
    gc_cublas_set_stream_fn set_stream = (gc_cublas_set_stream_fn)dlsym(RTLD_DEFAULT, "cublasSetStream_v2");
    if (!create || !set_stream) {
        snprintf(ctx->error, sizeof ctx->error, "cuBLAS is not loaded (graphc loads libcublas before a program that multiplies; pip install nvidia-cublas)");
        return -1;
    }
    if (create(&ctx->blas) != 0 || set_stream(ctx->blas, ctx->stream) != 0) {
        ctx->blas = NULL;
        snprintf(ctx->error, sizeof ctx->error, "cuBLAS could not start (cublasCreate failed)");
        return -1;
    }
    return 0;
}
/* Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: B and A swap places. */
#define GC_GEMM_WRAPPER(P, T)                                                                  \
static int gc_gemm_##P(gc_ctx *ctx, int trans_a, int trans_b, int64_t batch, int64_t M, int64_t N, \
        int64_t K, T alpha, const T *A, int64_t lda, int64_t sa, const T *B, int64_t ldb, int64_t sb, \
        T beta, T *C, int64_t ldc, int64_t sc) {                                               \
    static gc_cublas_##P##gemm_fn fn;                                                          \
    if (gc_blas_handle(ctx)) return -1;                                                        \
    if (!fn) fn = (gc_cublas_##P##gemm_fn)dlsym(RTLD_DEFAULT, "cublas" #P "gemmStridedBatched"); \
    if (!fn) {                                                                                 \
        snprintf(ctx->error, sizeof ctx->error, "cuBLAS has no cublas" #P "gemmStridedBatched"); \
        return -1;                                                                             \
    }                                                                                          \
    int rc = fn(ctx->blas, trans_b, trans_a, (int)N, (int)M, (int)K, &alpha, B, (int)ldb,      \
                (long long)sb, A, (int)lda, (long long)sa, &beta, C, (int)ldc, (long long)sc,  \
                (int)batch);                                                                   \
    if (rc != 0) {                                                                             \
        snprintf(ctx->error, sizeof ctx->error, "cublas" #P "gemmStridedBatched failed (status %d)", rc); \
        return -1;                                                                             \
    }                                                                                          \
    return 0;                                                                                  \
}
#endif
/* (program.cu.j2 instantiates GC_GEMM_WRAPPER for the precisions its products use) */
#endif
