/* speech.c - `recur speech`: dispatches to the subcommands (train,
 * transcribe, eval) and holds what they share (speech_cli.h): the data
 * options, the train/test split by FSDD take and speaker, loading
 * recordings, connected utterances rebuilt from a seed, featurized
 * utterance sets, padded batches and scoring (label and word error rates,
 * exact-match accuracy, CTC loss). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "speech_cli.h"

static void print_help(FILE *out)
{
    fprintf(out,
            "Usage: recur speech <command> [options]\n"
            "\n"
            "Speech recognition with CTC: a (bidirectional) recurrent stack over log-mel or MFCC\n"
            "features, trained on labelled recordings (the Free Spoken Digit Dataset's file\n"
            "names, or a manifest of path<TAB>transcript lines).\n"
            "\n"
            "Commands:\n"
            "  train       train a model on isolated or connected (1-7 recordings) utterances\n"
            "  transcribe  print 'path<TAB>transcript' for each audio file\n"
            "  eval        error rates and accuracy of a model on a split of the data\n"
            "\n"
            "'recur speech <command> --help' lists the options of a command with their defaults.\n"
            "Example:\n"
            "  recur speech train --data ../shared/data/speech/fsdd --out runs/digits --epochs 20\n"
            "  recur speech eval --model runs/digits/best.safetensors --data "
            "../shared/data/speech/fsdd\n"
            "  recur speech transcribe --model runs/digits/best.safetensors some.wav\n");
}

int cmd_speech(int argc, char **argv)
{
    if (argc < 1) {
        print_help(stderr);
        return CLI_USAGE;
    }
    const char *sub = argv[0];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        print_help(stdout);
        return CLI_OK;
    }
    if (strcmp(sub, "train") == 0)
        return cmd_speech_train(argc - 1, argv + 1);
    if (strcmp(sub, "transcribe") == 0)
        return cmd_speech_transcribe(argc - 1, argv + 1);
    if (strcmp(sub, "eval") == 0)
        return cmd_speech_eval(argc - 1, argv + 1);
    fprintf(stderr, "recur speech: unknown command '%s' (commands: train, transcribe, eval)\n"
                    "Try 'recur speech --help'.\n", sub);
    return CLI_USAGE;
}

/* ---- data options ------------------------------------------------------------- */

static const char *const task_choices[] = {"isolated", "connected", NULL};

void speech_data_opts_default(speech_data_opts *o)
{
    *o = (speech_data_opts){.data = NULL, .task = "isolated", .test_takes = "0-4",
                            .test_speakers = "none", .min_digits = 1, .max_digits = 7,
                            .pause_min = 0.05, .pause_max = 0.30, .edge_max = 0.15,
                            .snr_db = 30.0, .speed_min = 1.0, .speed_max = 1.0};
}

int speech_add_data_options(cli_option *table, speech_data_opts *o, unsigned flags)
{
    const cli_option entries[] = {
        {"data", CLI_STRING, &o->data, "PATH", "a folder of FSDD-named recordings "
         "(digit_speaker_take.wav, also in its recordings/ subfolder) or a manifest of "
         "path<TAB>transcript lines", 0, 0, NULL, "required", flags, 0},
        {"task", CLI_CHOICE, &o->task, "KIND", "isolated (one recording an utterance) or "
         "connected (--min-digits..--max-digits recordings joined with pauses and noise)", 0,
         0, task_choices, NULL, flags, 0},
        {"test-takes", CLI_STRING, &o->test_takes, "LIST", "FSDD takes of the test split, "
         "e.g. 0-4 or 0-4,9 (none: no take); FSDD's usual split is 0-4", 0, 0, NULL, NULL,
         flags, 0},
        {"test-speakers", CLI_STRING, &o->test_speakers, "LIST", "speakers whose every "
         "recording is in the test split, comma-separated (none: no speaker)", 0, 0, NULL, NULL,
         flags, 0},
        {"min-digits", CLI_INT, &o->min_digits, "N", "connected: fewest recordings an "
         "utterance", 1, 64, NULL, NULL, flags, 0},
        {"max-digits", CLI_INT, &o->max_digits, "N", "connected: most recordings an utterance",
         1, 64, NULL, NULL, flags, 0},
        {"pause-min", CLI_DOUBLE, &o->pause_min, "SECONDS", "connected: shortest pause between "
         "recordings", 0, 10, NULL, NULL, flags, 0},
        {"pause-max", CLI_DOUBLE, &o->pause_max, "SECONDS", "connected: longest pause between "
         "recordings", 0, 10, NULL, NULL, flags, 0},
        {"edge-max", CLI_DOUBLE, &o->edge_max, "SECONDS", "connected: longest silence before "
         "the first and after the last recording", 0, 10, NULL, NULL, flags, 0},
        {"snr", CLI_DOUBLE, &o->snr_db, "DB", "connected: white noise at this signal-to-noise "
         "ratio (0: no noise)", 0, 200, NULL, NULL, flags, 0},
        {"speed-min", CLI_DOUBLE, &o->speed_min, "F", "connected (and isolated with "
         "--augment): each recording played F times faster, F uniform in --speed-min.."
         "--speed-max", 0.5, 2, NULL, NULL, flags, 0},
        {"speed-max", CLI_DOUBLE, &o->speed_max, "F", "see --speed-min", 0.5, 2, NULL, NULL,
         flags, 0},
    };
    const int count = (int)(sizeof entries / sizeof entries[0]);
    memcpy(table, entries, sizeof entries);
    return count;
}

int speech_is_connected(const speech_data_opts *o) { return strcmp(o->task, "connected") == 0; }

/* Parses "0-4,9" (or "none" / "") into ranges; returns the count or -1. */
static int parse_takes(const char *s, int ranges[][2], int capacity)
{
    if (!s || !s[0] || strcmp(s, "none") == 0)
        return 0;
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long a = strtol(p, &end, 10), b;
        if (end == p || a < 0 || a > 1000000000L)
            return -1;
        p = end;
        b = a;
        if (*p == '-') {
            p++;
            b = strtol(p, &end, 10);
            if (end == p || b < a || b > 1000000000L)
                return -1;
            p = end;
        }
        if (n == capacity)
            return -1;
        ranges[n][0] = (int)a;
        ranges[n][1] = (int)b;
        n++;
        if (*p == ',')
            p++;
        else if (*p)
            return -1;
    }
    return n;
}

static int in_takes(int take, int ranges[][2], int n)
{
    for (int i = 0; i < n; i++)
        if (take >= ranges[i][0] && take <= ranges[i][1])
            return 1;
    return 0;
}

/* Whether `name` is one of the comma-separated names of `list`. */
static int in_list(const char *list, const char *name)
{
    if (!list || !name[0] || strcmp(list, "none") == 0)
        return 0;
    const size_t len = strlen(name);
    for (const char *p = list; *p;) {
        const char *comma = strchr(p, ',');
        const size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n == len && strncmp(p, name, len) == 0)
            return 1;
        if (!comma)
            break;
        p = comma + 1;
    }
    return 0;
}

int speech_check_data_opts(const char *cmd, const speech_data_opts *o)
{
    int ranges[64][2];
    if (parse_takes(o->test_takes, ranges, 64) < 0)
        return cli_usage(cmd, "--test-takes: '%s' is not a list of takes such as 0-4 or 0-4,9 "
                         "(or none)", o->test_takes);
    if (o->min_digits > o->max_digits)
        return cli_usage(cmd, "--min-digits (%d) is larger than --max-digits (%d)",
                         o->min_digits, o->max_digits);
    if (o->pause_min > o->pause_max)
        return cli_usage(cmd, "--pause-min (%g) is larger than --pause-max (%g)", o->pause_min,
                         o->pause_max);
    if (o->speed_min > o->speed_max)
        return cli_usage(cmd, "--speed-min (%g) is larger than --speed-max (%g)", o->speed_min,
                         o->speed_max);
    return CLI_OK;
}

int speech_select(const char *cmd, const recur_speech_list *list, const speech_data_opts *o,
                  const char *split, const char *speakers, size_t **indices, size_t *count)
{
    int ranges[64][2];
    const int nr = parse_takes(o->test_takes, ranges, 64);
    const size_t n = recur_speech_list_count(list);
    size_t *idx = malloc((n ? n : 1) * sizeof *idx);
    if (!idx)
        return cli_fail(cmd, "", "out of memory");
    size_t k = 0;
    const int want_test = strcmp(split, "test") == 0, all = strcmp(split, "all") == 0;
    const int filter = speakers && speakers[0] && strcmp(speakers, "none") != 0;
    for (size_t i = 0; i < n; i++) {
        const recur_speech_entry *e = recur_speech_list_at(list, i);
        const int test = (e->take >= 0 && in_takes(e->take, ranges, nr > 0 ? nr : 0)) ||
                         in_list(o->test_speakers, e->speaker);
        if (!all && test != want_test)
            continue;
        if (filter && !in_list(speakers, e->speaker))
            continue;
        idx[k++] = i;
    }
    if (k == 0) {
        free(idx);
        return cli_fail(cmd, "The split is chosen from FSDD file names (--test-takes, "
                        "--test-speakers); with a manifest of other names use --split all, or "
                        "check --speakers.", "no recording of %s is in the %s split%s%s",
                        o->data, split, filter ? " of speakers " : "", filter ? speakers : "");
    }
    *indices = idx;
    *count = k;
    return CLI_OK;
}

/* ---- recordings ------------------------------------------------------------------ */

void speech_clips_free(speech_clips *c)
{
    for (size_t i = 0; c->samples && i < c->count; i++)
        recur_free(c->samples[i]);
    free(c->samples);
    free(c->lengths);
    free(c->transcripts);
    free(c->paths);
    memset(c, 0, sizeof *c);
}

int speech_load_clips(const char *cmd, const recur_speech_list *list, const size_t *indices,
                      size_t count, int sample_rate, speech_clips *out)
{
    memset(out, 0, sizeof *out);
    out->samples = calloc(count ? count : 1, sizeof *out->samples);
    out->lengths = calloc(count ? count : 1, sizeof *out->lengths);
    out->transcripts = calloc(count ? count : 1, sizeof *out->transcripts);
    out->paths = calloc(count ? count : 1, sizeof *out->paths);
    if (!out->samples || !out->lengths || !out->transcripts || !out->paths) {
        speech_clips_free(out);
        return cli_fail(cmd, "", "out of memory");
    }
    out->count = count;
    for (size_t i = 0; i < count; i++) {
        const recur_speech_entry *e = recur_speech_list_at(list, indices[i]);
        out->paths[i] = e->path;
        out->transcripts[i] = e->transcript;
        size_t letters = 0;
        if (recur_utf8_decode(e->transcript, strlen(e->transcript), NULL, &letters) ==
                RECUR_OK && letters > 1)
            out->spaced = 1;
        if (recur_audio_read(e->path, sample_rate, &out->samples[i], &out->lengths[i], NULL)) {
            int rc = cli_fail(cmd, "Fix or remove the file (or its manifest line).", "%s",
                              recur_last_error());
            speech_clips_free(out);
            return rc;
        }
    }
    return CLI_OK;
}

/* splitmix64's finaliser. */
static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

uint64_t speech_seed(uint64_t base, int64_t epoch, int64_t index)
{
    return mix64(mix64(mix64(base) ^ (uint64_t)epoch) ^ (uint64_t)index);
}

static recur_speech_join_config join_config(const speech_data_opts *o, int sample_rate)
{
    recur_speech_join_config jc = recur_speech_join_config_default();
    jc.sample_rate = sample_rate;
    jc.pause_min_s = o->pause_min;
    jc.pause_max_s = o->pause_max;
    jc.edge_max_s = o->edge_max;
    jc.snr_db = o->snr_db > 0 ? o->snr_db : INFINITY;
    jc.speed_min = o->speed_min;
    jc.speed_max = o->speed_max;
    return jc;
}

int speech_make_augmented(const speech_clips *clips, size_t i, const speech_data_opts *o,
                          int sample_rate, uint64_t seed, float **samples, size_t *n)
{
    recur_rng rng;
    recur_rng_seed(&rng, seed);
    const float *part = clips->samples[i];
    const size_t length = clips->lengths[i];
    recur_speech_join_config jc = join_config(o, sample_rate);
    return recur_speech_join(&part, &length, 1, &jc, &rng, samples, n);
}

int speech_make_connected(const speech_clips *clips, const speech_data_opts *o,
                          int sample_rate, uint64_t seed, float **samples, size_t *n,
                          char **transcript)
{
    enum { MAX_CLIPS = 64 };
    recur_rng rng;
    recur_rng_seed(&rng, seed);
    const int k = o->min_digits + (int)recur_rng_below(&rng, (uint64_t)(o->max_digits -
                                                                           o->min_digits + 1));
    const float *parts[MAX_CLIPS];
    size_t lengths[MAX_CLIPS], text_len = 1;
    size_t chosen[MAX_CLIPS];
    const int spaced = clips->spaced;
    for (int i = 0; i < k; i++) {
        chosen[i] = (size_t)recur_rng_below(&rng, clips->count);
        parts[i] = clips->samples[chosen[i]];
        lengths[i] = clips->lengths[chosen[i]];
        text_len += strlen(clips->transcripts[chosen[i]]) + 1;
    }
    char *text = malloc(text_len);
    if (!text)
        return RECUR_E_NOMEM;
    text[0] = '\0';
    size_t at = 0;
    for (int i = 0; i < k; i++) {
        const char *t = clips->transcripts[chosen[i]];
        const size_t len = strlen(t);
        if (spaced && i > 0)
            text[at++] = ' ';
        memcpy(text + at, t, len + 1);
        at += len;
    }
    recur_speech_join_config jc = join_config(o, sample_rate);
    int status = recur_speech_join(parts, lengths, k, &jc, &rng, samples, n);
    if (status) {
        free(text);
        return status;
    }
    *transcript = text;
    return RECUR_OK;
}

/* ---- utterance sets ------------------------------------------------------------------ */

void speech_set_free(speech_set *set)
{
    for (int i = 0; i < set->count; i++) {
        recur_free(set->x[i]);
        recur_free(set->labels[i]);
        free(set->text[i]);
        free(set->name[i]);
    }
    free(set->x);
    free(set->T);
    free(set->labels);
    free(set->L);
    free(set->text);
    free(set->name);
    memset(set, 0, sizeof *set);
}

static int set_grow(speech_set *s)
{
    if (s->count < s->capacity)
        return 0;
    int cap = s->capacity ? 2 * s->capacity : 256;
    float **x = realloc(s->x, (size_t)cap * sizeof *x);
    if (x)
        s->x = x;
    int *T = realloc(s->T, (size_t)cap * sizeof *T);
    if (T)
        s->T = T;
    int32_t **labels = realloc(s->labels, (size_t)cap * sizeof *labels);
    if (labels)
        s->labels = labels;
    int *L = realloc(s->L, (size_t)cap * sizeof *L);
    if (L)
        s->L = L;
    char **text = realloc(s->text, (size_t)cap * sizeof *text);
    if (text)
        s->text = text;
    char **name = realloc(s->name, (size_t)cap * sizeof *name);
    if (name)
        s->name = name;
    if (!x || !T || !labels || !L || !text || !name)
        return -1;
    s->capacity = cap;
    return 0;
}

int speech_set_add(speech_set *set, recur_speech *model, const float *samples, size_t n,
                   const char *transcript, const char *name)
{
    if (set_grow(set))
        return RECUR_E_NOMEM;
    float *x = NULL;
    int T = 0;
    int status = recur_speech_featurize(model, samples, n, &x, &T);
    if (status)
        return status;
    int32_t *ids = NULL;
    size_t count = 0;
    const recur_vocab *alphabet = recur_speech_alphabet(model);
    if ((status = recur_vocab_encode(alphabet, transcript, strlen(transcript), &ids, &count))) {
        recur_free(x);
        return status;
    }
    const int i = set->count;
    set->x[i] = x;
    set->T[i] = T;
    set->labels[i] = ids;
    set->L[i] = (int)count;
    set->text[i] = strdup(transcript);
    set->name[i] = strdup(name);
    set->count++;
    return set->text[i] && set->name[i] ? RECUR_OK : RECUR_E_NOMEM;
}

int speech_set_fail(const char *cmd, int status, const char *name, const char *transcript)
{
    if (status == RECUR_E_NOMEM)
        return cli_fail(cmd, "", "out of memory featurizing %s", name);
    if (status == RECUR_E_NOT_FOUND || status == RECUR_E_FORMAT)
        return cli_fail(cmd, "The model can only write the letters it was trained on.",
                        "%s: transcript '%s': %s", name, transcript, recur_last_error());
    return cli_fail(cmd, "", "%s: %s", name, recur_last_error());
}

/* ---- batches ------------------------------------------------------------------------ */

void speech_batch_buf_free(speech_batch_buf *buf)
{
    free(buf->x);
    free(buf->lengths);
    free(buf->labels);
    free(buf->label_lengths);
    memset(buf, 0, sizeof *buf);
}

int speech_batch_fill(speech_batch_buf *buf, const speech_set *set, const int *idx, int B, int F)
{
    int T = 1, S = 0;
    for (int b = 0; b < B; b++) {
        T = set->T[idx[b]] > T ? set->T[idx[b]] : T;
        S = set->L[idx[b]] > S ? set->L[idx[b]] : S;
    }
    const size_t xs = (size_t)T * (size_t)B * (size_t)F, ls = (size_t)B * (size_t)(S ? S : 1);
    if (xs > buf->x_cap) {
        free(buf->x);
        buf->x = malloc(xs * sizeof *buf->x);
        buf->x_cap = buf->x ? xs : 0;
    }
    if (ls > buf->label_cap) {
        free(buf->labels);
        buf->labels = malloc(ls * sizeof *buf->labels);
        buf->label_cap = buf->labels ? ls : 0;
    }
    if (B > buf->B_cap) {
        free(buf->lengths);
        free(buf->label_lengths);
        buf->lengths = malloc((size_t)B * sizeof *buf->lengths);
        buf->label_lengths = malloc((size_t)B * sizeof *buf->label_lengths);
        buf->B_cap = buf->lengths && buf->label_lengths ? B : 0;
    }
    if (!buf->x || !buf->labels || !buf->lengths || !buf->label_lengths)
        return RECUR_E_NOMEM;
    memset(buf->x, 0, xs * sizeof *buf->x);
    memset(buf->labels, 0, ls * sizeof *buf->labels);
    for (int b = 0; b < B; b++) {
        const int i = idx[b];
        for (int t = 0; t < set->T[i]; t++)
            memcpy(buf->x + ((size_t)t * B + b) * F, set->x[i] + (size_t)t * F,
                   (size_t)F * sizeof *buf->x);
        buf->lengths[b] = set->T[i];
        buf->label_lengths[b] = set->L[i];
        if (set->L[i])
            memcpy(buf->labels + (size_t)b * S, set->labels[i], (size_t)set->L[i] * sizeof(int32_t));
    }
    buf->batch = (recur_speech_batch){T, B, buf->x, buf->lengths, buf->labels, S,
                                      buf->label_lengths};
    return RECUR_OK;
}

/* ---- scoring ---------------------------------------------------------------------- */

int speech_score_set(recur_speech *model, const speech_set *set, int batch, int beam_width,
                     int want_loss, speech_scores *scores, FILE *errors)
{
    const int F = recur_speech_feature_dim(model), C = recur_speech_num_classes(model);
    const int spaced = recur_vocab_lookup(recur_speech_alphabet(model), ' ') >= 0;
    speech_batch_buf buf;
    memset(&buf, 0, sizeof buf);
    int *idx = malloc((size_t)batch * sizeof *idx);
    int32_t *out_lengths = malloc((size_t)batch * sizeof *out_lengths);
    double *losses = malloc((size_t)batch * sizeof *losses);
    float *logits = NULL;
    int32_t *targets = NULL;
    size_t logits_cap = 0, targets_cap = 0;
    int status = idx && out_lengths && losses ? RECUR_OK : RECUR_E_NOMEM;
    for (int start = 0; status == RECUR_OK && start < set->count; start += batch) {
        const int B = set->count - start < batch ? set->count - start : batch;
        for (int b = 0; b < B; b++)
            idx[b] = start + b;
        if ((status = speech_batch_fill(&buf, set, idx, B, F)))
            break;
        const recur_speech_batch *bt = &buf.batch;
        const int Tp = recur_speech_output_frames(model, bt->T);
        const size_t need = (size_t)Tp * (size_t)B * (size_t)C;
        if (need > logits_cap) {
            free(logits);
            logits = malloc(need * sizeof *logits);
            logits_cap = logits ? need : 0;
            if (!logits) {
                status = RECUR_E_NOMEM;
                break;
            }
        }
        if ((status = recur_speech_logits(model, bt->x, bt->T, B, bt->lengths, logits,
                                          out_lengths)))
            break;
        if (want_loss) {
            const size_t tn = (size_t)B * (size_t)(bt->S ? bt->S : 1);
            if (tn > targets_cap) {
                free(targets);
                targets = malloc(tn * sizeof *targets);
                targets_cap = targets ? tn : 0;
                if (!targets) {
                    status = RECUR_E_NOMEM;
                    break;
                }
            }
            for (size_t i = 0; i < (size_t)B * (size_t)bt->S; i++)
                targets[i] = bt->labels[i] + 1; /* class 0 is the blank */
            recur_ctc_config cc = recur_ctc_config_default();
            if ((status = recur_ctc_loss(logits, Tp, B, C, bt->S ? targets : NULL, bt->S,
                                         out_lengths, bt->label_lengths, &cc, losses, NULL)))
                break;
            for (int b = 0; b < B; b++)
                if (isfinite(losses[b])) {
                    scores->loss_sum += losses[b];
                    scores->loss_count++;
                }
        }
        for (int b = 0; b < B && status == RECUR_OK; b++) {
            char *hyp = NULL;
            const int i = start + b;
            status = recur_speech_decode(model, logits + (size_t)b * C, out_lengths[b],
                                         (size_t)B * (size_t)C, beam_width, &hyp);
            if (status)
                break;
            scores->utterances++;
            const int same = strcmp(hyp, set->text[i]) == 0;
            scores->exact += same;
            recur_error_rate_add_chars(&scores->labels, set->text[i], hyp);
            if (spaced)
                recur_error_rate_add_words(&scores->words, set->text[i], hyp);
            if (!same && errors)
                fprintf(errors, "%s\t%s\t%s\n", set->name[i], set->text[i], hyp);
            recur_free(hyp);
        }
    }
    if (!spaced)
        scores->words = scores->labels; /* one letter (digit) is one word */
    speech_batch_buf_free(&buf);
    free(idx);
    free(out_lengths);
    free(losses);
    free(logits);
    free(targets);
    return status;
}
