/* main.c - test_parity FOLDER: runs every fixture file (*.safetensors) found
 * in FOLDER against PyTorch's reference values, dispatching on the
 * `kind` metadata key; unknown kinds are skipped with a message. Prints the
 * worst error of each case and exits non-zero when any case fails. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parity.h"

typedef struct {
    const char *kind;
    int (*run)(const recur_st *, parity_result *);
} parity_kind;

static const parity_kind kinds[] = {
    {"layer", parity_layer}, {"lm", parity_lm},   {"optim", parity_optim},
    {"clip", parity_clip},   {"ctc", parity_ctc},
};

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_one(const char *folder, const char *name, int *passed, int *failed, int *skipped)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", folder, name);
    recur_st *st = NULL;
    int status = recur_st_open(path, &st);
    if (status != RECUR_OK) {
        printf("FAIL  %-48s cannot read: %s\n", name, recur_last_error());
        (*failed)++;
        return;
    }
    const char *kind = recur_st_metadata(st, "kind");
    const parity_kind *k = NULL;
    for (size_t j = 0; kind && j < sizeof kinds / sizeof kinds[0]; j++)
        if (strcmp(kinds[j].kind, kind) == 0)
            k = &kinds[j];
    if (!k) {
        printf("SKIP  %-48s unknown kind '%s'\n", name, kind ? kind : "(none)");
        (*skipped)++;
        recur_st_free(st);
        return;
    }
    parity_result r = {0};
    r.tol = 1e-5;
    int outcome = k->run(st, &r);
    switch (outcome) {
    case PARITY_PASS:
    case PARITY_FAIL:
        if (outcome == PARITY_PASS && r.failed == 0 && r.worst_name[0]) {
            printf("ok    %-48s %-6s worst %.2e (%s), tol %.0e\n", name, kind, r.worst,
                   r.worst_name, r.tol);
            (*passed)++;
        } else {
            printf("FAIL  %-48s %-6s worst %.2e (%s), tol %.0e, %d tensors over\n", name, kind,
                   r.worst, r.worst_name, r.tol, r.failed);
            (*failed)++;
        }
        break;
    case PARITY_SKIP:
        printf("SKIP  %-48s %-6s %s\n", name, kind, r.message);
        (*skipped)++;
        break;
    default:
        printf("FAIL  %-48s %-6s error: %s\n", name, kind, r.message);
        (*failed)++;
    }
    recur_st_free(st);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_parity FOLDER\n");
        return 2;
    }
    DIR *dir = opendir(argv[1]);
    if (!dir) {
        fprintf(stderr, "test_parity: cannot open folder %s\n", argv[1]);
        return 2;
    }
    char **names = NULL;
    size_t count = 0;
    struct dirent *e;
    while ((e = readdir(dir))) {
        size_t len = strlen(e->d_name);
        if (len > 12 && strcmp(e->d_name + len - 12, ".safetensors") == 0) {
            names = realloc(names, (count + 1) * sizeof *names);
            names[count] = malloc(len + 1);
            memcpy(names[count++], e->d_name, len + 1);
        }
    }
    closedir(dir);
    qsort(names, count, sizeof *names, compare_names);

    int passed = 0, failed = 0, skipped = 0;
    for (size_t i = 0; i < count; i++) {
        run_one(argv[1], names[i], &passed, &failed, &skipped);
        free(names[i]);
    }
    free(names);
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed || passed == 0 ? 1 : 0;
}
