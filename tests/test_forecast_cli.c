/* test_forecast_cli.c - `recur forecast` end to end (the binary's path in
 * argv[1], else RECUR_BINARY_DIR/recur) on small synthetic CSV files written
 * to a fresh temporary folder: --help and usage errors (exit 2); eval with
 * the table, --json and --plot (the model beats seasonal naive on a
 * trending seasonal series; the period is detected); train with the shared
 * trainer's progress line and checkpoints; resume exactness (N steps ==
 * N/2 + --resume to N: the same forecasts); predict (CSV rows with the
 * calendar's next times, --json, --horizon, --follow reading observations
 * from standard input); a wide file; and malformed input named by line and
 * column (exit 1). */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "recur.h"

#include "cli_harness.h"

static int count_lines(const char *path)
{
    char *text = read_all(path);
    int lines = 0;
    for (const char *p = text; p && *p; p++)
        lines += *p == '\n';
    free(text);
    return lines;
}

/* A monthly series with a trend, a yearly season and noise; a covariate; a
 * gap. */
static void write_monthly(const char *path, int n)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return;
    recur_rng rng;
    recur_rng_seed(&rng, 3);
    fprintf(f, "month,sales,price\n");
    for (int t = 0; t < n; t++) {
        const double v = 100 + 0.4 * t + 12 * sin(2 * 3.14159265358979 * t / 12.0) +
                         1.5 * recur_rng_normal(&rng);
        if (t == 30)
            fprintf(f, "%04d-%02d-01,,%.2f\n", 2000 + t / 12, t % 12 + 1, 5.0 + 0.01 * t);
        else
            fprintf(f, "%04d-%02d-01,%.3f,%.2f\n", 2000 + t / 12, t % 12 + 1, v, 5.0 + 0.01 * t);
    }
    fclose(f);
}

static double json_number_after(const char *path, const char *key, int occurrence)
{
    char *text = read_all(path);
    double v = NAN;
    const char *p = text;
    for (int i = 0; p && i <= occurrence; i++) {
        p = strstr(p, key);
        if (p)
            p += strlen(key);
    }
    if (p)
        v = strtod(p, NULL);
    free(text);
    return v;
}

static void test_usage(void)
{
    CHECK_EXIT(run("help", "forecast", "--help", NULL), 0);
    CHECK_STDOUT_MENTIONS("predict");
    CHECK_EXIT(run("help_eval", "forecast", "eval", "--help", NULL), 0);
    CHECK_STDOUT_MENTIONS("--lookback");
    CHECK_STDOUT_MENTIONS("--steps");
    CHECK_STDOUT_MENTIONS("(default: 0.2)");
    CHECK_EXIT(run("nosub", "forecast", "fly", NULL), 2);
    CHECK_EXIT(run("nodata", "forecast", "eval", "--target", "x", NULL), 2);
    CHECK_STDERR_MENTIONS("--data");
    CHECK_EXIT(run("badflag", "forecast", "train", "--data", "x.csv", "--target", "v",
                   "--horizon", "abc", NULL), 2);
    CHECK_STDERR_MENTIONS("--horizon");
    CHECK_EXIT(run("badloss", "forecast", "train", "--data", "x.csv", "--target", "v",
                   "--loss", "l1", NULL), 2);
    CHECK_EXIT(run("predict_nomodel", "forecast", "predict", "--data", "x.csv", NULL), 2);
}

static void test_eval(void)
{
    char data[600];
    snprintf(data, sizeof data, "%s", path_of("monthly.csv"));
    write_monthly(data, 180);
    CHECK_EXIT(run("eval", "forecast", "eval", "--data", data, "--target", "sales", "--time",
                   "month", "--steps", "300", "--hidden", "24", "--out", path_of("eval_run"),
                   "--plot", path_of("eval.svg"), NULL),
               0);
    CHECK_STDOUT_MENTIONS("seasonal naive");
    CHECK_STDOUT_MENTIONS("MASE");
    CHECK_STDERR_MENTIONS("period 12 (detected");
    CHECK_STDERR_MENTIONS("step 300/300");
    CHECK(contains(path_of("eval.svg"), "<svg") && contains(path_of("eval.svg"), "</svg>"));
    CHECK(contains(path_of("eval.svg"), "2012-"));
    CHECK_EXIT(run("eval_json", "forecast", "eval", "--data", data, "--target", "sales", "--time",
                   "month", "--steps", "300", "--hidden", "24", "--out", path_of("eval_run"),
                   "--json", NULL),
               0);
    const double model = json_number_after(last_out, "\"mase\": ", 0);
    const double snaive = json_number_after(last_out, "\"mase\": ", 2);
    const double coverage = json_number_after(last_out, "\"coverage\": ", 0);
    printf("eval: MASE model %.3f, seasonal naive %.3f, coverage %.2f\n", model, snaive,
           coverage);
    CHECK_MSG(model < snaive, "model MASE %g vs seasonal naive %g", model, snaive);
    CHECK(coverage >= 0 && coverage <= 1);
    CHECK_STDOUT_MENTIONS("\"method\": \"drift\"");
    CHECK_STDOUT_MENTIONS("\"origins\": 25");
}

static void test_train_resume_predict(void)
{
    char data[600];
    snprintf(data, sizeof data, "%s", path_of("monthly.csv"));
    /* uninterrupted: 120 steps */
    CHECK_EXIT(run("train_full", "forecast", "train", "--data", data, "--target", "sales",
                   "--time", "month", "--covariates", "price", "--hidden", "16", "--horizon",
                   "6", "--steps", "120", "--val-every", "40", "--out", path_of("full"), NULL),
               0);
    CHECK_STDERR_MENTIONS("step 120/120");
    CHECK_STDERR_MENTIONS("best validation");
    CHECK_EXIT(run("train_json", "forecast", "train", "--data", data, "--target", "sales",
                   "--time", "month", "--steps", "20", "--hidden", "8", "--json", "--out",
                   path_of("json_run"), "--plot", path_of("train.svg"), NULL),
               0);
    CHECK_STDOUT_MENTIONS("\"period\": 12, \"horizon\": 12");
    CHECK_STDOUT_MENTIONS("best.safetensors\"");
    CHECK(contains(path_of("train.svg"), "forecast of the next 12 steps"));
    CHECK(access(path_of("full/best.safetensors"), R_OK) == 0);
    /* the same run in two halves */
    CHECK_EXIT(run("train_half", "forecast", "train", "--data", data, "--target", "sales",
                   "--time", "month", "--covariates", "price", "--hidden", "16", "--horizon",
                   "6", "--steps", "60", "--val-every", "40", "--out", path_of("half"), NULL),
               0);
    CHECK_EXIT(run("train_again", "forecast", "train", "--data", data, "--target", "sales",
                   "--steps", "60", "--out", path_of("half"), NULL),
               1);
    CHECK_STDERR_MENTIONS("--resume");
    CHECK_EXIT(run("train_resume", "forecast", "train", "--resume", "--steps", "120", "--out",
                   path_of("half"), NULL),
               0);
    CHECK_STDERR_MENTIONS("resuming");
    CHECK_EXIT(run("resume_changed", "forecast", "train", "--resume", "--steps", "130",
                   "--hidden", "8", "--out", path_of("half"), NULL),
               2);
    CHECK_STDERR_MENTIONS("--hidden");

    /* predictions of both: identical */
    CHECK_EXIT(run("predict_full", "forecast", "predict", "--model",
                   path_of("full/latest.safetensors"), "--data", data, NULL),
               0);
    char *full = read_all(last_out);
    CHECK_EXIT(run("predict_half", "forecast", "predict", "--model",
                   path_of("half/latest.safetensors"), "--data", data, "--plot",
                   path_of("predict.svg"), NULL),
               0);
    char *half = read_all(last_out);
    CHECK_MSG(full && half && strcmp(full, half) == 0, "resumed run predicts differently:\n%s\n"
              "vs\n%s", full ? full : "", half ? half : "");
    free(full);
    free(half);
    /* 180 months from 2000-01: the forecasts start at 2015-01 */
    CHECK_STDOUT_MENTIONS("month,forecast,lower_80,upper_80\n2015-01-01,");
    CHECK_STDOUT_MENTIONS("\n2015-06-01,");
    CHECK(count_lines(last_out) == 7);
    CHECK(contains(path_of("predict.svg"), "forecast (median)"));
    CHECK_EXIT(run("predict_json", "forecast", "predict", "--model",
                   path_of("full/best.safetensors"), "--data", data, "--json", "--horizon", "2",
                   NULL),
               0);
    CHECK_STDOUT_MENTIONS("\"time\": \"2015-02-01\"");
    CHECK(!contains(last_out, "2015-03-01"));
    CHECK_EXIT(run("predict_long", "forecast", "predict", "--model",
                   path_of("full/best.safetensors"), "--data", data, "--horizon", "7", NULL),
               1);
    CHECK_STDERR_MENTIONS("at most 6");

    /* --follow: three new observations, one missing */
    FILE *f = fopen(path_of("follow.txt"), "w");
    if (f) {
        fprintf(f, "180.5,6.8\n\n NA , 6.81\n182,6.82\n");
        fclose(f);
    }
    stdin_path = path_of("follow.txt");
    CHECK_EXIT(run("follow", "forecast", "predict", "--model", path_of("full/best.safetensors"),
                   "--data", data, "--follow", NULL),
               0);
    CHECK(count_lines(last_out) == 1 + 4 * 6);
    CHECK_STDOUT_MENTIONS("origin,month,forecast");
    CHECK_STDOUT_MENTIONS("\n2015-03-01,2015-04-01,");
    f = fopen(path_of("follow.txt"), "w");
    if (f) {
        fprintf(f, "180.5\n");
        fclose(f);
    }
    CHECK_EXIT(run("follow_bad", "forecast", "predict", "--model",
                   path_of("full/best.safetensors"), "--data", data, "--follow", NULL),
               1);
    CHECK_STDERR_MENTIONS("standard input, line 1");
    stdin_path = "/dev/null";
}

static void test_wide_and_errors(void)
{
    char wide[600], bad[600], tiny[600];
    snprintf(wide, sizeof wide, "%s", path_of("wide.csv"));
    snprintf(bad, sizeof bad, "%s", path_of("bad.csv"));
    snprintf(tiny, sizeof tiny, "%s", path_of("tiny.csv"));
    FILE *f = fopen(wide, "w");
    if (f) {
        fprintf(f, "YEAR,JAN,FEB,MAR,APR,MAY,JUN,JUL,AUG,SEP,OCT,NOV,DEC\n");
        for (int y = 0; y < 16; y++) {
            fprintf(f, "%d", 1990 + y);
            for (int m = 0; m < 12; m++)
                fprintf(f, ",%.2f", 20 + 3 * sin(2 * 3.14159265358979 * m / 12.0) + 0.1 * y +
                                        0.2 * sin(7.0 * (y * 12 + m)));
            fprintf(f, "\n");
        }
        fclose(f);
    }
    CHECK_EXIT(run("wide", "forecast", "eval", "--data", wide, "--target", "JAN:DEC", "--time",
                   "YEAR", "--steps", "40", "--hidden", "8", "--out", path_of("wide_run"), NULL),
               0);
    CHECK_STDOUT_MENTIONS("27 origins (2002-10 .. 2004-12), horizon 12");
    CHECK_STDERR_MENTIONS("period 12");

    f = fopen(bad, "w");
    if (f) {
        fprintf(f, "t,v\n");
        for (int i = 0; i < 60; i++)
            fprintf(f, "%d,%s\n", i, i == 41 ? "oops" : "1.5");
        fclose(f);
    }
    CHECK_EXIT(run("bad_value", "forecast", "eval", "--data", bad, "--target", "v", NULL), 1);
    CHECK_STDERR_MENTIONS("line 43, column 2 'v': 'oops' is not a number");
    CHECK_EXIT(run("bad_column", "forecast", "eval", "--data", bad, "--target", "w", NULL), 1);
    CHECK_STDERR_MENTIONS("no target column 'w'");
    f = fopen(tiny, "w");
    if (f) {
        fprintf(f, "t,v\n1,1\n2,3\n3,2\n4,5\n5,4\n6,6\n");
        fclose(f);
    }
    CHECK_EXIT(run("too_short", "forecast", "eval", "--data", tiny, "--target", "v", "--out",
                   path_of("tiny_run"), NULL),
               1);
    CHECK_STDERR_MENTIONS("column 'v' has 6 steps (lines 2-7)");
    CHECK_STDERR_MENTIONS("too short");
    CHECK_EXIT(run("missing_file", "forecast", "train", "--data", path_of("none.csv"), "--target",
                   "v", "--out", path_of("none_run"), NULL),
               1);
    CHECK_STDERR_MENTIONS("none.csv");
}

int main(int argc, char **argv)
{
    if (cli_begin(argc, argv, "forecast_cli"))
        return 1;
    test_usage();
    test_eval();
    test_train_resume_predict();
    test_wide_and_errors();
    cli_end("forecast_cli");
    CHECK_DONE();
}
