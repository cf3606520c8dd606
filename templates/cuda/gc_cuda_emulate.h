/* graphc's CPU execution model for its generated CUDA (GRAPHC_CUDA_EMULATE=1).

   g++ compiles the very same .cu as host C++ with this header force-included (-include). It maps
   the CUDA built-ins the templates use onto host code: each block's threads run as cooperative
   fibers (ucontext) that switch at __syncthreads(), blocks run one after another, "device memory"
   is host memory, atomics are plain operations (one host thread runs everything). Slow, for tests
   only. Races and out-of-bounds accesses do not show in this model by themselves: with
   GC_RACECHECK (GRAPHC_CUDA_RACECHECK=1) the checker of gc_cuda_racecheck.h watches every access
   the kernels make. */
#ifndef GC_CUDA_EMULATE_H
#define GC_CUDA_EMULATE_H
#define GC_CUDA_EMULATE 1
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
/* Blocks run one at a time, so one static array per kernel is each block's shared memory. */
#define __shared__ static

struct uint3 { unsigned x, y, z; };
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

/* CUDA's 16-byte vector types (elemwise.cu.j2's vector path), 16-byte aligned as on the device */
struct __attribute__((aligned(16))) float4 { float x, y, z, w; };
struct __attribute__((aligned(16))) double2 { double x, y; };

static uint3 threadIdx, blockIdx;
static dim3 blockDim, gridDim;

typedef int cudaError_t;
static cudaError_t gc_emu_last_error;

/* ---- the fiber runner ---- */
#define GC_EMU_MAX_THREADS 1024
#define GC_EMU_STACK (64 * 1024)

/* epoch: the __syncthreads() this thread has passed (the race checker's barrier interval) */
struct gc_emu_fiber { ucontext_t ctx; uint3 tid; int done; unsigned epoch; };
struct gc_emu_state {
    ucontext_t scheduler;
    gc_emu_fiber *fibers;
    char *stacks;
    int current, n;
    void (*body)(void *);
    void *arg;
    char *dyn_shared;
    size_t dyn_bytes;
};
static gc_emu_state gc_emu;

/* The race checker's hooks (gc_cuda_racecheck.h): a launch starts, a block starts. */
#ifdef GC_RACECHECK
static void gc_rc_on_launch(const char *kernel);
static void gc_rc_on_block(void);
#define GC_EMU_ON_LAUNCH(kernel) gc_rc_on_launch(kernel)
#define GC_EMU_ON_BLOCK() gc_rc_on_block()
#else
#define GC_EMU_ON_LAUNCH(kernel) ((void)0)
#define GC_EMU_ON_BLOCK() ((void)0)
#endif

static void gc_emu_fiber_main(void) {
    gc_emu_fiber *f = &gc_emu.fibers[gc_emu.current];
    threadIdx = f->tid;
    gc_emu.body(gc_emu.arg);
    f->done = 1;
    /* returns to uc_link: the scheduler */
}

/* Back to the scheduler, which resumes every other live thread of the block before this one
   continues. */
static inline void gc_emu_barrier(void) {
    gc_emu_fiber *f = &gc_emu.fibers[gc_emu.current];
    swapcontext(&f->ctx, &gc_emu.scheduler);
    threadIdx = f->tid;
}

/* __syncthreads(): a barrier that also orders memory (the next barrier interval). The warp
   shuffles' own barriers below are not: on a GPU a shuffle orders no memory accesses. */
static inline void __syncthreads(void) {
    gc_emu.fibers[gc_emu.current].epoch++;
    gc_emu_barrier();
}

static int gc_emu_run_block(void) {
    const int n = gc_emu.n;
    for (int t = 0; t < n; t++) {
        gc_emu_fiber *f = &gc_emu.fibers[t];
        getcontext(&f->ctx);
        f->ctx.uc_stack.ss_sp = gc_emu.stacks + (size_t)t * GC_EMU_STACK;
        f->ctx.uc_stack.ss_size = GC_EMU_STACK;
        f->ctx.uc_link = &gc_emu.scheduler;
        f->done = 0;
        f->epoch = 0;
        f->tid.x = t % blockDim.x;
        f->tid.y = (t / blockDim.x) % blockDim.y;
        f->tid.z = t / (blockDim.x * blockDim.y);
        makecontext(&f->ctx, gc_emu_fiber_main, 0);
    }
    GC_EMU_ON_BLOCK();
    /* Rounds: each live thread runs to its next barrier or its end. */
    for (int live = n; live > 0;) {
        live = 0;
        for (int t = 0; t < n; t++) {
            if (gc_emu.fibers[t].done) continue;
            gc_emu.current = t;
            swapcontext(&gc_emu.scheduler, &gc_emu.fibers[t].ctx);
            live += !gc_emu.fibers[t].done;
        }
    }
    return 0;
}

template <class F> static void gc_emu_trampoline(void *p) { (*(F *)p)(); }

/* Runs `body` (a kernel call) for every thread of every block. */
template <class F>
static int gc_emu_launch(dim3 grid, dim3 block, size_t shmem, F body) {
    const unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
    if (threads == 0 || threads > GC_EMU_MAX_THREADS || grid.x == 0 || grid.y == 0 || grid.z == 0)
        return 1;  /* cudaErrorInvalidConfiguration, as a real launch would report */
    gc_emu.fibers = (gc_emu_fiber *)calloc(threads, sizeof(gc_emu_fiber));
    gc_emu.stacks = (char *)malloc((size_t)threads * GC_EMU_STACK);
    gc_emu.dyn_shared = (char *)calloc(1, shmem ? shmem : 1);
    gc_emu.dyn_bytes = shmem;
    if (!gc_emu.fibers || !gc_emu.stacks || !gc_emu.dyn_shared) {
        free(gc_emu.fibers); free(gc_emu.stacks); free(gc_emu.dyn_shared);
        return 2;  /* cudaErrorMemoryAllocation */
    }
    gc_emu.n = (int)threads;
    gc_emu.body = gc_emu_trampoline<F>;
    gc_emu.arg = &body;
    gridDim = grid;
    blockDim = block;
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                blockIdx.x = x; blockIdx.y = y; blockIdx.z = z;
                gc_emu_run_block();
            }
    free(gc_emu.fibers); free(gc_emu.stacks); free(gc_emu.dyn_shared);
    gc_emu.fibers = NULL; gc_emu.stacks = NULL; gc_emu.dyn_shared = NULL;
    return 0;
}

#define GC_EMU_LAUNCH(kernel, grid, block, shmem, ...) \
    (GC_EMU_ON_LAUNCH(#kernel), \
     gc_emu_last_error = gc_emu_launch(dim3(grid), dim3(block), (size_t)(shmem), [&]() { kernel(__VA_ARGS__); }))

/* Dynamic shared memory: one zeroed buffer per launch, reused block after block. */
#define GC_EMU_SHARED_DYN(T, name) T *name = (T *)gc_emu.dyn_shared

/* Warp shuffles through per-block scratch and two barriers: every thread of the block must take
   part (the templates call them in converged code, as the real ones require of a warp). */
#define GC_EMU_WARP_SIZE 32
template <class T>
static inline T gc_emu_shfl_down(T v, int offset) {
    static unsigned long long slots[GC_EMU_MAX_THREADS];
    const int me = (int)(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z));
    memcpy(&slots[me], &v, sizeof v);
    gc_emu_barrier();
    const int lane = me % GC_EMU_WARP_SIZE, src = me + offset;
    T out = v;
    if (lane + offset < GC_EMU_WARP_SIZE && src < gc_emu.n) memcpy(&out, &slots[src], sizeof out);
    gc_emu_barrier();
    return out;
}

/* ---- atomics: one host thread runs every fiber, so plain operations are atomic ---- */
static inline float atomicAdd(float *p, float v) { float old = *p; *p = old + v; return old; }
static inline double atomicAdd(double *p, double v) { double old = *p; *p = old + v; return old; }
static inline int atomicAdd(int *p, int v) { int old = *p; *p = old + v; return old; }
static inline unsigned atomicAdd(unsigned *p, unsigned v) { unsigned old = *p; *p = old + v; return old; }
static inline unsigned long long atomicAdd(unsigned long long *p, unsigned long long v) {
    unsigned long long old = *p; *p = old + v; return old;
}
static inline int atomicCAS(int *p, int compare, int v) { int old = *p; if (old == compare) *p = v; return old; }
static inline unsigned long long atomicCAS(unsigned long long *p, unsigned long long compare,
                                           unsigned long long v) {
    unsigned long long old = *p; if (old == compare) *p = v; return old;
}
static inline int atomicMax(int *p, int v) { int old = *p; if (v > old) *p = v; return old; }
static inline int atomicMin(int *p, int v) { int old = *p; if (v < old) *p = v; return old; }
static inline int atomicExch(int *p, int v) { int old = *p; *p = v; return old; }
static inline float atomicExch(float *p, float v) { float old = *p; *p = v; return old; }
static inline void __threadfence(void) {}

/* ---- the runtime API as host operations ---- */
typedef void *cudaStream_t;
enum { cudaSuccess = 0, cudaErrorInvalidConfiguration = 1, cudaErrorMemoryAllocation = 2 };
enum cudaMemcpyKind { cudaMemcpyHostToHost, cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost,
                      cudaMemcpyDeviceToDevice, cudaMemcpyDefault };

static inline const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument (emulated)";
    case cudaErrorMemoryAllocation: return "out of memory (emulated)";
    default: return "unknown error (emulated)";
    }
}
static inline cudaError_t cudaGetLastError(void) { cudaError_t e = gc_emu_last_error; gc_emu_last_error = 0; return e; }
static inline cudaError_t cudaMalloc(void **p, size_t n) {
    /* 256-byte aligned as cudaMalloc's, rounded up so aligned_alloc accepts the size */
    *p = aligned_alloc(256, (n + 255) / 256 * 256 + 256);
    return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
static inline cudaError_t cudaFree(void *p) { free(p); return cudaSuccess; }
static inline cudaError_t cudaMemcpy(void *d, const void *s, size_t n, cudaMemcpyKind) {
    if (n) memmove(d, s, n);
    return cudaSuccess;
}
static inline cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind k, cudaStream_t) {
    return cudaMemcpy(d, s, n, k);
}
static inline cudaError_t cudaMemset(void *d, int v, size_t n) { if (n) memset(d, v, n); return cudaSuccess; }
static inline cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t) { return cudaMemset(d, v, n); }
static inline cudaError_t cudaStreamCreate(cudaStream_t *s) { *s = NULL; return cudaSuccess; }
static inline cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
static inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
static inline cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
static inline cudaError_t cudaGetDeviceCount(int *n) { *n = 1; return cudaSuccess; }
/* Events (the profiling build's timers): every launch has finished when the host records the
   next event, so an event is the host's monotonic clock at its record. */
typedef double *cudaEvent_t;
static inline cudaError_t cudaEventCreate(cudaEvent_t *e) {
    *e = (double *)calloc(1, sizeof(double));
    return *e ? cudaSuccess : cudaErrorMemoryAllocation;
}
static inline cudaError_t cudaEventDestroy(cudaEvent_t e) { free(e); return cudaSuccess; }
static inline cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    *e = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    return cudaSuccess;
}
static inline cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
static inline cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end) {
    *ms = (float)((*end - *start) * 1e3);
    return cudaSuccess;
}
#ifdef GC_RACECHECK
#include "gc_cuda_racecheck.h"
#endif
#endif
