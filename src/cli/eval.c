/* eval.c - `recur eval`: the mean cross-entropy (nats per character) of a
 * checkpoint predicting every character of a text from all those before it:
 * zero initial state, the state carried through the whole file, so the
 * first character is not predicted and chars = number of predictions
 * (--streams N: N streams side by side, as training's validation).
 * Also bits per character (loss / ln 2) and perplexity (exp(loss)).
 * --model A,B,... scores an ensemble: the mixture of the models'
 * predicted distributions (each model carries its own state). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cmd_eval(int argc, char **argv)
{
    const char *cmd = "eval";
    const char *model_path = NULL, *data_path = NULL, *precision = "f32";
    int json = 0, chunk = 256, threads = 0, streams = 1;
    cli_option options[] = {
        {"model", CLI_STRING, &model_path, "CKPT[,CKPT...]",
         "checkpoint to evaluate (.safetensors); several, comma-separated, are scored as an "
         "ensemble: the average of their predicted distributions", 0, 0, NULL, "required", 0, 0},
        {"data", CLI_STRING, &data_path, "FILE", "text to evaluate on", 0, 0, NULL, "required",
         0, 0},
        {"json", CLI_FLAG, &json, NULL,
         "print one JSON object {loss, bpc, perplexity, chars} on stdout", 0, 0, NULL, NULL, 0, 0},
        {"chunk", CLI_INT, &chunk, "N",
         "steps per forward call (the state is carried, so only rounding depends on it)", 1,
         1 << 20, NULL, NULL, 0, 0},
        {"streams", CLI_INT, &streams, "N",
         "cut the text into N streams scored side by side, each from a zero state: with N = "
         "--batch and --chunk = --seq-len, the validation loss 'recur train' reports for the "
         "last --val-fraction of its text; 1 scores the whole text as one stream", 1, 1 << 20,
         NULL, NULL, 0, 0},
        {"precision", CLI_CHOICE, &precision, "P", "f32, or bf16: run the recurrent stack "
         "token by token in bfloat16 as 'recur sample --precision bf16' does (AVX512-BF16 where "
         "the CPU has it, emulated elsewhere); f32 forwards --chunk steps at a time", 0, 0,
         cli_precision_choices, NULL, 0, 0},
        {"threads", CLI_INT, &threads, "N", "threads for the matrix products (0: all cores)", 0,
         4096, NULL, "all cores", 0, 0},
        CLI_END};
    int status = cli_parse(cmd, options, argc, argv, "--model CKPT[,CKPT...] --data FILE [options]",
                           "Mean cross-entropy in nats per character of predicting each "
                           "character of FILE from all\nthose before it (zero initial state, "
                           "state carried through the whole file), bits per\ncharacter and "
                           "perplexity.");
    if (status == CLI_HELP_SHOWN)
        return CLI_OK;
    if (status)
        return status;
    if (!model_path)
        return cli_usage(cmd, "--model CKPT is required");
    if (!data_path)
        return cli_usage(cmd, "--data FILE is required");
    if (streams > 1 && strcmp(precision, "f32") != 0)
        return cli_usage(cmd, "--streams %d: --precision %s scores one stream", streams,
                         precision);
    recur_set_threads(threads);

    cli_lms models;
    char *text = NULL;
    size_t len = 0, n = 0;
    int32_t *ids = NULL;
    int rc = cli_load_lms(cmd, model_path, &models);
    if (rc)
        return rc;
    rc = CLI_FAILURE;
    const recur_vocab *vocab = models.vocab;
    if (recur_text_read_file(data_path, &text, &len)) {
        cli_fail(cmd, "", "%s", recur_last_error());
        goto done;
    }
    if (recur_vocab_encode(vocab, text, len, &ids, &n)) {
        cli_fail(cmd, "The model can only score text made of the characters it was trained on.",
                 "%s: %s", data_path, recur_last_error());
        goto done;
    }
    if (n < 2) {
        cli_fail(cmd, "", "%s: %zu character(s): at least 2 are needed (the first is never "
                 "predicted)", data_path, n);
        goto done;
    }
    double loss = 0.0;
    size_t count = 0;
    const int status2 = strcmp(precision, "f32") == 0
                            ? cli_evaluate(models.lm, models.count, ids, n, streams, chunk,
                                           &loss, &count)
                            : cli_evaluate_stream(models.lm, models.count, ids, n,
                                                  cli_precision(precision), &loss, &count);
    if (status2) {
        cli_fail(cmd, "", "evaluation failed: %s", recur_last_error());
        goto done;
    }
    const double bpc = loss / log(2.0), perplexity = exp(loss);
    if (json)
        printf("{\"loss\": %.9g, \"bpc\": %.9g, \"perplexity\": %.9g, \"chars\": %zu}\n", loss,
               bpc, perplexity, count);
    else
        printf("loss %.6f nats/char, %.6f bits/char, perplexity %.4f over %zu characters\n", loss,
               bpc, perplexity, count);
    rc = CLI_OK;
done:
    recur_free(ids);
    recur_free(text);
    cli_free_lms(&models);
    return rc;
}
