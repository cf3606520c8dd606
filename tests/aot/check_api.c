/* Exercises the C interface of an exported "mlp" (functions infer, train_step; parameters
 * W1 [784, 64], b1, W2, b2) from C: argument errors, failed calls, parameter I/O, threads.
 * Used by tests/test_aot.py:  check_api <scratch dir>. Prints one line per check; exit 0 when
 * every check passed. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlp.h"

static int failures = 0;
static char scratch_dir[512];

#define EXPECT(ctx, call, want, substr)                                                             \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        const char *msg_ = mlp_last_error(ctx);                                                    \
        if (rc_ != (want) || !msg_ || !strstr(msg_, (substr)) || ((want) == MLP_OK && msg_[0])) {  \
            printf("FAIL line %d: %s -> %d \"%s\" (want %d, \"%s\")\n", __LINE__, #call, rc_,      \
                   msg_ ? msg_ : "(null)", (want), (substr));                                      \
            failures++;                                                                            \
        } else {                                                                                   \
            printf("ok   %s -> %d \"%s\"\n", #call, rc_, msg_);                                    \
        }                                                                                          \
    } while (0)

#define CHECK(cond)                                                           \
    do {                                                                      \
        if (!(cond)) { printf("FAIL line %d: %s\n", __LINE__, #cond); failures++; } \
        else printf("ok   %s\n", #cond);                                      \
    } while (0)

#define B 4
static float X[B * 784];
static int64_t Y[B] = {1, 7, 3, 9};

static void fill_inputs(void) {
    for (int i = 0; i < B * 784; i++) X[i] = (float)((i * 37) % 101) / 101.0f;
}

static char *path_in_scratch(const char *name) {
    static char buf[4][600];
    static int k = 0;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", scratch_dir, name);
    return buf[k];
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n) { printf("FAIL cannot write %s\n", path); failures++; }
    if (f) fclose(f);
}

static void check_arguments(mlp_ctx *ctx) {
    float out[B * 10], loss = 0;
    /* NULL pointers and contexts */
    EXPECT(ctx, mlp_infer(ctx, NULL, B, out), MLP_ERR_NULL, "input x is NULL");
    EXPECT(ctx, mlp_infer(ctx, X, B, NULL), MLP_ERR_NULL, "output out0 is NULL");
    EXPECT(ctx, mlp_train_step(ctx, X, NULL, B, &loss), MLP_ERR_NULL, "input y is NULL");
    CHECK(mlp_infer(NULL, X, B, out) == MLP_ERR_NULL);
    CHECK(mlp_last_error(NULL) != NULL);
    /* dims */
    EXPECT(ctx, mlp_infer(ctx, X, 0, out), MLP_ERR_DIM, "dim batch = 0 is out of range");
    EXPECT(ctx, mlp_infer(ctx, X, -5, out), MLP_ERR_DIM, "dim batch = -5");
    EXPECT(ctx, mlp_train_step(ctx, X, Y, (int64_t)1 << 40, &loss), MLP_ERR_DIM, "out of range");
    /* alignment and overlap */
    EXPECT(ctx, mlp_infer(ctx, (const float *)((const char *)X + 2), B, out), MLP_ERR_ARG, "not aligned");
    EXPECT(ctx, mlp_infer(ctx, X, B, X + 5), MLP_ERR_ARG, "overlaps input x");
    /* a good call clears the message */
    EXPECT(ctx, mlp_infer(ctx, X, B, out), MLP_OK, "");
    int good = 1;
    for (int r = 0; r < B; r++) {
        double s = 0;
        for (int j = 0; j < 10; j++) s += out[r * 10 + j];
        good &= fabs(s - 1.0) < 1e-4;
    }
    CHECK(good);
    /* shapes */
    int64_t dims[1] = {B}, shape[MLP_MAX_NDIM];
    CHECK(mlp_infer_output_shape(0, dims, shape) == 2 && shape[0] == B && shape[1] == 10);
    CHECK(mlp_train_step_input_shape(1, dims, shape) == 1 && shape[0] == B);
    CHECK(mlp_train_step_output_shape(0, dims, shape) == 0);
    CHECK(mlp_infer_output_shape(1, dims, shape) == -1);
    CHECK(mlp_infer_input_shape(0, NULL, shape) == -1);
    CHECK(MLP_TRAIN_STEP_NUM_INPUTS == 2 && MLP_TRAIN_STEP_NUM_DIMS == 1 && MLP_INFER_NUM_OUTPUTS == 1);
}

static void check_failed_step_changes_nothing(mlp_ctx *ctx) {
    static float w1[784 * 64], w1_after[784 * 64];
    float loss = -1, b2[10], b2_after[10];
    CHECK(mlp_get_param(ctx, "W1", w1, sizeof w1) == MLP_OK);
    CHECK(mlp_get_param(ctx, "b2", b2, sizeof b2) == MLP_OK);
    int64_t bad_y[B] = {1, 2, 10, 3};  /* label 10 is out of range: the gather fails */
    EXPECT(ctx, mlp_train_step(ctx, X, bad_y, B, &loss), MLP_ERR_RUNTIME, "out of range");
    CHECK(mlp_get_param(ctx, "W1", w1_after, sizeof w1_after) == MLP_OK);
    CHECK(mlp_get_param(ctx, "b2", b2_after, sizeof b2_after) == MLP_OK);
    CHECK(memcmp(w1, w1_after, sizeof w1) == 0 && memcmp(b2, b2_after, sizeof b2) == 0);
    EXPECT(ctx, mlp_train_step(ctx, X, Y, B, &loss), MLP_OK, "");
    CHECK(mlp_get_param(ctx, "W1", w1_after, sizeof w1_after) == MLP_OK);
    CHECK(memcmp(w1, w1_after, sizeof w1) != 0 && loss > 0 && isfinite(loss));
}

static void check_params(mlp_ctx *ctx) {
    float b2[10], b2_back[10], zeros[10] = {0};
    CHECK(mlp_num_params() == 4);
    const mlp_param *p = mlp_param_info(0);
    CHECK(p && strcmp(p->name, "W1") == 0 && p->dtype == MLP_FLOAT32 && p->ndim == 2 &&
          p->shape[0] == 784 && p->shape[1] == 64 && p->size == 784 * 64 && p->nbytes == 784 * 64 * 4);
    CHECK(mlp_param_info(-1) == NULL && mlp_param_info(4) == NULL);
    CHECK(mlp_find_param("W2") == 2 && mlp_find_param("nope") == -1 && mlp_find_param(NULL) == -1);
    EXPECT(ctx, mlp_get_param(ctx, "nope", b2, sizeof b2), MLP_ERR_ARG, "no parameter named \"nope\"");
    EXPECT(ctx, mlp_get_param(ctx, "b2", b2, 12), MLP_ERR_ARG, "b2 has 40 bytes, got nbytes = 12");
    EXPECT(ctx, mlp_get_param(ctx, NULL, b2, sizeof b2), MLP_ERR_NULL, "name is NULL");
    EXPECT(ctx, mlp_get_param(ctx, "b2", NULL, sizeof b2), MLP_ERR_NULL, "buffer is NULL");
    EXPECT(ctx, mlp_set_param(ctx, "b2", NULL, sizeof b2), MLP_ERR_NULL, "buffer is NULL");
    CHECK(mlp_get_param(NULL, "b2", b2, sizeof b2) == MLP_ERR_NULL);
    EXPECT(ctx, mlp_get_param(ctx, "b2", b2, sizeof b2), MLP_OK, "");

    /* save, change, load back */
    const char *saved = path_in_scratch("saved.params");
    EXPECT(ctx, mlp_save_params(ctx, saved), MLP_OK, "");
    EXPECT(ctx, mlp_set_param(ctx, "b2", zeros, sizeof zeros), MLP_OK, "");
    CHECK(mlp_get_param(ctx, "b2", b2_back, sizeof b2_back) == MLP_OK && memcmp(b2_back, zeros, sizeof zeros) == 0);
    EXPECT(ctx, mlp_load_params(ctx, saved), MLP_OK, "");
    CHECK(mlp_get_param(ctx, "b2", b2_back, sizeof b2_back) == MLP_OK && memcmp(b2_back, b2, sizeof b2) == 0);

    /* bad files: errors, and the context keeps its values */
    EXPECT(ctx, mlp_save_params(ctx, NULL), MLP_ERR_NULL, "path is NULL");
    EXPECT(ctx, mlp_save_params(ctx, "/nonexistent-dir/x.params"), MLP_ERR_IO, "cannot write");
    EXPECT(ctx, mlp_load_params(ctx, NULL), MLP_ERR_NULL, "path is NULL");
    EXPECT(ctx, mlp_load_params(ctx, "/nonexistent-dir/x.params"), MLP_ERR_IO, "cannot open");
    const char *junk = path_in_scratch("junk.params");
    write_bytes(junk, "this is not a parameter file", 28);
    EXPECT(ctx, mlp_load_params(ctx, junk), MLP_ERR_FORMAT, "not a graphc parameter file");
    /* a truncated copy of a good file */
    FILE *f = fopen(saved, "rb");
    static unsigned char head[150000];
    size_t n = f ? fread(head, 1, sizeof head, f) : 0;
    if (f) fclose(f);
    const char *cut = path_in_scratch("cut.params");
    write_bytes(cut, head, n);
    EXPECT(ctx, mlp_load_params(ctx, cut), MLP_ERR_FORMAT, "truncated");
    CHECK(mlp_get_param(ctx, "b2", b2_back, sizeof b2_back) == MLP_OK && memcmp(b2_back, b2, sizeof b2) == 0);

    char err[256] = "unset";
    CHECK(mlp_create_ex("/nonexistent-dir/x.params", err, sizeof err) == NULL && strstr(err, "cannot open"));
    printf("     create_ex(missing file): %s\n", err);
    CHECK(mlp_create_ex(junk, err, sizeof err) == NULL && strstr(err, "not a graphc parameter file"));
    CHECK(mlp_create(cut) == NULL);
    mlp_ctx *from_file = mlp_create_ex(saved, err, sizeof err);
    CHECK(from_file != NULL && err[0] == '\0');
    float b2_file[10];
    CHECK(from_file && mlp_get_param(from_file, "b2", b2_file, sizeof b2_file) == MLP_OK &&
          memcmp(b2_file, b2, sizeof b2) == 0);
    mlp_destroy(from_file);
    mlp_destroy(NULL);
}

/* Two threads, two contexts: one trains, one keeps predicting with the initial parameters. */
#define STEPS 6
typedef struct { mlp_ctx *ctx; float ref[B * 10]; int ok; float losses[STEPS]; } job;

static void *train_job(void *arg) {
    job *j = (job *)arg;
    j->ok = 1;
    for (int s = 0; s < STEPS; s++) j->ok &= mlp_train_step(j->ctx, X, Y, B, &j->losses[s]) == MLP_OK;
    return NULL;
}

static void *infer_job(void *arg) {
    job *j = (job *)arg;
    float out[B * 10];
    j->ok = 1;
    for (int s = 0; s < STEPS; s++) {
        j->ok &= mlp_infer(j->ctx, X, B, out) == MLP_OK;
        j->ok &= memcmp(out, j->ref, sizeof out) == 0;
    }
    return NULL;
}

static void check_threads(void) {
    job a = {0}, b = {0}, seq = {0};
    a.ctx = mlp_create(NULL);
    b.ctx = mlp_create(NULL);
    seq.ctx = mlp_create(NULL);
    CHECK(a.ctx && b.ctx && seq.ctx);
    if (!a.ctx || !b.ctx || !seq.ctx) return;
    CHECK(mlp_infer(b.ctx, X, B, b.ref) == MLP_OK);
    train_job(&seq);  /* the same steps, alone */
    pthread_t ta, tb;
    pthread_create(&ta, NULL, train_job, &a);
    pthread_create(&tb, NULL, infer_job, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK(a.ok && b.ok && seq.ok);
    int same = 1;
    for (int s = 0; s < STEPS; s++) same &= fabsf(a.losses[s] - seq.losses[s]) <= 1e-6f * fabsf(seq.losses[s]);
    CHECK(same);
    CHECK(a.losses[STEPS - 1] < a.losses[0]);
    mlp_destroy(a.ctx);
    mlp_destroy(b.ctx);
    mlp_destroy(seq.ctx);
}

int main(int argc, char **argv) {
    snprintf(scratch_dir, sizeof scratch_dir, "%s", argc > 1 ? argv[1] : ".");
    fill_inputs();
    char err[256];
    mlp_ctx *ctx = mlp_create_ex(NULL, err, sizeof err);
    if (!ctx) { printf("FAIL mlp_create(NULL): %s\n", err); return 1; }
    check_arguments(ctx);
    check_failed_step_changes_nothing(ctx);
    check_params(ctx);
    mlp_destroy(ctx);
    check_threads();
    printf(failures ? "%d FAILED\n" : "all passed\n", failures);
    return failures ? 1 : 0;
}
