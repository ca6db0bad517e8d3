/* speech_eval.c - `recur speech eval --model CKPT --data PATH`: transcribes
 * a split of the data and reports, on stdout,
 *   accuracy  the share of utterances transcribed exactly (for isolated
 *             digits: the classification accuracy);
 *   cer       letter error rate: edits (substitutions, insertions,
 *             deletions) over the reference letters, summed over the
 *             corpus; with digit transcripts this is the digit error rate;
 *   wer       word error rate, words split at spaces; when the alphabet has
 *             no space every letter is a word, so wer = cer (digits).
 * Connected utterances (--task connected) are built from the split's
 * recordings exactly as training builds them, from --seed, so a run is
 * reproducible. --show-errors lists every wrong transcript on stderr. */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "speech_cli.h"

static const char *const split_choices[] = {"test", "train", "all", NULL};

int cmd_speech_eval(int argc, char **argv)
{
    const char *cmd = "speech eval";
    speech_data_opts d;
    speech_data_opts_default(&d);
    const char *model_path = NULL, *split = "test", *speakers = "none";
    int64_t utterances = 500, seed = 1;
    int beam = 8, batch = 32, threads = 0, json = 0, show_errors = 0;
    cli_option options[40];
    int count = speech_add_data_options(options, &d, 0);
    const cli_option own[] = {
        {"model", CLI_STRING, &model_path, "FILE", "checkpoint written by recur speech train", 0,
         0, NULL, "required", 0, 0},
        {"split", CLI_CHOICE, &split, "NAME", "test, train or all recordings of --data", 0, 0,
         split_choices, NULL, 0, 0},
        {"speakers", CLI_STRING, &speakers, "LIST", "only these speakers (comma-separated; "
         "none: all)", 0, 0, NULL, NULL, 0, 0},
        {"utterances", CLI_INT64, &utterances, "N", "connected: utterances to build", 1, 1e7,
         NULL, NULL, 0, 0},
        {"seed", CLI_INT64, &seed, "S", "connected: seed of the utterances", 0, 9e18, NULL, NULL,
         0, 0},
        {"beam", CLI_INT, &beam, "N", "prefix beam search width (1: greedy decoding)", 1, 4096,
         NULL, NULL, 0, 0},
        {"batch", CLI_INT, &batch, "B", "utterances a forward pass", 1, 65536, NULL, NULL, 0, 0},
        {"threads", CLI_INT, &threads, "N", "threads for the matrix products (0: all cores)", 0,
         4096, NULL, "all cores", 0, 0},
        {"json", CLI_FLAG, &json, NULL, "print the results as one JSON object", 0, 0, NULL, NULL,
         0, 0},
        {"show-errors", CLI_FLAG, &show_errors, NULL, "list wrong transcripts on stderr "
         "(name<TAB>reference<TAB>hypothesis)", 0, 0, NULL, NULL, 0, 0},
    };
    memcpy(options + count, own, sizeof own);
    count += (int)(sizeof own / sizeof own[0]);
    options[count] = (cli_option)CLI_END;
    int rc = cli_parse(cmd, options, argc, argv, "--model FILE --data PATH [options]",
                       "Transcribes the --split of PATH (FSDD's usual test split by default) and "
                       "prints the\naccuracy and the letter (digit) and word error rates.");
    if (rc == CLI_HELP_SHOWN)
        return CLI_OK;
    if (rc)
        return rc;
    if (!model_path)
        return cli_usage(cmd, "--model FILE is required");
    if (!d.data)
        return cli_usage(cmd, "--data PATH is required");
    if ((rc = speech_check_data_opts(cmd, &d)))
        return rc;
    recur_set_threads(threads);

    recur_speech *model = NULL;
    recur_speech_list *list = NULL;
    size_t *idx = NULL, n = 0;
    speech_clips clips;
    speech_set set;
    memset(&clips, 0, sizeof clips);
    memset(&set, 0, sizeof set);
    if (recur_speech_load(model_path, &model)) {
        rc = cli_fail(cmd, "Pass a checkpoint written by 'recur speech train'.", "%s",
                      recur_last_error());
        goto done;
    }
    if (recur_speech_list_read(d.data, &list)) {
        rc = cli_fail(cmd, "--data is a folder of FSDD-named .wav files or a manifest of "
                      "path<TAB>transcript lines.", "%s", recur_last_error());
        goto done;
    }
    if ((rc = speech_select(cmd, list, &d, split, speakers, &idx, &n)))
        goto done;
    const int rate = recur_speech_get_config(model)->features.sample_rate;
    if ((rc = speech_load_clips(cmd, list, idx, n, rate, &clips)))
        goto done;
    rc = CLI_FAILURE;
    const int connected = speech_is_connected(&d);
    const double t0 = cli_now();
    if (!connected) {
        for (size_t i = 0; i < clips.count; i++) {
            int status = speech_set_add(&set, model, clips.samples[i], clips.lengths[i],
                                        clips.transcripts[i], clips.paths[i]);
            if (status) {
                rc = speech_set_fail(cmd, status, clips.paths[i], clips.transcripts[i]);
                goto done;
            }
        }
    } else {
        for (int64_t i = 0; i < utterances; i++) {
            float *samples = NULL;
            size_t len = 0;
            char *text = NULL, name[64];
            snprintf(name, sizeof name, "utterance %" PRId64, i);
            int status = speech_make_connected(&clips, &d, rate,
                                               speech_seed((uint64_t)seed, 0, i), &samples, &len,
                                               &text);
            if (status == RECUR_OK) {
                status = speech_set_add(&set, model, samples, len, text, name);
                recur_free(samples);
            }
            if (status) {
                rc = speech_set_fail(cmd, status, name, text ? text : "");
                free(text);
                goto done;
            }
            free(text);
        }
    }
    speech_scores s;
    memset(&s, 0, sizeof s);
    if (speech_score_set(model, &set, batch, beam, 0, &s, show_errors ? stderr : NULL)) {
        rc = cli_fail(cmd, "", "%s", recur_last_error());
        goto done;
    }
    const double seconds = cli_now() - t0;
    const double accuracy = s.utterances ? (double)s.exact / (double)s.utterances : 0.0;
    const double cer = recur_error_rate_value(&s.labels), wer = recur_error_rate_value(&s.words);
    if (json) {
        printf("{\"utterances\": %zu, \"correct\": %zu, \"accuracy\": %.6f, \"cer\": %.6f, "
               "\"letter_edits\": %" PRId64 ", \"letters\": %" PRId64 ", \"wer\": %.6f, "
               "\"word_edits\": %" PRId64 ", \"words\": %" PRId64 ", \"seconds\": %.3f}\n",
               s.utterances, s.exact, accuracy, cer, s.labels.edits, s.labels.reference_length,
               wer, s.words.edits, s.words.reference_length, seconds);
    } else {
        printf("%zu %s utterances (%s split of %s, %s decoding)\n", s.utterances,
               connected ? "connected" : "isolated", split, d.data,
               beam > 1 ? "beam search" : "greedy");
        printf("accuracy %.4f (%zu of %zu exact)\n", accuracy, s.exact, s.utterances);
        printf("cer %.4f (%" PRId64 " edits / %" PRId64 " letters)\n", cer, s.labels.edits,
               s.labels.reference_length);
        printf("wer %.4f (%" PRId64 " edits / %" PRId64 " words)\n", wer, s.words.edits,
               s.words.reference_length);
    }
    rc = CLI_OK;
done:
    speech_set_free(&set);
    speech_clips_free(&clips);
    free(idx);
    recur_speech_list_free(list);
    recur_speech_free(model);
    return rc;
}
