/* test_classify_cli.c - `recur classify` end to end (the binary's path in
 * argv[1], else RECUR_BINARY_DIR/recur), on small synthetic data written to
 * a fresh temporary folder: --help and usage errors (exit 2); training a
 * text classifier with the shared trainer (progress line, checkpoints,
 * metrics); resume exactness (N steps == N/2 + --resume to N: the same
 * metrics rows, bit-identical weights, optimizer moments and RNG); predict
 * (TSV and --json, plain-text input, an unknown label named with its line);
 * eval with --folds and --json (the model learns the task, the baseline is
 * reported); numeric .ts sequences with --test and a malformed file;
 * ensembles (--ensemble, --model on several checkpoints); and pretraining
 * from a `recur train` character language model. */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "recur.h"

#include "cli_harness.h"

/* ---- data ------------------------------------------------------------------------------ */

static const char *const positive[] = {"good", "great", "fine", "lovely", "superb"};
static const char *const negative[] = {"bad", "awful", "poor", "dull", "boring"};
static const char *const filler[] = {"the", "film", "was", "plot", "a", "and", "acting", "very",
                                     "it", "really"};

/* n sentences: fillers around one word that carries the label. */
static void write_sentiment(const char *path, int n, unsigned seed)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return;
    fprintf(f, "label\ttext\n");
    unsigned x = seed;
    for (int i = 0; i < n; i++) {
        const int label = i % 2;
        fprintf(f, "%d\t", label);
        const int len = 3 + (int)((x = x * 1103515245u + 12345u) >> 16) % 6;
        const int at = (int)((x = x * 1103515245u + 12345u) >> 16) % len;
        for (int t = 0; t < len; t++) {
            x = x * 1103515245u + 12345u;
            const char *w = t == at ? (label ? positive : negative)[(x >> 16) % 5]
                                    : filler[(x >> 16) % 10];
            fprintf(f, "%s%s", t ? " " : "", w);
        }
        fprintf(f, "%s\n", (x >> 20) % 2 ? "." : "!");
    }
    fclose(f);
}

/* Sequences whose class is the sign of a trend, lengths 6..20. */
static void write_ts(const char *path, int n, unsigned seed)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return;
    fprintf(f, "#synthetic\n@problemName Trend\n@dimensions 2\n@equalLength false\n"
               "@classLabel true up down\n@data\n");
    unsigned x = seed;
    for (int i = 0; i < n; i++) {
        const int up = i % 2;
        const int len = 6 + (int)((x = x * 1103515245u + 12345u) >> 16) % 15;
        for (int c = 0; c < 2; c++) {
            for (int t = 0; t < len; t++) {
                x = x * 1103515245u + 12345u;
                const double noise = ((double)((x >> 16) % 1000) / 1000.0 - 0.5) * 0.4;
                const double v = c == 0 ? (up ? 0.3 : -0.3) * t + noise : noise;
                fprintf(f, "%s%.3f", t ? "," : "", v);
            }
            fputc(':', f);
        }
        fprintf(f, "%s\n", up ? "up" : "down");
    }
    fclose(f);
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_usage(void)
{
    CHECK_EXIT(run("help", "classify", "--help", NULL), 0);
    CHECK_STDOUT_MENTIONS("predict");
    CHECK_EXIT(run("help_train", "classify", "train", "--help", NULL), 0);
    CHECK_STDOUT_MENTIONS("--label-col");
    CHECK_STDOUT_MENTIONS("--epochs");
    CHECK_STDOUT_MENTIONS("--resume");
    CHECK_EXIT(run("help_eval", "classify", "eval", "--help", NULL), 0);
    CHECK_STDOUT_MENTIONS("--folds");
    CHECK_EXIT(run("bad_sub", "classify", "fit", NULL), 2);
    CHECK_STDERR_MENTIONS("unknown command 'fit'");
    CHECK_EXIT(run("no_data", "classify", "train", NULL), 2);
    CHECK_STDERR_MENTIONS("--data");
    CHECK_EXIT(run("bad_pool", "classify", "train", "--data", path_of("s.tsv"), "--pool", "sum",
                   NULL), 2);
    CHECK_EXIT(run("eval_both", "classify", "eval", "--data", path_of("s.tsv"), NULL), 2);
    CHECK_STDERR_MENTIONS("--test");
    CHECK_EXIT(run("bad_col", "classify", "train", "--data", path_of("s.tsv"), "--text-col",
                   "review", "--out", path_of("bad_col"), NULL), 1);
    CHECK_STDERR_MENTIONS("no column 'review'");
}

#define TINY "--hidden", "12", "--embed", "8", "--threads", "1"

static void test_train_resume_predict(void)
{
    const char *data = path_of("s.tsv");
    const char *a = path_of("run_a"), *b = path_of("run_b");
    CHECK_EXIT(run("train_a", "classify", "train", "--data", data, TINY, "--out", a, "--steps",
                   "24", "--val-every", "6", "--log-every", "3", "--dropout", "0.2", NULL), 0);
    CHECK_STDERR_MENTIONS("command line: recur classify train");
    CHECK_STDERR_MENTIONS("step 24/24");
    CHECK_STDERR_MENTIONS("acc");
    CHECK_STDERR_MENTIONS("seq/s");
    CHECK_STDERR_MENTIONS("best validation loss");
    CHECK_EXIT(run("train_b1", "classify", "train", "--data", data, TINY, "--out", b, "--steps",
                   "12", "--val-every", "6", "--log-every", "3", "--dropout", "0.2", NULL), 0);
    CHECK_EXIT(run("train_b2", "classify", "train", "--data", data, "--out", b, "--resume",
                   "--steps", "24", NULL), 0);
    CHECK_STDERR_MENTIONS("continuing at step 12");
    /* a frozen option cannot change */
    CHECK_EXIT(run("train_b3", "classify", "train", "--data", data, "--out", b, "--resume",
                   "--hidden", "16", NULL), 2);
    CHECK_STDERR_MENTIONS("--hidden 16 differs");

    /* the same metrics rows but for throughput and time */
    char ma[700], mb[700];
    snprintf(ma, sizeof ma, "%s/metrics.csv", a);
    snprintf(mb, sizeof mb, "%s/metrics.csv", b);
    char *ta = read_all(ma), *tb = read_all(mb);
    CHECK(ta && tb);
    if (ta && tb) {
        int rows = 0, same = 1;
        char *sa = NULL, *sb = NULL;
        char *la = strtok_r(ta, "\n", &sa), *lb = strtok_r(tb, "\n", &sb);
        for (; la && lb; la = strtok_r(NULL, "\n", &sa), lb = strtok_r(NULL, "\n", &sb)) {
            /* columns 0-4 and 6-7: step .. metric, grad_norm, lr */
            char fa[8][64] = {{0}}, fb[8][64] = {{0}};
            int k = 0;
            for (char *p = la, *q; k < 8 && p; k++, p = q ? q + 1 : NULL) {
                q = strchr(p, ',');
                snprintf(fa[k], sizeof fa[k], "%.*s", q ? (int)(q - p) : (int)strlen(p), p);
            }
            k = 0;
            for (char *p = lb, *q; k < 8 && p; k++, p = q ? q + 1 : NULL) {
                q = strchr(p, ',');
                snprintf(fb[k], sizeof fb[k], "%.*s", q ? (int)(q - p) : (int)strlen(p), p);
            }
            for (int c = 0; c < 8; c++)
                if (c != 5 && strcmp(fa[c], fb[c]) != 0) {
                    same = 0;
                    fprintf(stderr, "metrics row %d column %d: %s vs %s\n", rows, c, fa[c],
                            fb[c]);
                }
            rows++;
        }
        CHECK_MSG(rows == 9 && !la && !lb, "%d metrics rows (header + 8 expected)", rows);
        CHECK(same);
    }
    free(ta);
    free(tb);

    /* bit-identical weights, optimizer moments and RNG */
    char la_path[700], lb_path[700];
    snprintf(la_path, sizeof la_path, "%s/latest.safetensors", a);
    snprintf(lb_path, sizeof lb_path, "%s/latest.safetensors", b);
    recur_classifier *ma_m = NULL, *mb_m = NULL;
    recur_tokenizer *ka = NULL, *kb = NULL;
    recur_train_state *sa_t = NULL, *sb_t = NULL;
    CHECK_OK(recur_classifier_load(la_path, &ma_m, &ka, &sa_t));
    CHECK_OK(recur_classifier_load(lb_path, &mb_m, &kb, &sb_t));
    if (ma_m && mb_m && sa_t && sb_t) {
        CHECK(recur_classifier_size(ma_m) == recur_classifier_size(mb_m) &&
              memcmp(recur_classifier_params(ma_m), recur_classifier_params(mb_m),
                     recur_classifier_size(ma_m) * sizeof(float)) == 0);
        CHECK(sa_t->step == 24 && sb_t->step == 24 && sa_t->optim_step == sb_t->optim_step);
        CHECK(sa_t->optim_state_count == sb_t->optim_state_count &&
              memcmp(sa_t->optim_state, sb_t->optim_state,
                     sa_t->optim_state_count * sizeof(float)) == 0);
        CHECK(memcmp(&sa_t->rng, &sb_t->rng, sizeof sa_t->rng) == 0);
        CHECK(sa_t->data_position_count == 2 && sb_t->data_position_count == 2 &&
              sa_t->data_position[0] == sb_t->data_position[0] &&
              sa_t->data_position[1] == sb_t->data_position[1]);
        CHECK(sa_t->best_val_loss == sb_t->best_val_loss);
        CHECK(recur_train_state_option(sa_t, "hidden") &&
              strcmp(recur_train_state_option(sa_t, "hidden"), "12") == 0);
    }
    recur_classifier_free(ma_m);
    recur_classifier_free(mb_m);
    recur_tokenizer_free(ka);
    recur_tokenizer_free(kb);
    recur_train_state_free(sa_t);
    recur_train_state_free(sb_t);

    /* predict: TSV on a plain text file, --json, and an unknown label */
    const char *plain = path_of("inputs.txt");
    FILE *f = fopen(plain, "w");
    if (f) {
        fputs("the film was great\n\nit was awful really\n", f);
        fclose(f);
    }
    CHECK_EXIT(run("predict", "classify", "predict", "--model", la_path, "--data", plain, NULL),
               0);
    char *out = read_all(last_out);
    CHECK_MSG(out && strncmp(out, "line\tlabel\t0\t1\n1\t", 16) == 0 && strstr(out, "\n3\t"),
              "predict printed: %s", out ? out : "(nothing)");
    free(out);
    CHECK_EXIT(run("predict_json", "classify", "predict", "--model", la_path, "--data", data,
                   "--json", NULL), 0);
    CHECK_STDOUT_MENTIONS("{\"line\": 2, \"label\": \"");
    CHECK_STDOUT_MENTIONS("\"probabilities\": {\"0\": ");
    CHECK_STDERR_MENTIONS("accuracy");
    const char *unknown = path_of("unknown.tsv");
    f = fopen(unknown, "w");
    if (f) {
        fputs("label\ttext\n1\tgood film\nneutral\tok film\n", f);
        fclose(f);
    }
    CHECK_EXIT(run("predict_unknown", "classify", "predict", "--model", la_path, "--data",
                   unknown, NULL), 1);
    CHECK_STDERR_MENTIONS("unknown.tsv:3: unknown label 'neutral'");
    /* a language-model checkpoint is refused with a clear message */
    CHECK_EXIT(run("predict_missing", "classify", "predict", "--model", path_of("nope"),
                   "--data", plain, NULL), 1);
}

static void test_eval(void)
{
    const char *data = path_of("s.tsv");
    CHECK_EXIT(run("eval_folds", "classify", "eval", "--data", data, TINY, "--folds", "3",
                   "--epochs", "40", "--lr", "0.01", "--cell", "gru", "--pool", "max", "--out", path_of("eval"), "--json", NULL),
               0);
    char *out = read_all(last_out);
    const char *acc = out ? strstr(out, "\"model\": {\"accuracy\": ") : NULL;
    const double accuracy = acc ? strtod(acc + strlen("\"model\": {\"accuracy\": "), NULL) : 0.0;
    CHECK_MSG(accuracy >= 0.9, "3-fold accuracy %.3f on a separable task", accuracy);
    CHECK_MSG(out && strstr(out, "\"baseline\": {\"name\": \"TF-IDF"), "no baseline in %s",
              out ? out : "(nothing)");
    CHECK_MSG(out && strstr(out, "\"confusion\": [["), "no confusion matrix");
    free(out);
    CHECK_STDERR_MENTIONS("fold 3/3");
    struct stat info;
    CHECK(stat(path_of("eval/fold-2/latest.safetensors"), &info) == 0);

    /* two sources, a test file, the text report */
    write_sentiment(path_of("t.tsv"), 30, 99);
    char both[1300];
    snprintf(both, sizeof both, "%s,%s", data, path_of("t.tsv"));
    CHECK_EXIT(run("eval_sources", "classify", "eval", "--data", both, TINY, "--folds", "2",
                   "--epochs", "2", "--out", path_of("eval2"), NULL), 0);
    CHECK_STDOUT_MENTIONS("per source");
    CHECK_STDOUT_MENTIONS("t.tsv");
    CHECK_STDOUT_MENTIONS("confusion matrix");
}

static void test_sequences(void)
{
    const char *train = path_of("trend_TRAIN.ts"), *test = path_of("trend_TEST.ts");
    write_ts(train, 80, 5);
    write_ts(test, 40, 6);
    CHECK_EXIT(run("ts_eval", "classify", "eval", "--data", train, "--test", test, "--hidden",
                   "12", "--threads", "1", "--epochs", "30", "--lr", "0.01", "--out",
                   path_of("ts"), "--json", NULL), 0);
    char *out = read_all(last_out);
    const char *acc = out ? strstr(out, "\"model\": {\"accuracy\": ") : NULL;
    const double accuracy = acc ? strtod(acc + strlen("\"model\": {\"accuracy\": "), NULL) : 0.0;
    CHECK_MSG(accuracy >= 0.9, "trend accuracy %.3f", accuracy);
    CHECK_MSG(out && strstr(out, "1-NN DTW"), "no DTW baseline in %s", out ? out : "");
    free(out);
    /* predict on the test file with the trained model */
    CHECK_EXIT(run("ts_predict", "classify", "predict", "--model", path_of("ts/latest.safetensors"),
                   "--data", test, NULL), 0);
    CHECK_STDOUT_MENTIONS("line\tlabel\tup\tdown\n");
    /* malformed: the error names the line */
    const char *bad = path_of("bad.ts");
    FILE *f = fopen(bad, "w");
    if (f) {
        fputs("@classLabel true up down\n@data\n1,2:3,4:up\n1,2,3:3,4:down\n", f);
        fclose(f);
    }
    CHECK_EXIT(run("ts_bad", "classify", "train", "--data", bad, "--out", path_of("ts_bad"),
                   NULL), 1);
    CHECK_STDERR_MENTIONS("bad.ts:4: channel 2 has 2 values, channel 1 has 3");
}

/* The class probabilities of `predict` (TSV) into p[row * 2 + k]; rows read. */
static int read_probs(const char *path, double *p, int max)
{
    char *text = read_all(path);
    int rows = 0;
    char *save = NULL;
    for (char *line = text ? strtok_r(text, "\n", &save) : NULL; line && rows < max;
         line = strtok_r(NULL, "\n", &save)) {
        long number;
        char label[32];
        double a, b;
        if (sscanf(line, "%ld\t%31s\t%lf\t%lf", &number, label, &a, &b) == 4) {
            p[2 * rows] = a;
            p[2 * rows + 1] = b;
            rows++;
        }
    }
    free(text);
    return rows;
}

/* --ensemble: members with their own seeds and folders; predict and eval
 * --model on a folder, a list or one checkpoint; the ensemble's
 * probabilities are the mean of its members'; bad ensembles are refused. */
static void test_ensemble(void)
{
    const char *data = path_of("s.tsv"), *dir = path_of("ens");
    CHECK_EXIT(run("ens_train", "classify", "train", "--data", data, TINY, "--steps", "12",
                   "--val-every", "6", "--ensemble", "2", "--out", dir, NULL), 0);
    CHECK_STDERR_MENTIONS("member 2/2");
    CHECK_STDERR_MENTIONS("predict with --model");
    struct stat info;
    CHECK(stat(path_of("ens/member-1/best.safetensors"), &info) == 0);
    CHECK(stat(path_of("ens/member-2/best.safetensors"), &info) == 0);
    CHECK(stat(path_of("ens/member-3"), &info) != 0);

    enum { ROWS = 90 };
    static double p1[2 * ROWS], p2[2 * ROWS], pe[2 * ROWS], pl[2 * ROWS];
    const char *m1 = path_of("ens/member-1/best.safetensors");
    CHECK_EXIT(run("ens_p1", "classify", "predict", "--model", m1, "--data", data, NULL), 0);
    int r1 = read_probs(last_out, p1, ROWS);
    char m2[700];
    snprintf(m2, sizeof m2, "%s", path_of("ens/member-2/best.safetensors"));
    CHECK_EXIT(run("ens_p2", "classify", "predict", "--model", m2, "--data", data, NULL), 0);
    int r2 = read_probs(last_out, p2, ROWS);
    CHECK_EXIT(run("ens_pe", "classify", "predict", "--model", dir, "--data", data, NULL), 0);
    CHECK_STDERR_MENTIONS("the members' mean probabilities");
    int re = read_probs(last_out, pe, ROWS);
    char list[1500];
    snprintf(list, sizeof list, "%s,%s", m1, m2);
    CHECK_EXIT(run("ens_pl", "classify", "predict", "--model", list, "--data", data, NULL), 0);
    int rl = read_probs(last_out, pl, ROWS);
    CHECK_MSG(r1 == ROWS && r2 == ROWS && re == ROWS && rl == ROWS, "rows %d %d %d %d", r1, r2,
              re, rl);
    double worst = 0, apart = 0;
    for (int i = 0; i < 2 * ROWS; i++) {
        worst = fmax(worst, fabs(pe[i] - (p1[i] + p2[i]) / 2));
        worst = fmax(worst, fabs(pl[i] - pe[i]));
        apart = fmax(apart, fabs(p1[i] - p2[i]));
    }
    CHECK_MSG(worst <= 1.5e-6, "ensemble probabilities off the members' mean by %.3g", worst);
    CHECK_MSG(apart > 1e-3, "the two members agree to %.3g: not different seeds", apart);

    CHECK_EXIT(run("ens_eval", "classify", "eval", "--model", dir, "--test", data, NULL), 0);
    CHECK_STDOUT_MENTIONS("an ensemble of trained models");
    CHECK_EXIT(run("ens_folds", "classify", "eval", "--data", data, TINY, "--folds", "2",
                   "--epochs", "1", "--ensemble", "2", "--out", path_of("ens_cv"), NULL), 0);
    CHECK_STDERR_MENTIONS("fold 2/2, member 2/2");
    CHECK(stat(path_of("ens_cv/fold-2/member-2/latest.safetensors"), &info) == 0);

    /* refused: a folder without checkpoints, members of different kinds */
    mkdir(path_of("empty"), 0755);
    CHECK_EXIT(run("ens_empty", "classify", "predict", "--model", path_of("empty"), "--data",
                   data, NULL), 1);
    CHECK_STDERR_MENTIONS("holds no checkpoint");
    snprintf(list, sizeof list, "%s,%s", m1, path_of("ts/latest.safetensors"));
    CHECK_EXIT(run("ens_mixed", "classify", "predict", "--model", list, "--data", data, NULL), 1);
    CHECK_STDERR_MENTIONS("classify different inputs or into different classes");
}

static void test_pretrained(void)
{
    /* a character language model on the sentences, then a classifier from it */
    const char *text = path_of("corpus.txt");
    char *tsv = read_all(path_of("s.tsv"));
    FILE *f = fopen(text, "w");
    if (f && tsv) {
        for (char *line = strchr(tsv, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
            char *tab = strchr(line, '\t'), *end = tab ? strchr(tab, '\n') : NULL;
            if (tab && end)
                fprintf(f, "%.*s\n", (int)(end - tab - 1), tab + 1);
        }
    }
    if (f)
        fclose(f);
    free(tsv);
    const char *lm = path_of("lm");
    CHECK_EXIT(run("lm_train", "train", "--data", text, "--out", lm, "--hidden", "16", "--embed",
                   "8", "--layers", "1", "--seq-len", "16", "--batch", "4", "--steps", "10",
                   "--threads", "1", NULL), 0);
    CHECK_EXIT(run("pre_train", "classify", "train", "--data", path_of("s.tsv"), "--pretrained",
                   path_of("lm/latest.safetensors"), "--steps", "4", "--threads", "1", "--out",
                   path_of("pre"), NULL), 0);
    CHECK_STDERR_MENTIONS("initialised the embedding and 4 recurrent tensors");
    CHECK_EXIT(run("pre_bad", "classify", "train", "--data", path_of("s.tsv"), "--pretrained",
                   path_of("lm/latest.safetensors"), "--hidden", "32", "--out",
                   path_of("pre_bad"), NULL), 2);
    CHECK_STDERR_MENTIONS("--hidden 32 differs from the pretrained model's 16");
}

int main(int argc, char **argv)
{
    if (cli_begin(argc, argv, "classify_cli"))
        return 1;
    write_sentiment(path_of("s.tsv"), 90, 7);
    test_usage();
    test_train_resume_predict();
    test_eval();
    test_sequences();
    test_ensemble();
    test_pretrained();
    cli_end("classify_cli");
    CHECK_DONE();
}
