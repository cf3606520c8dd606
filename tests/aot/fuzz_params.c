/* Loads each parameter file named on the command line into an exported "mlp" context
 * (tests/test_aot.py writes them: mutations of a valid file). Every load must succeed or fail
 * with MLP_ERR_FORMAT and a message, and a failed load must leave the parameters as they were.
 * Exit 0 when all did; a crash is a finding. Usage: fuzz_params file... */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlp.h"

int main(int argc, char **argv) {
    char err[512];
    mlp_ctx *ctx = mlp_create_ex(NULL, err, sizeof err);
    if (!ctx) { printf("FAIL create: %s\n", err); return 2; }
    const size_t nbytes = mlp_param_info(0)->nbytes;
    const char *pname = mlp_param_info(0)->name;
    unsigned char *before = malloc(nbytes), *after = malloc(nbytes);
    int failures = 0, loaded = 0;
    for (int i = 1; i < argc; i++) {
        mlp_get_param(ctx, pname, before, nbytes);
        int rc = mlp_load_params(ctx, argv[i]);
        if (rc == MLP_OK) { loaded++; continue; }
        char msg[512];
        snprintf(msg, sizeof msg, "%s", mlp_last_error(ctx));  /* (get_param clears it) */
        mlp_get_param(ctx, pname, after, nbytes);
        if (rc != MLP_ERR_FORMAT || !msg[0] || memcmp(before, after, nbytes)) {
            printf("FAIL %s: rc %d \"%s\"\n", argv[i], rc, msg);
            failures++;
        }
        mlp_ctx *other = mlp_create_ex(argv[i], err, sizeof err);
        if (other) mlp_destroy(other);
        else if (!err[0]) { printf("FAIL %s: create_ex gave no message\n", argv[i]); failures++; }
    }
    printf("%d files, %d loaded, %d failures\n", argc - 1, loaded, failures);
    mlp_destroy(ctx);
    free(before);
    free(after);
    return failures != 0;
}
