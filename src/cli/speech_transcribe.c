/* speech_transcribe.c - `recur speech transcribe --model CKPT FILE...`:
 * prints "path<TAB>transcript" on stdout for each audio file, in the order
 * given. Files at another sample rate are resampled to the model's; a file
 * that cannot be read is reported on stderr and the others still run (the
 * exit code is then 1). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "speech_cli.h"

/* Splits argv into option words (kept for cli_parse) and file names: a word
 * not starting with "--" that is not the value of the option before it is a
 * file; after "--" every word is. */
static void split_args(cli_option *options, int argc, char **argv, char **opts, int *n_opts,
                       char **files, int *n_files)
{
    *n_opts = *n_files = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            for (i++; i < argc; i++)
                files[(*n_files)++] = argv[i];
            break;
        }
        if (strncmp(a, "--", 2) != 0) {
            files[(*n_files)++] = argv[i];
            continue;
        }
        opts[(*n_opts)++] = argv[i];
        const char *eq = strchr(a, '=');
        char name[64];
        size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (len >= sizeof name)
            continue;
        memcpy(name, a + 2, len);
        name[len] = '\0';
        cli_option *o = cli_find(options, name);
        if (o && o->type != CLI_FLAG && !eq && i + 1 < argc)
            opts[(*n_opts)++] = argv[++i];
    }
}

int cmd_speech_transcribe(int argc, char **argv)
{
    const char *cmd = "speech transcribe";
    const char *model_path = NULL;
    int beam = 8, threads = 0;
    cli_option options[] = {
        {"model", CLI_STRING, &model_path, "FILE", "checkpoint written by recur speech train",
         0, 0, NULL, "required", 0, 0},
        {"beam", CLI_INT, &beam, "N", "prefix beam search width (1: greedy decoding)", 1, 4096,
         NULL, NULL, 0, 0},
        {"threads", CLI_INT, &threads, "N", "threads for the matrix products (0: all cores)", 0,
         4096, NULL, "all cores", 0, 0},
        CLI_END};
    char **opts = malloc((size_t)(argc + 1) * sizeof *opts);
    char **files = malloc((size_t)(argc + 1) * sizeof *files);
    if (!opts || !files) {
        free(opts);
        free(files);
        return cli_fail(cmd, "", "out of memory");
    }
    int n_opts = 0, n_files = 0;
    split_args(options, argc, argv, opts, &n_opts, files, &n_files);
    int rc = cli_parse(cmd, options, n_opts, opts, "--model FILE [options] AUDIO...",
                       "Prints 'path<TAB>transcript' for each audio file (WAV, FLAC, Ogg, AIFF, "
                       "... at any sample rate).");
    recur_speech *model = NULL;
    if (rc == CLI_HELP_SHOWN) {
        rc = CLI_OK;
        goto done;
    }
    if (rc)
        goto done;
    if (!model_path) {
        rc = cli_usage(cmd, "--model FILE is required");
        goto done;
    }
    if (n_files == 0) {
        rc = cli_usage(cmd, "no audio file given");
        goto done;
    }
    recur_set_threads(threads);
    if (recur_speech_load(model_path, &model)) {
        rc = cli_fail(cmd, "Pass a checkpoint written by 'recur speech train'.", "%s",
                      recur_last_error());
        goto done;
    }
    const int rate = recur_speech_get_config(model)->features.sample_rate;
    int failed = 0;
    for (int i = 0; i < n_files; i++) {
        float *samples = NULL;
        size_t n = 0;
        char *text = NULL;
        if (recur_audio_read(files[i], rate, &samples, &n, NULL)) {
            fprintf(stderr, "recur %s: error: %s\n", cmd, recur_last_error());
            failed++;
        } else if (recur_speech_transcribe(model, samples, n, beam, &text)) {
            fprintf(stderr, "recur %s: error: %s: %s\n", cmd, files[i], recur_last_error());
            failed++;
        } else {
            printf("%s\t%s\n", files[i], text);
            fflush(stdout);
        }
        recur_free(text);
        recur_free(samples);
    }
    rc = failed ? CLI_FAILURE : CLI_OK;
    if (failed)
        fprintf(stderr, "recur %s: %d of %d file%s could not be transcribed\n", cmd, failed,
                n_files, n_files == 1 ? "" : "s");
done:
    recur_speech_free(model);
    free(opts);
    free(files);
    return rc;
}
