/* sample.c - `recur sample`: generates text from a checkpoint one token at a
 * time, writing each to stdout as soon as it is drawn. The prime text (if
 * any) is fed first and echoed; without one the model starts from a newline
 * (or token 0 when the vocabulary has none), which is not echoed. The same
 * checkpoint, options and seed always give the same text. --model A,B,...
 * samples from an ensemble: the mixture of the models' distributions. */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* Writes the bytes of one token and flushes, so that a reader sees it now. */
static void put_token(const recur_vocab *vocab, int32_t id)
{
    size_t len = 0;
    const char *bytes = recur_vocab_token(vocab, id, &len);
    if (bytes && len)
        fwrite(bytes, 1, len, stdout);
    fflush(stdout);
}

/* Feeds one token to every model of the ensemble; next receives what to draw
 * from (with one model its logits are already there). */
static int step_all(recur_lm_sampler **samplers, int K, const int32_t *token, float **members,
                    int V, float *next)
{
    for (int k = 0; k < K; k++) {
        int status = recur_lm_sampler_step(samplers[k], token, members[k]);
        if (status)
            return status;
    }
    return K == 1 ? RECUR_OK
                  : recur_log_mixture((const float *const *)members, K, 1, V, next);
}

int cmd_sample(int argc, char **argv)
{
    const char *cmd = "sample";
    const char *model_path = NULL, *prime = NULL;
    int64_t length = 500, seed = -1;
    double temperature = 1.0, top_p = 1.0;
    int top_k = 0, threads = 1;
    const char *precision = "f32";
    cli_option options[] = {
        {"model", CLI_STRING, &model_path, "CKPT[,CKPT...]",
         "checkpoint to sample from (.safetensors); several, comma-separated, form an "
         "ensemble: each character is drawn from the average of their distributions", 0, 0,
         NULL, "required", 0, 0},
        {"prime", CLI_STRING, &prime, "TEXT", "text to start from (fed to the model and printed)",
         0, 0, NULL, "a newline, not printed", 0, 0},
        {"length", CLI_INT64, &length, "N", "number of characters to generate", 0, 1e15, NULL,
         NULL, 0, 0},
        {"temperature", CLI_DOUBLE, &temperature, "T",
         "divides the logits: < 1 more conservative, > 1 more random", 0, 1e6, NULL, NULL,
         CLI_OPEN_MIN, 0},
        {"top-k", CLI_INT, &top_k, "K", "draw only from the K most likely characters (0: off)", 0,
         1 << 24, NULL, NULL, 0, 0},
        {"top-p", CLI_DOUBLE, &top_p, "P",
         "draw only from the smallest set of characters whose probability reaches P (1: off)", 0,
         1, NULL, NULL, CLI_OPEN_MIN, 0},
        {"seed", CLI_INT64, &seed, "S", "random seed; the same seed gives the same text", 0,
         (double)INT64_MAX, NULL, "from the clock, printed on stderr", 0, 0},
        {"precision", CLI_CHOICE, &precision, "P", "f32, or bf16: the recurrent stack's "
         "products in bfloat16 (AVX512-BF16 where the CPU has it, emulated elsewhere; faster, "
         "slightly less accurate: docs/PERFORMANCE.md)", 0, 0, cli_precision_choices, NULL, 0,
         0},
        {"threads", CLI_INT, &threads, "N", "threads for the matrix products (0: all cores)", 0,
         4096, NULL, NULL, 0, 0},
        CLI_END};
    int status = cli_parse(cmd, options, argc, argv, "--model CKPT[,CKPT...] [options]",
                           "Generates text from a trained model, streaming each character to "
                           "stdout as it is drawn.");
    if (status == CLI_HELP_SHOWN)
        return CLI_OK;
    if (status)
        return status;
    if (!model_path)
        return cli_usage(cmd, "--model CKPT is required");
    recur_set_threads(threads);

    cli_lms models;
    recur_lm_sampler **samplers = NULL;
    float **members = NULL; /* each model's logits inside `logits` */
    int32_t *prime_ids = NULL;
    float *logits = NULL; /* [K + 1, V]: each model's, then (K > 1) the mixture's */
    size_t prime_count = 0;
    int rc = cli_load_lms(cmd, model_path, &models);
    if (rc)
        return rc;
    rc = CLI_FAILURE;
    const recur_vocab *vocab = models.vocab;
    const int K = models.count, V = recur_lm_get_config(models.lm[0])->vocab_size;
    if (top_k > V) {
        rc = cli_usage(cmd, "--top-k %d is larger than the vocabulary (%d tokens)", top_k, V);
        goto done;
    }
    if (prime) {
        if (recur_vocab_encode(vocab, prime, strlen(prime), &prime_ids, &prime_count)) {
            rc = cli_usage(cmd, "--prime: %s", recur_last_error());
            goto done;
        }
    } else {
        int32_t start = recur_vocab_lookup(vocab, '\n');
        prime_ids = malloc(sizeof *prime_ids);
        if (!prime_ids) {
            cli_fail(cmd, "", "out of memory");
            goto done;
        }
        prime_ids[0] = start >= 0 ? start : 0;
        prime_count = 1;
    }
    logits = malloc((size_t)(K + 1) * (size_t)V * sizeof *logits);
    samplers = calloc((size_t)K, sizeof *samplers);
    members = calloc((size_t)K, sizeof *members);
    if (!logits || !samplers || !members) {
        cli_fail(cmd, "", "out of memory");
        goto done;
    }
    for (int k = 0; k < K; k++) {
        members[k] = logits + (size_t)k * (size_t)V;
        if (recur_lm_sampler_create_with(models.lm[k], 1, cli_precision(precision), &samplers[k])) {
            cli_fail(cmd, "", "cannot create the sampler: %s", recur_last_error());
            goto done;
        }
    }
    /* what to draw from: the model's logits, or the ensemble's log-mixture */
    float *next = K == 1 ? logits : logits + (size_t)K * (size_t)V;
    if (seed < 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (int64_t)(((uint64_t)ts.tv_sec * 1000003u + (uint64_t)ts.tv_nsec) & INT64_MAX);
        fprintf(stderr, "recur sample: seed %" PRId64 " (pass --seed %" PRId64 " to repeat)\n",
                seed, seed);
    }
    recur_rng rng;
    recur_rng_seed(&rng, (uint64_t)seed);
    for (size_t i = 0; i < prime_count; i++) {
        if (step_all(samplers, K, &prime_ids[i], members, V, next)) {
            cli_fail(cmd, "", "sampling failed: %s", recur_last_error());
            goto done;
        }
        if (prime)
            put_token(vocab, prime_ids[i]);
    }
    for (int64_t i = 0; i < length; i++) {
        int32_t token = 0;
        if (recur_sample_logits(next, V, (float)temperature, top_k, (float)top_p, &rng, &token) ||
            step_all(samplers, K, &token, members, V, next)) {
            fputc('\n', stdout);
            cli_fail(cmd, "", "sampling failed: %s", recur_last_error());
            goto done;
        }
        put_token(vocab, token);
    }
    if (isatty(STDOUT_FILENO))
        fputc('\n', stdout);
    fflush(stdout);
    rc = CLI_OK;
done:
    free(logits);
    if (prime)
        recur_free(prime_ids);
    else
        free(prime_ids);
    for (int k = 0; samplers && k < K; k++)
        recur_lm_sampler_free(samplers[k]);
    free(samplers);
    free(members);
    cli_free_lms(&models);
    return rc;
}
