/* graphc runtime helpers shared by every generated C program. */
#ifndef GC_RUNTIME_H
#define GC_RUNTIME_H
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* glibc's vector math (libmvec) has SIMD versions of these; declaring them lets the vectorizer
   call 8 lanes at a time without -ffast-math (which would break inf/nan handling). The list is
   the rows of graphc/ir/ops/scalar_fns.py marked simd (a test holds the two equal). */
#if defined(__x86_64__) && defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35)) && !defined(GC_NO_MVEC)
#define GC_SIMD_DECL(ret, name) _Pragma("omp declare simd notinbranch") extern ret name(ret);
GC_SIMD_DECL(float, expf) GC_SIMD_DECL(float, logf) GC_SIMD_DECL(float, tanhf)
GC_SIMD_DECL(float, log1pf) GC_SIMD_DECL(float, expm1f) GC_SIMD_DECL(float, sinf) GC_SIMD_DECL(float, cosf)
GC_SIMD_DECL(double, exp) GC_SIMD_DECL(double, log) GC_SIMD_DECL(double, tanh)
GC_SIMD_DECL(double, log1p) GC_SIMD_DECL(double, expm1) GC_SIMD_DECL(double, sin) GC_SIMD_DECL(double, cos)
GC_SIMD_DECL(float, erff) GC_SIMD_DECL(double, erf)
#endif

/* numpy's maximum/minimum: a NaN in either argument is the result (a != a only for NaN; for
   integers the compiler drops it). Still one compare and a blend per lane when vectorized. */
#define GC_MAX(a, b) (((a) > (b) || (a) != (a)) ? (a) : (b))
#define GC_MIN(a, b) (((a) < (b) || (a) != (a)) ? (a) : (b))
#define GC_ABS(a) ((a) < 0 ? -(a) : (a))
/* numpy's sign: -1, 0 or 1, and NaN for NaN. */
#define GC_SIGN(a) ((a) != (a) ? (a) : ((a) > 0) - ((a) < 0))
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
/* relu keeps NaN (x < 0 is false for it), as numpy's maximum(x, 0) does. */
static inline float gc_reluf(float x) { return x < 0.0f ? 0.0f : x; }
static inline double gc_relu(double x) { return x < 0.0 ? 0.0 : x; }

/* Integer floor division and modulo with numpy's sign conventions. b == -1 is its own case:
   INT64_MIN / -1 overflows, which x86 reports with SIGFPE (numpy: INT64_MIN, wrapped, and 0). */
static inline int64_t gc_floordiv_i64(int64_t a, int64_t b) {
    if (b == 0) return 0;
    if (b == -1) return (int64_t)(0 - (uint64_t)a);
    int64_t q = a / b;
    return (q * b != a && ((a < 0) != (b < 0))) ? q - 1 : q;
}
/* Max/Min of integer size expressions: functions, not GC_MAX/GC_MIN, because a macro evaluates
   an argument twice and nested Max slot sizes then grow exponentially (gcc took minutes). */
static inline int64_t gc_max_i64(int64_t a, int64_t b) { return a > b ? a : b; }
static inline int64_t gc_min_i64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t gc_mod_i64(int64_t a, int64_t b) {
    if (b == 0 || b == -1) return 0;
    int64_t r = a % b;
    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
/* Float floor division and modulo exactly as numpy's npy_divmod: the quotient from
   (a - fmod(a, b)) / b snapped to an integer, so inf // x is nan and -0.0 // 1 is -0.0. */
#define GC_FLOAT_DIVMOD(T, S, FMOD, FLOOR, COPYSIGN)                                        \
static inline T gc_floordiv_##S(T a, T b) {                                                 \
    if (!b) return a / b;                                                                   \
    T mod = FMOD(a, b), div = (a - mod) / b;                                                \
    if (mod && ((b < 0) != (mod < 0))) div -= 1;                                            \
    if (!div) return COPYSIGN(0, a / b);                                                    \
    T fl = FLOOR(div);                                                                      \
    return div - fl > (T)0.5 ? fl + 1 : fl;                                                 \
}                                                                                           \
static inline T gc_mod_##S(T a, T b) {                                                      \
    T mod = FMOD(a, b);                                                                     \
    if (!b) return mod;                                                                     \
    if (!mod) return COPYSIGN(0, b);                                                        \
    return ((b < 0) != (mod < 0)) ? mod + b : mod;                                          \
}
GC_FLOAT_DIVMOD(double, f64, fmod, floor, copysign)
GC_FLOAT_DIVMOD(float, f32, fmodf, floorf, copysignf)
#define gc_floordiv(a, b) _Generic((a) + (b), float: gc_floordiv_f32, double: gc_floordiv_f64, default: gc_floordiv_i64)((a), (b))
/* Integer power by squaring, wrapping on overflow as numpy does. A negative exponent gives the
   truncated 1 / a**-b: 1 for a = 1, +-1 for a = -1, else 0 (numpy raises; both graphc backends
   give this, see scalar_fns._np_ipow). */
static inline int64_t gc_ipow_i64(int64_t a, int64_t b) {
    if (b < 0) return a == 1 ? 1 : a == -1 ? ((b & 1) ? -1 : 1) : 0;
    uint64_t r = 1, base = (uint64_t)a;
    for (; b; b >>= 1, base *= base) if (b & 1) r *= base;
    return (int64_t)r;
}
#define gc_ipow(a, b) gc_ipow_i64((a), (b))
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
