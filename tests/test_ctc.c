/* test_ctc.c - the CTC loss (value against brute-force path enumeration,
 * gradient by central differences, impossible alignments, input
 * validation), greedy and prefix-beam-search decoding, edit distance and
 * error rates. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "recur/ctc.h"

#define MAX_T 8
#define MAX_C 5

/* Collapses a path: repeats merged, blanks dropped. */
static int collapse(const int *path, int T, int blank, int *out)
{
    int n = 0, previous = -1;
    for (int t = 0; t < T; t++) {
        if (path[t] != blank && path[t] != previous)
            out[n++] = path[t];
        previous = path[t];
    }
    return n;
}

/* lp[t][c] = log_softmax of frame t of item b of a [T, B, C] array. */
static void log_softmax_frames(const float *logits, int B, int C, int b, int T,
                               double lp[MAX_T][MAX_C])
{
    for (int t = 0; t < T; t++) {
        const float *row = logits + ((size_t)t * B + b) * C;
        double max = row[0], sum = 0.0;
        for (int c = 1; c < C; c++)
            if (row[c] > max)
                max = row[c];
        for (int c = 0; c < C; c++)
            sum += exp(row[c] - max);
        for (int c = 0; c < C; c++)
            lp[t][c] = row[c] - max - log(sum);
    }
}

/* -log of the total probability of the paths of length T that collapse to
 * target, by enumerating all C^T paths. */
static double brute_force_nll(double lp[MAX_T][MAX_C], int T, int C, const int32_t *target, int S,
                              int blank)
{
    int path[MAX_T] = {0}, labels[MAX_T];
    double p = 0.0;
    for (;;) {
        int n = collapse(path, T, blank, labels);
        int same = n == S;
        for (int s = 0; same && s < S; s++)
            same = labels[s] == target[s];
        if (same) {
            double lpath = 0.0;
            for (int t = 0; t < T; t++)
                lpath += lp[t][path[t]];
            p += exp(lpath);
        }
        int t = 0;
        while (t < T && ++path[t] == C)
            path[t++] = 0;
        if (t == T)
            break;
    }
    return -log(p);
}

/* Logits in [-2, 2) on a grid of 2^-8, so x +- 2^-10 is exact in float. */
static void fill_grid(float *x, size_t n, unsigned *seed)
{
    for (size_t i = 0; i < n; i++) {
        *seed = *seed * 1103515245u + 12345u;
        x[i] = (float)((int)((*seed >> 16) % 1024) - 512) / 256.0f;
    }
}

static double sum_losses(const float *logits, int T, int B, int C, const int32_t *targets, int S,
                         const int32_t *il, const int32_t *tl, const recur_ctc_config *config)
{
    double losses[8], sum = 0.0;
    if (recur_ctc_loss(logits, T, B, C, targets, S, il, tl, config, losses, NULL) != RECUR_OK)
        return NAN;
    for (int b = 0; b < B; b++)
        sum += losses[b];
    return sum;
}

/* Three items of different lengths, with repeated labels ("1 1 2" needs a
 * blank between the 1s, "3 3" likewise). */
static void test_loss_and_gradient(void)
{
    enum { T = 6, B = 3, C = 4, S = 3 };
    const int32_t targets[B * S] = {1, 1, 2, /**/ 2, 0, 0, /**/ 3, 3, 0};
    const int32_t input_lengths[B] = {6, 4, 5};
    const int32_t target_lengths[B] = {3, 1, 2};
    float logits[T * B * C], dlogits[T * B * C];
    unsigned seed = 7;
    fill_grid(logits, T * B * C, &seed);
    /* Frames past an input length must not be read: poison them. */
    for (int b = 0; b < B; b++)
        for (int t = input_lengths[b]; t < T; t++)
            for (int c = 0; c < C; c++)
                logits[(t * B + b) * C + c] = NAN;

    double losses[B];
    recur_ctc_config config = recur_ctc_config_default();
    CHECK_OK(recur_ctc_loss(logits, T, B, C, targets, S, input_lengths, target_lengths, &config,
                            losses, dlogits));
    for (int b = 0; b < B; b++) {
        double lp[MAX_T][MAX_C];
        log_softmax_frames(logits, B, C, b, input_lengths[b], lp);
        double want =
            brute_force_nll(lp, input_lengths[b], C, targets + b * S, target_lengths[b], 0);
        CHECK_NEAR(losses[b], want, 1e-12 * fabs(want) + 1e-12);
    }

    /* Central differences on every logit inside the lengths. */
    const float h = 1.0f / 1024.0f;
    double worst = 0.0;
    for (int t = 0; t < T; t++)
        for (int b = 0; b < B; b++)
            for (int c = 0; c < C; c++) {
                size_t i = ((size_t)t * B + b) * C + c;
                if (t >= input_lengths[b]) {
                    CHECK(dlogits[i] == 0.0f);
                    continue;
                }
                float x = logits[i];
                logits[i] = x + h;
                double up =
                    sum_losses(logits, T, B, C, targets, S, input_lengths, target_lengths, &config);
                logits[i] = x - h;
                double down =
                    sum_losses(logits, T, B, C, targets, S, input_lengths, target_lengths, &config);
                logits[i] = x;
                double numeric = (up - down) / (2.0 * h);
                double err = fabs(numeric - dlogits[i]);
                if (err > worst)
                    worst = err;
                CHECK_NEAR(dlogits[i], numeric, 2e-6);
            }
    CHECK_MSG(worst > 0.0 && worst < 2e-6, "worst gradient error %g", worst);

    /* Each frame's gradient sums to 0 (softmax minus a distribution). */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < input_lengths[b]; t++) {
            double s = 0.0;
            for (int c = 0; c < C; c++)
                s += dlogits[(t * B + b) * C + c];
            CHECK_NEAR(s, 0.0, 1e-6);
        }

    /* A non-zero blank id: relabel so that class 2 is the blank. */
    const int32_t targets2[B * S] = {1, 1, 0, /**/ 0, 0, 0, /**/ 3, 3, 0};
    config.blank = 2;
    CHECK_OK(recur_ctc_loss(logits, T, B, C, targets2, S, input_lengths, target_lengths, &config,
                            losses, dlogits));
    for (int b = 0; b < B; b++) {
        double lp[MAX_T][MAX_C];
        log_softmax_frames(logits, B, C, b, input_lengths[b], lp);
        double want =
            brute_force_nll(lp, input_lengths[b], C, targets2 + b * S, target_lengths[b], 2);
        CHECK_NEAR(losses[b], want, 1e-12 * fabs(want) + 1e-12);
    }
    for (int t = 0; t < input_lengths[2]; t++)
        for (int c = 0; c < C; c++) {
            size_t i = ((size_t)t * B + 2) * C + c;
            float x = logits[i];
            logits[i] = x + h;
            double up =
                sum_losses(logits, T, B, C, targets2, S, input_lengths, target_lengths, &config);
            logits[i] = x - h;
            double down =
                sum_losses(logits, T, B, C, targets2, S, input_lengths, target_lengths, &config);
            logits[i] = x;
            CHECK_NEAR(dlogits[i], (up - down) / (2.0 * h), 2e-6);
        }
}

/* Empty targets and an empty input: the loss is -sum_t log p(blank), and 0
 * for no frames at all. */
static void test_empty_target(void)
{
    enum { T = 3, B = 2, C = 3 };
    float logits[T * B * C];
    unsigned seed = 3;
    fill_grid(logits, T * B * C, &seed);
    const int32_t input_lengths[B] = {3, 0}, target_lengths[B] = {0, 0};
    double losses[B];
    float dlogits[T * B * C];
    CHECK_OK(recur_ctc_loss(logits, T, B, C, NULL, 0, input_lengths, target_lengths, NULL, losses,
                            dlogits));
    double lp[MAX_T][MAX_C], want = 0.0;
    log_softmax_frames(logits, B, C, 0, T, lp);
    for (int t = 0; t < T; t++)
        want -= lp[t][0];
    CHECK_NEAR(losses[0], want, 1e-12);
    CHECK(losses[1] == 0.0);
    for (int t = 0; t < T; t++) {
        /* d/dlogit = softmax - onehot(blank) */
        CHECK_NEAR(dlogits[(t * B) * C + 0], exp(lp[t][0]) - 1.0, 1e-7);
        CHECK_NEAR(dlogits[(t * B) * C + 1], exp(lp[t][1]), 1e-7);
        CHECK(dlogits[(t * B + 1) * C + 0] == 0.0f);
    }
}

/* "1 1" in 2 frames needs a blank between the 1s: no alignment exists. */
static void test_impossible(void)
{
    enum { T = 2, B = 2, C = 3, S = 2 };
    const int32_t targets[B * S] = {1, 1, /**/ 2, 1};
    const int32_t input_lengths[B] = {2, 2}, target_lengths[B] = {2, 2};
    float logits[T * B * C], dlogits[T * B * C];
    unsigned seed = 11;
    fill_grid(logits, T * B * C, &seed);
    double losses[B];
    recur_ctc_config config = recur_ctc_config_default();
    CHECK_OK(recur_ctc_loss(logits, T, B, C, targets, S, input_lengths, target_lengths, &config,
                            losses, dlogits));
    CHECK(isinf(losses[0]) && losses[0] > 0);
    CHECK(isfinite(losses[1]));
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++)
            CHECK(dlogits[(t * B) * C + c] == 0.0f);

    /* Item 1 alone gives the same loss and gradient as inside the batch. */
    float alone[T * C], dalone[T * C];
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++)
            alone[t * C + c] = logits[(t * B + 1) * C + c];
    double loss_alone;
    CHECK_OK(recur_ctc_loss(alone, T, 1, C, targets + S, S, input_lengths, target_lengths, NULL,
                            &loss_alone, dalone));
    CHECK_NEAR(losses[1], loss_alone, 0.0);
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++)
            CHECK_NEAR(dlogits[(t * B + 1) * C + c], dalone[t * C + c], 0.0);
    /* Exact value: the only path is "2 1". */
    double lp[MAX_T][MAX_C];
    log_softmax_frames(logits, B, C, 1, T, lp);
    CHECK_NEAR(losses[1], -(lp[0][2] + lp[1][1]), 1e-12);

    config.zero_infinity = 1;
    for (size_t i = 0; i < T * B * C; i++)
        dlogits[i] = 99.0f;
    CHECK_OK(recur_ctc_loss(logits, T, B, C, targets, S, input_lengths, target_lengths, &config,
                            losses, dlogits));
    CHECK(losses[0] == 0.0);
    CHECK_NEAR(losses[1], loss_alone, 0.0);
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++)
            CHECK(dlogits[(t * B) * C + c] == 0.0f);
}

static void test_invalid(void)
{
    enum { T = 4, B = 2, C = 4, S = 2 };
    float logits[T * B * C] = {0};
    double losses[B] = {-7.0, -7.0};
    int32_t targets[B * S] = {1, 2, 3, 1};
    int32_t il[B] = {4, 3}, tl[B] = {2, 2};
    recur_ctc_config config = recur_ctc_config_default();
#define CTC_CALL() recur_ctc_loss(logits, T, B, C, targets, S, il, tl, &config, losses, NULL)
    CHECK_OK(CTC_CALL());

    targets[3] = 4; /* >= C */
    CHECK_STATUS(CTC_CALL(), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("batch item 1");
    CHECK_ERROR_MENTIONS("targets[1][1] = 4");
    targets[3] = -1;
    CHECK_STATUS(CTC_CALL(), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("targets[1][1] = -1");
    targets[3] = 0; /* the blank */
    CHECK_STATUS(CTC_CALL(), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("blank");
    CHECK_ERROR_MENTIONS("batch item 1");
    targets[3] = 1;

    il[0] = 5; /* > T */
    CHECK_STATUS(CTC_CALL(), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("input_lengths[0] = 5");
    il[0] = -1;
    CHECK_STATUS(CTC_CALL(), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("input_lengths[0] = -1");
    il[0] = 4;

    tl[1] = 3; /* > S */
    CHECK_STATUS(CTC_CALL(), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("target_lengths[1] = 3");
    tl[1] = -2;
    CHECK_STATUS(CTC_CALL(), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("target_lengths[1] = -2");
    tl[1] = 2;

    il[1] = 1; /* target longer than input */
    CHECK_STATUS(CTC_CALL(), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("batch item 1");
    CHECK_ERROR_MENTIONS("exceeds input_lengths[1] = 1");
    il[1] = 3;

    config.blank = 4;
    CHECK_STATUS(CTC_CALL(), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("blank id 4");
    config.blank = 0;

    /* Nothing was written by the rejected calls. */
    CHECK(losses[0] != -7.0); /* from the first, valid call */
    losses[0] = losses[1] = -7.0;
    tl[0] = 3;
    CHECK_STATUS(CTC_CALL(), RECUR_E_INVALID);
    CHECK(losses[0] == -7.0 && losses[1] == -7.0);
    tl[0] = 2;

    CHECK_STATUS(recur_ctc_loss(NULL, T, B, C, targets, S, il, tl, &config, losses, NULL),
                 RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("logits");
    CHECK_STATUS(recur_ctc_loss(logits, T, B, C, NULL, S, il, tl, &config, losses, NULL),
                 RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("targets");
    CHECK_STATUS(recur_ctc_loss(logits, T, B, C, targets, S, NULL, tl, &config, losses, NULL),
                 RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("input_lengths");
    CHECK_STATUS(recur_ctc_loss(logits, T, B, 0, targets, S, il, tl, &config, losses, NULL),
                 RECUR_E_INVALID);
    CHECK_STATUS(recur_ctc_loss(logits, -1, B, C, targets, S, il, tl, &config, losses, NULL),
                 RECUR_E_INVALID);

    logits[(2 * B + 1) * C + 3] = NAN;
    CHECK_STATUS(CTC_CALL(), RECUR_E_NUMERIC);
    CHECK_ERROR_MENTIONS("logits[2][1][3]");
    il[1] = 2; /* the NaN is now past item 1's length: not read */
    CHECK_OK(CTC_CALL());
#undef CTC_CALL
}

/* ---- Decoding -------------------------------------------------------- */

/* Frames whose argmax is path[t] (probability ~0.9 there). */
static void peaky_log_probs(const int *path, int T, int C, float *out)
{
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++)
            out[t * C + c] = (float)log(c == path[t] ? 0.9 : 0.1 / (C - 1));
}

static void test_greedy(void)
{
    enum { T = 6, C = 3 };
    const int path[T] = {1, 1, 0, 1, 2, 2}; /* a a _ a b b */
    float lp[T * C];
    peaky_log_probs(path, T, C, lp);
    int labels[T], n = -1;
    CHECK_OK(recur_ctc_greedy_decode(lp, T, C, C, 0, labels, T, &n));
    CHECK(n == 3);
    CHECK(n == 3 && labels[0] == 1 && labels[1] == 1 && labels[2] == 2);

    /* As item 1 of a [T, 2, C] batch, through the stride. */
    float batch[T * 2 * C];
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++) {
            batch[(t * 2 + 0) * C + c] = c == 0 ? 5.0f : 0.0f;
            batch[(t * 2 + 1) * C + c] = lp[t * C + c];
        }
    n = -1;
    CHECK_OK(recur_ctc_greedy_decode(batch + C, T, C, 2 * C, 0, labels, T, &n));
    CHECK(n == 3 && labels[0] == 1 && labels[1] == 1 && labels[2] == 2);
    CHECK_OK(recur_ctc_greedy_decode(batch, T, C, 2 * C, 0, labels, T, &n));
    CHECK(n == 0);

    /* Blank = 2: the same frames read "1 1 0 1" -> labels 1 0 1 (the
     * 1s before 0 collapse). */
    CHECK_OK(recur_ctc_greedy_decode(lp, T, C, C, 2, labels, T, &n));
    CHECK(n == 3 && labels[0] == 1 && labels[1] == 0 && labels[2] == 1);

    /* Too small a buffer: the prefix is written and the full count given. */
    labels[2] = -5;
    CHECK_STATUS(recur_ctc_greedy_decode(lp, T, C, C, 0, labels, 2, &n), RECUR_E_SHAPE);
    CHECK(n == 3 && labels[0] == 1 && labels[1] == 1 && labels[2] == -5);

    CHECK_STATUS(recur_ctc_greedy_decode(lp, T, C, C - 1, 0, labels, T, &n), RECUR_E_INVALID);
    CHECK_STATUS(recur_ctc_greedy_decode(lp, T, C, C, 3, labels, T, &n), RECUR_E_INVALID);
    CHECK_STATUS(recur_ctc_greedy_decode(lp, T, C, C, 0, labels, T, NULL), RECUR_E_INVALID);
    lp[4 * C + 1] = NAN;
    CHECK_STATUS(recur_ctc_greedy_decode(lp, T, C, C, 0, labels, T, &n), RECUR_E_NUMERIC);
    CHECK_ERROR_MENTIONS("[4][1]");
    CHECK_OK(recur_ctc_greedy_decode(lp, 0, C, C, 0, NULL, 0, &n));
    CHECK(n == 0);
}

/* The classic case: two frames with p(blank) = 0.6, p(a) = 0.4. The best
 * path is "_ _" (0.36), so greedy gives "", but the labelling "a" has
 * p = p(aa) + p(a_) + p(_a) = 0.16 + 0.24 + 0.24 = 0.64 > 0.36. */
static void test_beam_beats_greedy(void)
{
    enum { T = 2, C = 2 };
    float lp[T * C] = {(float)log(0.6), (float)log(0.4), (float)log(0.6), (float)log(0.4)};
    int labels[T], n = -1;
    CHECK_OK(recur_ctc_greedy_decode(lp, T, C, C, 0, labels, T, &n));
    CHECK(n == 0);

    recur_ctc_beam_config config = recur_ctc_beam_config_default();
    config.scores = RECUR_CTC_SCORES_LOG_PROBS;
    config.beam_width = 2;
    double log_prob = 0.0;
    CHECK_OK(recur_ctc_beam_decode(lp, T, C, C, &config, labels, T, &n, &log_prob));
    CHECK(n == 1 && labels[0] == 1);
    CHECK_NEAR(log_prob, log(0.64), 1e-6);

    /* The same scores read as logits (log_softmax leaves them unchanged). */
    config.scores = RECUR_CTC_SCORES_LOGITS;
    CHECK_OK(recur_ctc_beam_decode(lp, T, C, C, &config, labels, T, &n, &log_prob));
    CHECK(n == 1 && labels[0] == 1);
    CHECK_NEAR(log_prob, log(0.64), 1e-6);

    /* Width 1 keeps only "" after frame 0 (0.6 > 0.4), and ends with "":
     * p("") = 0.36 against the 0.24 that "a" collects from "" alone. */
    config.beam_width = 1;
    CHECK_OK(recur_ctc_beam_decode(lp, T, C, C, &config, labels, T, &n, &log_prob));
    CHECK(n == 0);
    CHECK_NEAR(log_prob, log(0.36), 1e-6);
}

/* Width 1 (and wider) equals greedy on peaky posteriors. */
static void test_beam_peaky(void)
{
    enum { T = 8, C = 4 };
    unsigned seed = 5;
    for (int trial = 0; trial < 20; trial++) {
        int path[T];
        for (int t = 0; t < T; t++) {
            seed = seed * 1103515245u + 12345u;
            path[t] = (int)((seed >> 16) % C);
        }
        float lp[T * C];
        peaky_log_probs(path, T, C, lp);
        int greedy[T], beam[T], ng = -1, nb = -1;
        CHECK_OK(recur_ctc_greedy_decode(lp, T, C, C, 0, greedy, T, &ng));
        for (int width = 1; width <= 8; width *= 8) {
            recur_ctc_beam_config config = recur_ctc_beam_config_default();
            config.beam_width = width;
            config.scores = RECUR_CTC_SCORES_LOG_PROBS;
            CHECK_OK(recur_ctc_beam_decode(lp, T, C, C, &config, beam, T, &nb, NULL));
            int same = ng == nb;
            for (int k = 0; same && k < ng; k++)
                same = greedy[k] == beam[k];
            CHECK_MSG(same, "trial %d width %d: greedy %d labels, beam %d", trial, width, ng, nb);
        }
    }
}

/* A beam wide enough never to prune finds the most probable labelling
 * (by enumerating all paths) and its exact probability (the CTC loss). */
static void test_beam_exact(void)
{
    enum { T = 5, C = 3 };
    unsigned seed = 21;
    for (int trial = 0; trial < 5; trial++) {
        float logits[T * C];
        fill_grid(logits, T * C, &seed);
        double lp[MAX_T][MAX_C];
        log_softmax_frames(logits, 1, C, 0, T, lp);
        /* Best labelling by brute force: the labellings of length <= 5 over
         * labels {1, 2} are numbered by their collapse; accumulate each. */
        int labelling[64][T], lengths[64], n_labellings = 0;
        double prob[64] = {0};
        int path[T] = {0};
        for (;;) {
            int out[T], n = collapse(path, T, 0, out), k;
            for (k = 0; k < n_labellings; k++) {
                int same = lengths[k] == n;
                for (int s = 0; same && s < n; s++)
                    same = labelling[k][s] == out[s];
                if (same)
                    break;
            }
            if (k == n_labellings) {
                lengths[k] = n;
                for (int s = 0; s < n; s++)
                    labelling[k][s] = out[s];
                n_labellings++;
            }
            double l = 0.0;
            for (int t = 0; t < T; t++)
                l += lp[t][path[t]];
            prob[k] += exp(l);
            int t = 0;
            while (t < T && ++path[t] == C)
                path[t++] = 0;
            if (t == T)
                break;
        }
        int best = 0;
        for (int k = 1; k < n_labellings; k++)
            if (prob[k] > prob[best])
                best = k;

        recur_ctc_beam_config config = recur_ctc_beam_config_default();
        config.beam_width = 64;
        int labels[T], n = -1;
        double log_prob = 0.0;
        CHECK_OK(recur_ctc_beam_decode(logits, T, C, C, &config, labels, T, &n, &log_prob));
        int same = n == lengths[best];
        for (int s = 0; same && s < n; s++)
            same = labels[s] == labelling[best][s];
        CHECK_MSG(same, "trial %d: beam found a labelling of %d, best has %d", trial, n,
                  lengths[best]);
        CHECK_NEAR(log_prob, log(prob[best]), 1e-6);
        /* And the loss of that labelling agrees. */
        int32_t target[T], il = T, tl = n;
        for (int s = 0; s < n; s++)
            target[s] = labels[s];
        double loss = 0.0;
        CHECK_OK(recur_ctc_loss(logits, T, 1, C, target, T, &il, &tl, NULL, &loss, NULL));
        CHECK_NEAR(-loss, log_prob, 1e-6);
    }
}

/* A plain prefix beam search that keeps each prefix as an explicit array
 * and merges candidates by comparing contents: the reference the trie-based
 * search must agree with, pruning and tie-breaking included (the grid
 * logits make exact ties between prefixes happen). */
typedef struct ref_prefix {
    int labels[MAX_T], length;
    double blank_lp, nonblank_lp;
} ref_prefix;

static double log_add(double a, double b)
{
    if (a == -INFINITY)
        return b;
    if (b == -INFINITY)
        return a;
    return a > b ? a + log1p(exp(b - a)) : b + log1p(exp(a - b));
}

/* The entry of set holding prefix (labels, length), added when absent. */
static ref_prefix *ref_find(ref_prefix *set, int *n, const int *labels, int length)
{
    for (int k = 0; k < *n; k++) {
        int same = set[k].length == length;
        for (int s = 0; same && s < length; s++)
            same = set[k].labels[s] == labels[s];
        if (same)
            return &set[k];
    }
    ref_prefix *p = &set[(*n)++];
    for (int s = 0; s < length; s++)
        p->labels[s] = labels[s];
    p->length = length;
    p->blank_lp = p->nonblank_lp = -INFINITY;
    return p;
}

static double reference_beam(double lp[MAX_T][MAX_C], int T, int C, int blank, int width,
                             ref_prefix *best)
{
    ref_prefix beams[64], next[64];
    int n_beams = 1;
    beams[0].length = 0;
    beams[0].blank_lp = 0.0;
    beams[0].nonblank_lp = -INFINITY;
    for (int t = 0; t < T; t++) {
        /* Candidates in the order that breaks ties: the beams themselves,
         * then their extensions by beam rank and label. */
        int n_next = 0;
        for (int i = 0; i < n_beams; i++) {
            const ref_prefix *b = &beams[i];
            double total = log_add(b->blank_lp, b->nonblank_lp);
            int last = b->length ? b->labels[b->length - 1] : -1;
            ref_prefix *same = ref_find(next, &n_next, b->labels, b->length);
            same->blank_lp = total + lp[t][blank];
            if (last >= 0)
                same->nonblank_lp = b->nonblank_lp + lp[t][last];
        }
        for (int i = 0; i < n_beams; i++) {
            const ref_prefix *b = &beams[i];
            double total = log_add(b->blank_lp, b->nonblank_lp);
            int last = b->length ? b->labels[b->length - 1] : -1;
            for (int c = 0; c < C; c++) {
                if (c == blank)
                    continue;
                int extended[MAX_T];
                for (int s = 0; s < b->length; s++)
                    extended[s] = b->labels[s];
                extended[b->length] = c;
                ref_prefix *e = ref_find(next, &n_next, extended, b->length + 1);
                e->nonblank_lp =
                    log_add(e->nonblank_lp, (c == last ? b->blank_lp : total) + lp[t][c]);
            }
        }
        /* Keep the `width` most probable (selection, first found wins ties). */
        n_beams = 0;
        while (n_beams < width) {
            int pick = -1;
            double pick_total = -INFINITY;
            for (int k = 0; k < n_next; k++) {
                double total = log_add(next[k].blank_lp, next[k].nonblank_lp);
                if (next[k].length >= 0 && total > pick_total) {
                    pick = k;
                    pick_total = total;
                }
            }
            if (pick < 0)
                break;
            beams[n_beams++] = next[pick];
            next[pick].length = -1; /* taken */
        }
    }
    *best = beams[0];
    return log_add(beams[0].blank_lp, beams[0].nonblank_lp);
}

/* Narrow beams prune; the result must still match the reference search
 * (400 cases: enough to meet a prefix that leaves the beam and comes back
 * while its extension stayed, where one node per prefix matters). Both
 * read the same float log-probabilities, so that exact ties (which the grid
 * logits produce) are exact in both and must be broken the same way. */
static void test_beam_reference(void)
{
    enum { T = 7, C = 4 };
    unsigned seed = 99;
    int mismatches = 0;
    for (int trial = 0; trial < 400; trial++) {
        float logits[T * C], log_probs[T * C];
        fill_grid(logits, T * C, &seed);
        for (int i = 0; i < T * C; i++)
            logits[i] *= (float)(1 + trial % 3); /* sharper posteriors too */
        double lp[MAX_T][MAX_C];
        log_softmax_frames(logits, 1, C, 0, T, lp);
        for (int t = 0; t < T; t++)
            for (int c = 0; c < C; c++) {
                log_probs[t * C + c] = (float)lp[t][c];
                lp[t][c] = log_probs[t * C + c];
            }
        for (int width = 1; width <= 4; width++) {
            ref_prefix want;
            double want_lp = reference_beam(lp, T, C, 0, width, &want);
            recur_ctc_beam_config config = recur_ctc_beam_config_default();
            config.beam_width = width;
            config.scores = RECUR_CTC_SCORES_LOG_PROBS;
            int labels[T], n = -1;
            double got_lp = 0.0;
            CHECK_OK(recur_ctc_beam_decode(log_probs, T, C, C, &config, labels, T, &n, &got_lp));
            int same = n == want.length && got_lp == want_lp;
            for (int s = 0; same && s < n; s++)
                same = labels[s] == want.labels[s];
            if (!same && mismatches++ < 5)
                fprintf(stderr, "trial %d width %d: %d labels, log p %.17g; reference %d, %.17g\n",
                        trial, width, n, got_lp, want.length, want_lp);
        }
    }
    CHECK_MSG(mismatches == 0, "%d beam searches differ from the reference", mismatches);
}

static void test_beam_invalid(void)
{
    float lp[4] = {0};
    int labels[2], n;
    recur_ctc_beam_config config = recur_ctc_beam_config_default();
    config.beam_width = 0;
    CHECK_STATUS(recur_ctc_beam_decode(lp, 2, 2, 2, &config, labels, 2, &n, NULL), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("beam_width");
    config = recur_ctc_beam_config_default();
    config.blank = 2;
    CHECK_STATUS(recur_ctc_beam_decode(lp, 2, 2, 2, &config, labels, 2, &n, NULL), RECUR_E_INVALID);
    lp[1] = INFINITY;
    CHECK_STATUS(recur_ctc_beam_decode(lp, 2, 2, 2, NULL, labels, 2, &n, NULL), RECUR_E_NUMERIC);
    double log_prob = -1.0;
    CHECK_OK(recur_ctc_beam_decode(NULL, 0, 2, 2, NULL, NULL, 0, &n, &log_prob));
    CHECK(n == 0 && log_prob == 0.0);
}

/* ---- Edit distance and error rates ----------------------------------- */

static int distance_of(const char *a, const char *b)
{
    int x[64], y[64], na = 0, nb = 0;
    for (; a[na]; na++)
        x[na] = (unsigned char)a[na];
    for (; b[nb]; nb++)
        y[nb] = (unsigned char)b[nb];
    return recur_edit_distance(x, na, y, nb);
}

static void test_edit_distance(void)
{
    CHECK(distance_of("kitten", "sitting") == 3);
    CHECK(distance_of("sitting", "kitten") == 3);
    CHECK(distance_of("flaw", "lawn") == 2);
    CHECK(distance_of("", "") == 0);
    CHECK(distance_of("", "abc") == 3);
    CHECK(distance_of("abc", "") == 3);
    CHECK(distance_of("abc", "abc") == 0);
    CHECK(distance_of("abc", "acb") == 2);
    CHECK(distance_of("intention", "execution") == 5);
    CHECK(recur_edit_distance(NULL, 0, NULL, 0) == 0);

    /* Longer than the on-stack row: 5 substitutions and 2 deletions. */
    enum { N = 600 };
    static int a[N], b[N];
    for (int i = 0; i < N; i++)
        a[i] = b[i] = i;
    for (int k = 0; k < 5; k++)
        b[k * 100 + 7] = -1;
    CHECK(recur_edit_distance(a, N, b, N - 2) == 7);
    CHECK(recur_edit_distance(b, N - 2, a, N) == 7);

    CHECK_STATUS(recur_edit_distance(a, -1, b, 2), RECUR_E_INVALID);
    CHECK_STATUS(recur_edit_distance(NULL, 2, b, 2), RECUR_E_INVALID);
}

static void test_error_rates(void)
{
    recur_error_rate wer = {0, 0};
    CHECK_OK(recur_error_rate_add_words(&wer, "the cat sat on the mat", "the cat sat on mat"));
    CHECK(wer.edits == 1 && wer.reference_length == 6);
    CHECK_OK(recur_error_rate_add_words(&wer, "  hello\tworld\n", "hello there world"));
    CHECK(wer.edits == 2 && wer.reference_length == 8);
    CHECK_NEAR(recur_error_rate_value(&wer), 0.25, 1e-15);
    /* "a" and "ab" are different words, as are "ab" and "abc". */
    CHECK_OK(recur_error_rate_add_words(&wer, "a ab abc", "ab abc a"));
    CHECK(wer.edits == 4 && wer.reference_length == 11);

    recur_error_rate cer = {0, 0};
    CHECK_OK(recur_error_rate_add_chars(&cer, "h\xc3\xa9llo", "hello")); /* é: 2 bytes, 1 char */
    CHECK(cer.edits == 1 && cer.reference_length == 5);
    CHECK_OK(recur_error_rate_add_chars(&cer, "\xe2\x82\xac", "\xe2\x82\xac")); /* € */
    CHECK(cer.edits == 1 && cer.reference_length == 6);
    /* An invalid byte is a character of its own, unequal to any other. */
    CHECK_OK(recur_error_rate_add_chars(&cer, "ab", "a\xff"));
    CHECK(cer.edits == 2 && cer.reference_length == 8);
    CHECK_NEAR(recur_error_rate_value(&cer), 0.25, 1e-15);

    const int ref[3] = {1, 2, 3}, hyp[2] = {1, 3};
    recur_error_rate ints = {0, 0};
    CHECK(recur_error_rate_value(&ints) == 0.0);
    CHECK_OK(recur_error_rate_add(&ints, ref, 3, hyp, 2));
    CHECK_NEAR(recur_error_rate_value(&ints), 1.0 / 3.0, 1e-15);

    recur_error_rate empty = {0, 0};
    CHECK_OK(recur_error_rate_add_chars(&empty, "", "x"));
    CHECK(isinf(recur_error_rate_value(&empty)));
    CHECK_STATUS(recur_error_rate_add_words(NULL, "a", "b"), RECUR_E_INVALID);
    CHECK_STATUS(recur_error_rate_add_chars(&empty, NULL, "b"), RECUR_E_INVALID);
}

/* Every allocation fails: each function reports RECUR_E_NOMEM cleanly. */
static void *failing_malloc(size_t size, void *user)
{
    (void)size;
    (void)user;
    return NULL;
}
static void failing_free(void *ptr, void *user)
{
    (void)user;
    free(ptr);
}

static void test_out_of_memory(void)
{
    enum { T = 3, C = 3 };
    float logits[T * C] = {0};
    int32_t target[1] = {1}, il = T, tl = 1;
    double loss = 0.0;
    int labels[T], n;
    static int a[300], b[300];
    const recur_allocator failing = {failing_malloc, failing_free, NULL};
    recur_set_allocator(&failing);
    CHECK_STATUS(recur_ctc_loss(logits, T, 1, C, target, 1, &il, &tl, NULL, &loss, NULL),
                 RECUR_E_NOMEM);
    CHECK_STATUS(recur_ctc_beam_decode(logits, T, C, C, NULL, labels, T, &n, NULL), RECUR_E_NOMEM);
    CHECK_STATUS(recur_edit_distance(a, 300, b, 300), RECUR_E_NOMEM);
    CHECK(recur_edit_distance(a, 100, b, 100) == 0); /* short rows need no allocation */
    recur_error_rate rate = {0, 0};
    CHECK_STATUS(recur_error_rate_add_chars(&rate, "ab", "b"), RECUR_E_NOMEM);
    CHECK_STATUS(recur_error_rate_add_words(&rate, "a b", "b"), RECUR_E_NOMEM);
    CHECK(rate.edits == 0 && rate.reference_length == 0);
    recur_set_allocator(NULL);
    CHECK_OK(recur_ctc_loss(logits, T, 1, C, target, 1, &il, &tl, NULL, &loss, NULL));
}

int main(void)
{
    test_loss_and_gradient();
    test_empty_target();
    test_impossible();
    test_invalid();
    test_greedy();
    test_beam_beats_greedy();
    test_beam_peaky();
    test_beam_exact();
    test_beam_reference();
    test_beam_invalid();
    test_edit_distance();
    test_error_rates();
    test_out_of_memory();
    CHECK_DONE();
}
