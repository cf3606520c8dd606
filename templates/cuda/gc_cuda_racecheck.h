/* graphc's race and bounds checker for its emulated CUDA (GRAPHC_CUDA_RACECHECK=1 with
   GRAPHC_CUDA_EMULATE=1), what compute-sanitizer's racecheck and memcheck do on a GPU.

   gc_cuda_emulate.h includes this header when GC_RACECHECK is defined. The templates, rendered
   with racecheck on (render_cuda.py), declare every kernel pointer as a gc_rc_ptr<T>: the pointer,
   and the region it may touch (a buffer of the launch, or a __shared__ array), so each load and
   store is checked here: first against the region's bounds (an access outside is reported and
   not done), then against the shadow state of the address, which holds the last writer and up to
   two readers of the current launch (block, thread, barrier interval). Two accesses conflict when
   at least one writes, they come from different threads, and nothing orders them: within a block
   no __syncthreads() between them (the same barrier interval), across blocks of one launch always
   (global memory; each block has its own shared memory). Atomics do not conflict with each other.
   A read of shared memory that no thread of the block wrote is reported too (on a GPU it is
   whatever the last block left there). Launches on the stream are ordered: the global shadow
   starts empty at each launch, the shared one at each block.

   The real CUDA build never sees this header: its templates render plain pointers. */
#ifndef GC_CUDA_RACECHECK_H
#define GC_CUDA_RACECHECK_H
#include <type_traits>
#include <unordered_map>
#include <vector>

/* ---- what a pointer may touch ---- */
struct gc_rc_region {
    char *base;
    size_t bytes;
    const char *desc;     /* "buffer 'x' (input b3)", "__shared__ gc_part[32]" */
    unsigned char shared; /* shared memory (per block) or global (per launch) */
    unsigned char cell;   /* the buffer's element size: the unit of the shadow state */
};

enum { GC_RC_READ = 0, GC_RC_WRITE = 1, GC_RC_ATOMIC = 2 };

struct gc_rc_rec {  /* one access of the current launch (valid: 0 for none) */
    uint32_t block, thread, epoch;
    unsigned char valid, atomic;
};
struct gc_rc_cell { gc_rc_rec w, r[2]; };

#define GC_RC_MAX_LISTED 16  /* hazards described in full in the report; the rest are counted */
struct gc_rc_state {
    const char *kernel;   /* the launched __global__ function */
    char label[200];      /* "k3: reduce sum(x)", set by the launcher before the kernel's launches */
    uint32_t block;       /* the running block, linear */
    std::unordered_map<uintptr_t, gc_rc_cell> global, shared;
    long long hazards;    /* found in this step */
    int listed;
    char keys[GC_RC_MAX_LISTED][160];  /* kernel, region, kind of each listed hazard: one each */
    char report[16384];
    std::vector<std::pair<void *, std::vector<char> > > saved;  /* shared variables before the step */
};
static gc_rc_state gc_rc;

/* ---- emulator hooks (gc_cuda_emulate.h) ---- */
static void gc_rc_on_launch(const char *kernel) {
    gc_rc.kernel = kernel;
    gc_rc.global.clear();
}
static void gc_rc_on_block(void) {
    gc_rc.block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    gc_rc.shared.clear();
}
static inline void gc_rc_label(const char *label) {
    snprintf(gc_rc.label, sizeof gc_rc.label, "%s", label);
}

/* ---- reports ---- */
static void gc_rc_where(char *out, size_t n, uint32_t block, uint32_t thread) {
    const unsigned tx = thread % blockDim.x, ty = thread / blockDim.x % blockDim.y,
                   tz = thread / (blockDim.x * blockDim.y);
    const unsigned bx = block % gridDim.x, by = block / gridDim.x % gridDim.y,
                   bz = block / (gridDim.x * gridDim.y);
    if (blockDim.y * blockDim.z == 1 && gridDim.y * gridDim.z == 1)
        snprintf(out, n, "thread %u of block %u", tx, bx);
    else
        snprintf(out, n, "thread (%u,%u,%u) of block (%u,%u,%u)", tx, ty, tz, bx, by, bz);
}

/* One listed entry per (kernel, region, kind): a racy loop repeats the same hazard per element. */
static int gc_rc_count(const char *region, const char *kind) {
    gc_rc.hazards++;
    char key[160];
    snprintf(key, sizeof key, "%s|%s|%s", gc_rc.kernel, region, kind);
    for (int i = 0; i < gc_rc.listed; i++)
        if (!strcmp(gc_rc.keys[i], key)) return 0;
    if (gc_rc.listed == GC_RC_MAX_LISTED) return 0;
    memcpy(gc_rc.keys[gc_rc.listed++], key, sizeof key);
    return 1;
}

static void gc_rc_append(const char *text) {
    const size_t used = strlen(gc_rc.report);
    snprintf(gc_rc.report + used, sizeof gc_rc.report - used, "%s%s", used ? "\n" : "", text);
}

static const char *gc_rc_verb(unsigned char write, unsigned char atomic) {
    return atomic ? "added to it atomically" : write ? "wrote it" : "read it";
}

static void gc_rc_hazard(const gc_rc_region &r, uintptr_t addr, const gc_rc_rec &other,
                         int other_write, const gc_rc_rec &me, int kind) {
    const int me_write = kind != GC_RC_READ;
    const char *name = !other_write ? "write-after-read" : me_write ? "write-after-write" : "read-after-write";
    if (!gc_rc_count(r.desc, name)) return;
    char a[64], b[64], text[1024];
    gc_rc_where(a, sizeof a, other.block, other.thread);
    gc_rc_where(b, sizeof b, me.block, me.thread);
    const char *order = other.block != me.block
        ? "in another block of the same launch (blocks run in no fixed order: give each element "
          "one writing block, or use atomics)"
        : "in the same block with no __syncthreads() between them";
    snprintf(text, sizeof text, "%s hazard in kernel %s (%s): %s %s element %lld: %s %s, then %s "
             "%s, %s", name, gc_rc.kernel, gc_rc.label, r.shared ? "shared memory" : "global memory",
             r.desc, (long long)((addr - (uintptr_t)r.base) / r.cell), a,
             gc_rc_verb((unsigned char)other_write, other.atomic), b,
             kind == GC_RC_ATOMIC ? "adds to it atomically" : me_write ? "writes it" : "reads it", order);
    gc_rc_append(text);
}

static void gc_rc_out_of_bounds(const gc_rc_region &r, const void *addr, size_t size, int kind) {
    if (!gc_rc_count(r.desc, "out of bounds")) return;
    char who[64], text[1024];
    gc_rc_where(who, sizeof who, gc_rc.block, (uint32_t)gc_emu.current);
    const long long at = ((long long)((const char *)addr - r.base)), cell = r.cell ? r.cell : 1;
    snprintf(text, sizeof text, "out-of-bounds %s in kernel %s (%s): %s %s %zu bytes at element "
             "%lld of %s %s, which has %lld elements (the access was not done)",
             kind == GC_RC_READ ? "read" : "write", gc_rc.kernel, gc_rc.label, who,
             kind == GC_RC_READ ? "reads" : "writes", size,
             at >= 0 ? at / cell : -((-at + cell - 1) / cell), r.shared ? "shared memory" : "global memory",
             r.desc, (long long)(r.bytes / cell));
    gc_rc_append(text);
}

static void gc_rc_uninitialized(const gc_rc_region &r, uintptr_t addr) {
    if (!gc_rc_count(r.desc, "uninitialized")) return;
    char who[64], text[1024];
    gc_rc_where(who, sizeof who, gc_rc.block, (uint32_t)gc_emu.current);
    snprintf(text, sizeof text, "uninitialized shared memory read in kernel %s (%s): %s reads "
             "element %lld of %s, which no thread of its block wrote before",
             gc_rc.kernel, gc_rc.label, who, (long long)((addr - (uintptr_t)r.base) / r.cell), r.desc);
    gc_rc_append(text);
}

/* ---- the shadow state ---- */
/* Whether access `a` (of this launch) and `me` may happen in either order. */
static inline bool gc_rc_unordered(const gc_rc_rec &a, const gc_rc_rec &me) {
    if (!a.valid) return false;
    if (a.block != me.block) return true;  /* (shared memory: its map holds this block only) */
    return a.thread != me.thread && a.epoch == me.epoch;
}

static void gc_rc_cell_access(const gc_rc_region &r, uintptr_t addr, int kind) {
    const gc_emu_fiber *f = &gc_emu.fibers[gc_emu.current];
    gc_rc_rec me;
    me.block = gc_rc.block; me.thread = (uint32_t)gc_emu.current; me.epoch = f->epoch;
    me.valid = 1; me.atomic = kind == GC_RC_ATOMIC;
    gc_rc_cell &c = (r.shared ? gc_rc.shared : gc_rc.global)[addr];
    if (r.shared && kind == GC_RC_READ && !c.w.valid) gc_rc_uninitialized(r, addr);
    if (gc_rc_unordered(c.w, me) && !(c.w.atomic && me.atomic))
        gc_rc_hazard(r, addr, c.w, 1, me, kind);
    if (kind == GC_RC_READ) {
        /* keep up to two readers: replace one this reader orders after (or its own) */
        for (int i = 0; i < 2; i++) {
            gc_rc_rec &o = c.r[i];
            if (!o.valid || (o.block == me.block && (o.thread == me.thread || o.epoch < me.epoch))) {
                o = me;
                break;
            }
        }
        return;
    }
    for (int i = 0; i < 2; i++)
        if (gc_rc_unordered(c.r[i], me)) {
            gc_rc_hazard(r, addr, c.r[i], 0, me, kind);
            break;
        }
    c.w = me;
}

/* Checks one access of `size` bytes at p; false when it is out of bounds (and is not to be done). */
static bool gc_rc_access(const void *p, size_t size, const gc_rc_region &r, int kind) {
    const char *a = (const char *)p;
    if (a < r.base || a + size > r.base + r.bytes) {
        gc_rc_out_of_bounds(r, p, size, kind);
        return false;
    }
    const size_t cell = r.cell ? r.cell : 1;
    for (size_t off = 0; off < size; off += cell) gc_rc_cell_access(r, (uintptr_t)(a + off), kind);
    return true;
}

/* ---- checked pointers and element references ---- */
template <class T> struct gc_rc_ref {
    typedef typename std::remove_const<T>::type V;
    T *p;
    gc_rc_region r;
    operator V() const {
        V v = V();
        if (gc_rc_access(p, sizeof(T), r, GC_RC_READ)) memcpy(&v, (const void *)p, sizeof v);
        return v;
    }
    const gc_rc_ref &operator=(const V &v) const {
        if (gc_rc_access(p, sizeof(T), r, GC_RC_WRITE)) *p = v;
        return *this;
    }
    const gc_rc_ref &operator=(const gc_rc_ref &o) const { return *this = (V)o; }
#define GC_RC_COMPOUND(OP)                                                    \
    template <class U> const gc_rc_ref &operator OP##=(const U &u) const {   \
        const V old = *this;                                                  \
        return *this = (V)(old OP u);                                         \
    }
    GC_RC_COMPOUND(+) GC_RC_COMPOUND(-) GC_RC_COMPOUND(*) GC_RC_COMPOUND(/)
#undef GC_RC_COMPOUND
};

template <class T> struct gc_rc_ptr {
    T *p;
    gc_rc_region r;
    gc_rc_ptr(T *p_, const gc_rc_region &r_) : p(p_), r(r_) {}
    /* T * to const T *, as for plain pointers */
    template <class U, class = typename std::enable_if<std::is_convertible<U *, T *>::value>::type>
    gc_rc_ptr(const gc_rc_ptr<U> &o) : p(o.p), r(o.r) {}
    gc_rc_ref<T> operator[](int64_t i) const { gc_rc_ref<T> e; e.p = p + i; e.r = r; return e; }
    gc_rc_ref<T> operator*() const { return (*this)[0]; }
    gc_rc_ptr operator+(int64_t i) const { return gc_rc_ptr(p + i, r); }
    gc_rc_ptr operator-(int64_t i) const { return gc_rc_ptr(p - i, r); }
};

/* A kernel argument: `n` elements from p, described as `desc` in reports. */
template <class T> static inline gc_rc_ptr<T> gc_rc_arg(T *p, int64_t n, const char *desc) {
    gc_rc_region r;
    r.base = (char *)p; r.bytes = (size_t)(n > 0 ? n : 0) * sizeof(T); r.desc = desc;
    r.shared = 0; r.cell = (unsigned char)sizeof(T);
    return gc_rc_ptr<T>(p, r);
}

/* The same region seen as U (vector loads, the 64-bit atomics' unsigned view). */
template <class U, class T> static inline gc_rc_ptr<U> gc_rc_cast(const gc_rc_ptr<T> &q) {
    return gc_rc_ptr<U>((U *)q.p, q.r);
}

/* A __shared__ array (one per kernel function, as the emulator's) behind a checked pointer. */
#define GC_RC_SHARED(T, name, n)                                                               \
    static T name##_gc_mem[n];                                                                 \
    const gc_rc_ptr<T> name(name##_gc_mem, gc_rc_region{(char *)name##_gc_mem, sizeof(name##_gc_mem), \
                            "__shared__ " #name "[" #n "]", 1, (unsigned char)sizeof(T)})

/* Atomics through a checked pointer: bounds checked, exempt from conflicts with each other. */
template <class T, class V> static inline T atomicAdd(const gc_rc_ptr<T> &q, V v) {
    return gc_rc_access(q.p, sizeof(T), q.r, GC_RC_ATOMIC) ? atomicAdd(q.p, (T)v) : T();
}

/* ---- the step (program.cu.j2's racecheck gc_run) ---- */
static void gc_rc_step_begin(void) {
    gc_rc.hazards = 0;
    gc_rc.listed = 0;
    gc_rc.report[0] = 0;
    gc_rc.label[0] = 0;
    gc_rc.saved.clear();
}

/* Keeps a shared variable's value: a step with hazards puts it back (a failed call changes
   nothing). */
static void gc_rc_keep(void *p, size_t bytes) {
    if (!p || !bytes) return;
    gc_rc.saved.push_back(std::make_pair(p, std::vector<char>((char *)p, (char *)p + bytes)));
}

/* After the step: 0 when it was clean; else the shared variables restored, the report's head in
   `error` and -2 (graphc raises RaceCheckError). */
static int gc_rc_step_end(char *error, size_t n) {
    if (!gc_rc.hazards) return 0;
    for (size_t i = 0; i < gc_rc.saved.size(); i++)
        memcpy(gc_rc.saved[i].first, gc_rc.saved[i].second.data(), gc_rc.saved[i].second.size());
    snprintf(error, n, "CUDA racecheck found %lld hazard%s (%d listed, one per kernel, memory and kind)",
             gc_rc.hazards, gc_rc.hazards == 1 ? "" : "s", gc_rc.listed);
    return -2;
}

extern "C" const char *gc_rc_report(void) { return gc_rc.report; }
#endif
