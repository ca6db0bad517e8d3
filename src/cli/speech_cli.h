/* speech_cli.h - what the `recur speech` subcommands (speech.c: dispatch
 * and shared data handling; speech_train.c, speech_transcribe.c,
 * speech_eval.c) share: choosing recordings by FSDD take and speaker,
 * loading them, building connected utterances reproducibly from a seed,
 * featurizing into utterance sets, padded batches and scoring. */
#ifndef RECUR_CLI_SPEECH_H
#define RECUR_CLI_SPEECH_H

#include <stdint.h>
#include <stdio.h>

#include "cli.h"

int cmd_speech(int argc, char **argv);
int cmd_speech_train(int argc, char **argv);
int cmd_speech_transcribe(int argc, char **argv);
int cmd_speech_eval(int argc, char **argv);

/* Which recordings a command uses and how connected utterances are made;
 * the option entries are added by speech_add_data_options. */
typedef struct speech_data_opts {
    const char *data;          /* folder of FSDD-named .wav files, or a manifest */
    const char *task;          /* "isolated" or "connected" */
    const char *test_takes;    /* FSDD takes of the test split, e.g. "0-4" */
    const char *test_speakers; /* speakers wholly in the test split, "a,b" */
    int min_digits, max_digits; /* recordings per connected utterance */
    double pause_min, pause_max, edge_max, snr_db;
    double speed_min, speed_max; /* speed perturbation of each recording */
} speech_data_opts;

void speech_data_opts_default(speech_data_opts *o);
/* Adds --data, --task, --test-takes, --test-speakers, --min-digits,
 * --max-digits, --pause-min, --pause-max, --edge-max, --snr, --speed-min,
 * --speed-max with the given flags (CLI_SAVED | CLI_FROZEN for training);
 * returns how many. */
int speech_add_data_options(cli_option *table, speech_data_opts *o, unsigned flags);
/* Checks the values together (ranges, take lists); CLI_USAGE on error. */
int speech_check_data_opts(const char *cmd, const speech_data_opts *o);
int speech_is_connected(const speech_data_opts *o);

/* Indices of the entries of `list` in a split: "train" (not test), "test"
 * (a take in --test-takes or a speaker in --test-speakers) or "all";
 * `speakers` (may be NULL or "") keeps only those speakers. *indices is
 * malloc'd. CLI_FAILURE with a message when nothing is selected. */
int speech_select(const char *cmd, const recur_speech_list *list, const speech_data_opts *o,
                  const char *split, const char *speakers, size_t **indices, size_t *count);

/* Recordings in memory at one sample rate. */
typedef struct speech_clips {
    size_t count;
    float **samples;          /* [count] each [lengths[i]], from recur_audio_read */
    size_t *lengths;
    const char **transcripts; /* borrowed from the list */
    const char **paths;       /* borrowed from the list */
    int spaced;               /* some transcript has more than one letter: connected
                                 utterances put a space between the recordings' words */
} speech_clips;

int speech_load_clips(const char *cmd, const recur_speech_list *list, const size_t *indices,
                      size_t count, int sample_rate, speech_clips *out);
void speech_clips_free(speech_clips *c);

/* The seed of utterance `index` of `epoch` in a stream of utterances
 * identified by `base` (a mix of the three, so that any utterance can be
 * rebuilt on its own, e.g. after --resume). */
uint64_t speech_seed(uint64_t base, int64_t epoch, int64_t index);

/* Builds the connected utterance of `seed`: k in [min_digits, max_digits]
 * clips drawn uniformly (with replacement) from `clips`, joined with
 * recur_speech_join. *samples is recur-allocated (recur_free); *transcript
 * (malloc'd) is the clips' transcripts concatenated, with a space between
 * them when clips->spaced. */
int speech_make_connected(const speech_clips *clips, const speech_data_opts *o,
                          int sample_rate, uint64_t seed, float **samples, size_t *n,
                          char **transcript);

/* One recording (clips index i) as a connected utterance of one: random
 * silence at both ends, speed and noise as the options say, drawn from
 * `seed` (training augmentation of isolated recordings). */
int speech_make_augmented(const speech_clips *clips, size_t i, const speech_data_opts *o,
                          int sample_rate, uint64_t seed, float **samples, size_t *n);

/* Featurized utterances with their label ids. */
typedef struct speech_set {
    int count, capacity;
    float **x;         /* [count] each [T[i], F], recur-allocated */
    int *T;
    int32_t **labels;  /* [count] each [L[i]] alphabet ids (NULL when L = 0) */
    int *L;
    char **text;       /* reference transcripts (malloc'd) */
    char **name;       /* file path or "utterance N" (malloc'd) */
} speech_set;

/* Featurizes samples with the model's settings and encodes the transcript
 * with its alphabet. Returns a library status (message in
 * recur_last_error): RECUR_E_NOT_FOUND for a letter outside the alphabet.
 * speech_set_fail prints the error of a failed add with its context and
 * returns CLI_FAILURE. */
int speech_set_add(speech_set *set, recur_speech *model, const float *samples, size_t n,
                   const char *transcript, const char *name);
int speech_set_fail(const char *cmd, int status, const char *name, const char *transcript);
void speech_set_free(speech_set *set);

/* A padded batch of set items idx[0..B): x [T, B, F] time-major,
 * lengths, labels [B, S]. Buffers owned by the batch and reused. */
typedef struct speech_batch_buf {
    float *x;
    int32_t *lengths, *labels, *label_lengths;
    size_t x_cap, label_cap;
    int B_cap;
    recur_speech_batch batch;
} speech_batch_buf;

int speech_batch_fill(speech_batch_buf *buf, const speech_set *set, const int *idx, int B, int F);
void speech_batch_buf_free(speech_batch_buf *buf);

/* Totals over scored utterances. */
typedef struct speech_scores {
    size_t utterances, exact;
    recur_error_rate labels; /* edits over alphabet letters (digits) */
    recur_error_rate words;  /* edits over words (see speech_words) */
    double loss_sum;         /* CTC loss summed over utterances (nats) */
    size_t loss_count;
} speech_scores;

/* Decodes every utterance of the set in batches of `batch` (beam_width <= 1:
 * greedy) and adds to *scores; with want_loss also the CTC loss. Each
 * wrong transcript is printed to `errors` (may be NULL) as
 * "name<TAB>reference<TAB>hypothesis". */
int speech_score_set(recur_speech *model, const speech_set *set, int batch, int beam_width,
                     int want_loss, speech_scores *scores, FILE *errors);

#endif
