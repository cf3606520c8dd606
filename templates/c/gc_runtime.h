/* graphc runtime helpers shared by every generated C program. */
#ifndef GC_RUNTIME_H
#define GC_RUNTIME_H
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* glibc's vector math (libmvec) has SIMD versions of these; declaring them lets the vectorizer
   call 8 lanes at a time without -ffast-math (which would break inf/nan handling). */
#if defined(__x86_64__) && defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35)) && !defined(GC_NO_MVEC)
#define GC_SIMD_DECL(ret, name) _Pragma("omp declare simd notinbranch") extern ret name(ret);
GC_SIMD_DECL(float, expf) GC_SIMD_DECL(float, logf) GC_SIMD_DECL(float, tanhf)
GC_SIMD_DECL(float, log1pf) GC_SIMD_DECL(float, expm1f) GC_SIMD_DECL(float, sinf) GC_SIMD_DECL(float, cosf)
GC_SIMD_DECL(double, exp) GC_SIMD_DECL(double, log) GC_SIMD_DECL(double, tanh)
GC_SIMD_DECL(double, log1p) GC_SIMD_DECL(double, expm1) GC_SIMD_DECL(double, sin) GC_SIMD_DECL(double, cos)
#endif

#define GC_MAX(a, b) ((a) > (b) ? (a) : (b))
#define GC_MIN(a, b) ((a) < (b) ? (a) : (b))
#define GC_ABS(a) ((a) < 0 ? -(a) : (a))
#ifndef GC_PAR_THRESHOLD
#define GC_PAR_THRESHOLD 262144
#endif
/* Elements per block of a parallel 1-D loop (what a thread takes at a time, a simd loop each). */
#define GC_BLOCK 4096

static inline float gc_sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }
static inline double gc_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
/* softplus(x) = log(1 + exp(x)) without overflow: max(x, 0) + log1p(exp(-|x|)). */
static inline float gc_softplusf(float x) { return (x > 0.0f ? x : 0.0f) + log1pf(expf(-fabsf(x))); }
static inline double gc_softplus(double x) { return (x > 0.0 ? x : 0.0) + log1p(exp(-fabs(x))); }
static inline float gc_reluf(float x) { return x > 0.0f ? x : 0.0f; }
static inline double gc_relu(double x) { return x > 0.0 ? x : 0.0; }

/* Integer floor division and modulo with numpy's sign conventions. */
static inline int64_t gc_floordiv_i64(int64_t a, int64_t b) {
    if (b == 0) return 0;
    int64_t q = a / b;
    return (q * b != a && ((a < 0) != (b < 0))) ? q - 1 : q;
}
static inline int64_t gc_mod_i64(int64_t a, int64_t b) {
    if (b == 0) return 0;
    int64_t r = a % b;
    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
static inline double gc_floordiv_f64(double a, double b) { return floor(a / b); }
static inline float gc_floordiv_f32(float a, float b) { return floorf(a / b); }
static inline double gc_mod_f64(double a, double b) { double r = fmod(a, b); return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r; }
static inline float gc_mod_f32(float a, float b) { float r = fmodf(a, b); return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r; }
#define gc_floordiv(a, b) _Generic((a) + (b), float: gc_floordiv_f32, double: gc_floordiv_f64, default: gc_floordiv_i64)((a), (b))
#define gc_mod(a, b) _Generic((a) + (b), float: gc_mod_f32, double: gc_mod_f64, default: gc_mod_i64)((a), (b))

/* Per-context state: the workspace for intermediates and the last error message. */
typedef struct gc_ctx {
    char *ws;
    size_t ws_bytes;
    char error[512];
} gc_ctx;

static int gc_reserve(gc_ctx *ctx, size_t bytes) {
    if (bytes <= ctx->ws_bytes) return 0;
    free(ctx->ws);
    ctx->ws = NULL;
    ctx->ws_bytes = 0;
    if (bytes == 0) return 0;
    size_t rounded = (bytes + 63) / 64 * 64;
    ctx->ws = (char *)aligned_alloc(64, rounded);
    if (!ctx->ws) {
        snprintf(ctx->error, sizeof ctx->error, "out of memory: workspace of %zu bytes", rounded);
        return -1;
    }
    ctx->ws_bytes = rounded;
    return 0;
}
#endif
