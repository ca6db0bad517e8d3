/* translate_average.c - `recur translate average`: checkpoint averaging. The
 * mean of the weights of several checkpoints of one run (typically its last
 * few, kept with --keep-every) is written as one model file, which
 * translates like any other (docs/translate.md, "Checkpoint averaging"). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "translate_cli.h"

/* More than an ensemble: averaging reads each model once and holds them all. */
#define MAX_AVERAGED 256

int cmd_translate_average(int argc, char **argv)
{
    const char *cmd = "translate average";
    const char *model_path = NULL, *out = NULL;
    int overwrite = 0;
    cli_option options[] = {
        {"model", CLI_STRING, &model_path, "FILE,FILE[,...]", "checkpoints of one run, joined "
         "by commas (e.g. its step-*.safetensors from --keep-every); at most 256", 0, 0, NULL,
         "required", 0, 0},
        {"out", CLI_STRING, &out, "FILE", "where to write the averaged model", 0, 0, NULL,
         "required", 0, 0},
        {"overwrite", CLI_FLAG, &overwrite, NULL, "replace --out if it exists", 0, 0, NULL, NULL,
         0, 0},
        CLI_END,
    };
    int rc = cli_parse(cmd, options, argc, argv, "--model FILE,FILE[,...] --out FILE",
                       "Writes the element-wise mean of the checkpoints' weights as one model "
                       "(checkpoint\naveraging): translate or evaluate it with --model FILE. "
                       "They must come from one\nrun, or at least share its architecture, BPE, "
                       "memory and columns; the first one's\ndropout settings are kept. The "
                       "file holds the model only (no training state).");
    if (rc == CLI_HELP_SHOWN)
        return CLI_OK;
    if (rc)
        return rc;
    if (!model_path)
        return cli_usage(cmd, "--model FILE,FILE[,...] is required");
    if (!out)
        return cli_usage(cmd, "--out FILE is required");
    if (!overwrite && access(out, F_OK) == 0)
        return cli_fail(cmd, "Pass --overwrite to replace it, or choose another --out.",
                        "%s already exists", out);
    tr_model *m = NULL;
    int count = 0;
    if ((rc = translate_models_load(cmd, model_path, MAX_AVERAGED, &m, &count)))
        return rc;
    /* each file's architecture against the first one's, naming both */
    char *paths = strdup(model_path);
    const char *first = paths, *path = paths;
    for (int k = 0; paths && k < count; k++, path += strlen(path) + 1) {
        char *comma = strchr(path, ',');
        if (comma)
            *comma = '\0';
        const char *what = recur_seq2seq_architecture_difference(m[0].net, m[k].net);
        if (what) {
            rc = cli_fail(cmd, "Average checkpoints of one run (kept with --keep-every), which "
                          "differ only in the step.", "%s differs from %s in its %s", path,
                          first, what);
            break;
        }
    }
    recur_seq2seq **nets = paths && rc == CLI_OK ? malloc((size_t)count * sizeof *nets) : NULL;
    if (rc == CLI_OK && !nets)
        rc = cli_fail(cmd, "", "out of memory");
    for (int k = 0; nets && k < count; k++)
        nets[k] = m[k].net;
    int status = nets ? recur_seq2seq_average(m[0].net, nets, count) : RECUR_OK;
    free(nets);
    free(paths);
    if (rc == CLI_OK && status)
        rc = cli_fail(cmd, "", "%s", recur_last_error());
    if (rc) {
        translate_models_free(m, count);
        return rc;
    }
    recur_st_writer *w = NULL;
    status = recur_st_writer_create(&w);
    if (status == RECUR_OK && (status = translate_model_write(&m[0], w)) == RECUR_OK)
        status = recur_st_writer_save(w, out);
    recur_st_writer_free(w);
    const size_t n = recur_seq2seq_size(m[0].net);
    translate_models_free(m, count);
    if (status)
        return cli_fail(cmd, "Check the folder's free space and permissions.",
                        "cannot write %s: %s", out, recur_last_error());
    printf("wrote %s: the mean of %d checkpoint%s (%zu weights)\n", out, count,
           count == 1 ? "" : "s", n);
    return CLI_OK;
}
