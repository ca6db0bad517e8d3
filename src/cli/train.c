/* train.c - `recur train`: trains a character language model on a text
 * file as char-rnn does. B parallel streams over the training part (the text
 * minus a validation tail) are cut into chunks of T steps; the hidden state
 * is carried from chunk to chunk (detached) and reset when the streams wrap
 * into a new epoch. Each step: gradient of the mean loss of one chunk, a
 * check that the loss and gradients are finite, clipping, one optimizer
 * update at the scheduled learning rate.
 *
 * Around the loop: progress on stderr (a live line on a terminal, plain
 * periodic lines otherwise), a CSV metrics row per logged step, validation
 * (mean loss over the whole validation part with B streams from a zero
 * state), samples, checkpoints (latest.safetensors, and best.safetensors
 * by validation loss) written atomically, exact --resume from the training
 * state stored in latest.safetensors, Ctrl-C that saves and exits, and
 * NaN/Inf handling (stop without saving, or skip the update). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* --on-nan skip gives up after this many non-finite steps in a row. */
#define MAX_CONSECUTIVE_SKIPS 100

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

typedef struct train_opts {
    const char *data, *cell, *optimizer, *schedule, *out, *metrics, *on_nan;
    int hidden, layers, embed, seq_len, batch, threads;
    int64_t steps, epochs;
    double time_s;
    double lr, momentum, dampening, weight_decay, beta1, beta2, eps, alpha, lr_decay, init_acc;
    int nesterov, amsgrad, centered;
    int64_t warmup, step_size, decay_steps;
    double gamma, min_lr;
    double clip, clip_value, dropout, val_fraction;
    int64_t seed, val_every, sample_every, sample_length, log_every, save_every, inject_nan;
    int resume, overwrite, byte_level;
} train_opts;

static const char *const cell_choices[] = {"lstm", "gru", "rnn_tanh", "rnn_relu", NULL};
static const char *const optim_choices[] = {"adam", "adamw", "sgd", "rmsprop", "adagrad", NULL};
static const char *const schedule_choices[] = {"constant", "step", "cosine", NULL};
static const char *const nan_choices[] = {"stop", "skip", NULL};

#define BIG 1e300
#define SAVED CLI_SAVED
#define FROZEN (CLI_SAVED | CLI_FROZEN)
#define OPTIM_DEFAULT "the optimizer's"

/* ---- small helpers -------------------------------------------------------- */

static int mkdir_p(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return -1;
            *p = saved;
            if (!saved)
                break;
        }
    }
    struct stat info;
    if (stat(path, &info) != 0)
        return -1;
    if (!S_ISDIR(info.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

static int file_exists(const char *path)
{
    struct stat info;
    return stat(path, &info) == 0;
}

/* "runs/<file name without extension>" */
static void default_out(const char *data, char *out, size_t size)
{
    const char *base = strrchr(data, '/');
    base = base ? base + 1 : data;
    size_t len = strlen(base);
    const char *dot = strrchr(base, '.');
    if (dot && dot != base)
        len = (size_t)(dot - base);
    if (len == 0)
        snprintf(out, size, "runs/run");
    else
        snprintf(out, size, "runs/%.*s", (int)len, base);
}

static void log_command_line(int argc, char **argv)
{
    fprintf(stderr, "recur train: command line: recur train");
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int plain = a[0] != '\0';
        for (const char *p = a; *p && plain; p++)
            plain = strchr("-_./=:+,@%0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
                           *p) != NULL;
        if (plain) {
            fprintf(stderr, " %s", a);
        } else {
            fputs(" '", stderr);
            for (const char *p = a; *p; p++)
                fputs(*p == '\'' ? "'\\''" : (char[2]){*p, 0}, stderr);
            fputc('\'', stderr);
        }
    }
    fputc('\n', stderr);
}

/* Keeps the rows of an existing metrics file up to `step` (a resumed run
 * rewrites what came after its checkpoint) and opens it for appending. */
static FILE *open_metrics(const char *path, int resume, int64_t step)
{
    static const char header[] =
        "step,epoch,train_loss,val_loss,bpc,tokens_per_s,grad_norm,lr,elapsed_s\n";
    char *kept = NULL;
    size_t kept_len = 0;
    if (resume) {
        FILE *in = fopen(path, "r");
        if (in) {
            char line[1024];
            size_t cap = 0;
            while (fgets(line, sizeof line, in)) {
                char *end;
                long long row_step = strtoll(line, &end, 10);
                if (end == line || *end != ',' || row_step > step)
                    continue;
                size_t len = strlen(line);
                if (kept_len + len + 1 > cap) {
                    cap = 2 * (kept_len + len + 1);
                    char *grown = realloc(kept, cap);
                    if (!grown)
                        break;
                    kept = grown;
                }
                memcpy(kept + kept_len, line, len + 1);
                kept_len += len;
            }
            fclose(in);
        }
    }
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(header, f);
        if (kept_len)
            fwrite(kept, 1, kept_len, f);
        fflush(f);
    }
    free(kept);
    return f;
}

static void csv_number(FILE *f, const char *fmt, double x, int last)
{
    if (isnan(x))
        fputs(last ? "\n" : ",", f);
    else {
        fprintf(f, fmt, x);
        fputs(last ? "\n" : ",", f);
    }
}

/* ---- the training run ------------------------------------------------------ */

typedef struct run {
    const char *cmd;
    train_opts *o;
    cli_option *options;
    char out_dir[4096];
    char latest_path[4200], best_path[4200], metrics_path[4200];
    recur_lm *lm;
    recur_vocab *vocab;
    recur_optim *opt;
    recur_textstream *stream;
    recur_train_state *resumed;
    recur_schedule schedule;
    recur_rng rng;
    int32_t *ids;
    size_t n, train_len, val_len;
    uint64_t data_hash;
    int32_t *chunk; /* [T+1, B] */
    float *h, *c;   /* [L, B, H] carried state */
    size_t state_size;
    int64_t step, start_step, max_steps, best_step, last_saved_step, cpe;
    double best_val, elapsed_base, t_start;
    FILE *metrics;
    int tty;
    int live_line; /* a live line is on the terminal */
} run;

static double elapsed(const run *r) { return r->elapsed_base + (cli_now() - r->t_start); }

static double epoch_progress(const run *r)
{
    recur_textstream_pos pos = recur_textstream_get_pos(r->stream);
    return (double)pos.epoch +
           (double)pos.offset / (double)r->o->seq_len / (double)(r->cpe > 0 ? r->cpe : 1);
}

static int save_checkpoint(run *r, const char *path)
{
    const char *names[128], *values[128];
    char storage[128][512];
    int count = 0;
    for (cli_option *o = r->options; o->name && count < 128; o++) {
        if (!(o->flags & CLI_SAVED))
            continue;
        cli_format(o, storage[count], sizeof storage[count]);
        names[count] = o->name;
        values[count] = storage[count];
        count++;
    }
    float *optim_state = NULL;
    size_t optim_count = 0;
    recur_optim_state(r->opt, &optim_state, &optim_count);
    const int lstm = recur_lm_get_config(r->lm)->cell == RECUR_CELL_LSTM;
    recur_train_state ts = {
        .step = r->step,
        .position = recur_textstream_get_pos(r->stream),
        .batch = r->o->batch,
        .seq_len = r->o->seq_len,
        .data_tokens = r->n,
        .data_hash = r->data_hash,
        .rng = r->rng,
        .optim = *recur_optim_get_config(r->opt),
        .optim_step = recur_optim_get_step(r->opt),
        .optim_state = optim_state,
        .optim_state_count = optim_count,
        .schedule = r->schedule,
        .best_val_loss = r->best_val,
        .best_step = r->best_step,
        .elapsed_s = elapsed(r),
        .h = r->h,
        .c = lstm ? r->c : NULL,
        .option_count = count,
        .option_names = names,
        .option_values = values,
    };
    return recur_checkpoint_save(path, r->lm, r->vocab, &ts);
}

static void clear_live_line(run *r)
{
    if (r->live_line) {
        fputs("\r\033[K", stderr);
        r->live_line = 0;
    }
}

/* A short sample on stderr from a newline, with an RNG of its own (seeded
 * from the seed and the step) so that sampling never changes training. */
static void print_sample(run *r)
{
    recur_lm_sampler *s = NULL;
    const int V = recur_lm_get_config(r->lm)->vocab_size;
    float *logits = malloc((size_t)V * sizeof *logits);
    if (!logits || recur_lm_sampler_create(r->lm, 1, &s)) {
        free(logits);
        return;
    }
    recur_rng rng;
    recur_rng_seed(&rng, (uint64_t)r->o->seed * 0x9e3779b97f4a7c15ull + (uint64_t)r->step);
    int32_t token = recur_vocab_lookup(r->vocab, '\n');
    if (token < 0)
        token = 0;
    clear_live_line(r);
    fprintf(stderr, "---- sample at step %" PRId64 " ----\n", r->step);
    for (int64_t i = 0; i < r->o->sample_length; i++) {
        if (recur_lm_sampler_step(s, &token, logits) ||
            recur_sample_logits(logits, V, 1.0f, 0, 1.0f, &rng, &token))
            break;
        size_t len = 0;
        const char *bytes = recur_vocab_token(r->vocab, token, &len);
        fwrite(bytes, 1, len, stderr);
    }
    fprintf(stderr, "\n---- end of sample ----\n");
    recur_lm_sampler_free(s);
    free(logits);
}

typedef struct step_report {
    double loss, val_loss, grad_norm, lr, tokens_per_s;
    int validated;
} step_report;

static void report(run *r, const step_report *s, int final_line)
{
    char eta[32] = "", took[32], line[512];
    const double now = cli_now(), spent = now - r->t_start;
    const int64_t done = r->step - r->start_step;
    double remaining = INFINITY;
    if (r->max_steps > 0 && done > 0)
        remaining = (double)(r->max_steps - r->step) * spent / (double)done;
    if (r->o->time_s > 0 && r->o->time_s - spent < remaining)
        remaining = r->o->time_s - spent;
    if (isfinite(remaining) && !final_line) {
        char left[24];
        cli_duration(remaining > 0 ? remaining : 0, left, sizeof left);
        snprintf(eta, sizeof eta, ", ETA %s", left);
    }
    cli_duration(elapsed(r), took, sizeof took);
    int used = 0;
    if (r->max_steps > 0)
        used = snprintf(line, sizeof line, "step %" PRId64 "/%" PRId64, r->step, r->max_steps);
    else
        used = snprintf(line, sizeof line, "step %" PRId64, r->step);
    /* "%.4f" for ordinary losses, "%.4g" for the huge ones of a diverging run */
    const char *fmt = fabs(s->loss) < 1e5 ? " | epoch %.2f | loss %.4f (%.3f bpc)"
                                          : " | epoch %.2f | loss %.4g (%.4g bpc)";
    used += snprintf(line + used, sizeof line - (size_t)used, fmt, epoch_progress(r), s->loss,
                     s->loss / log(2.0));
    if (isfinite(s->val_loss))
        used += snprintf(line + used, sizeof line - (size_t)used,
                         fabs(s->val_loss) < 1e5 ? " | val %.4f (%.3f bpc)"
                                                 : " | val %.4g (%.4g bpc)",
                         s->val_loss, s->val_loss / log(2.0));
    snprintf(line + used, sizeof line - (size_t)used,
             " | %.1fk tok/s | grad %.3g | lr %.3g | %s%s", s->tokens_per_s / 1000.0,
             s->grad_norm, s->lr, took, eta);
    if (r->tty) {
        fprintf(stderr, "\r\033[K%s", line);
        r->live_line = 1;
        if (s->validated || final_line) {
            fputc('\n', stderr);
            r->live_line = 0;
        }
    } else {
        fprintf(stderr, "%s\n", line);
    }
    fflush(stderr);
}

static void metrics_row(run *r, const step_report *s)
{
    if (!r->metrics)
        return;
    fprintf(r->metrics, "%" PRId64 ",%.4f,", r->step, epoch_progress(r));
    csv_number(r->metrics, "%.6f", s->loss, 0);
    csv_number(r->metrics, "%.6f", s->validated ? s->val_loss : NAN, 0);
    csv_number(r->metrics, "%.6f", s->validated ? s->val_loss / log(2.0) : NAN, 0);
    csv_number(r->metrics, "%.0f", s->tokens_per_s, 0);
    csv_number(r->metrics, "%.6g", s->grad_norm, 0);
    csv_number(r->metrics, "%.6g", s->lr, 0);
    csv_number(r->metrics, "%.2f", elapsed(r), 1);
    fflush(r->metrics);
}

static int validate(run *r, double *val_loss)
{
    size_t count = 0;
    if (cli_evaluate(r->lm, r->ids + r->train_len, r->val_len, r->o->batch, r->o->seq_len,
                     val_loss, &count))
        return cli_fail(r->cmd, "", "validation failed: %s", recur_last_error());
    return CLI_OK;
}

/* Validation bookkeeping: keeps best.safetensors. */
static int after_validation(run *r, double val_loss)
{
    if (!(val_loss < r->best_val))
        return CLI_OK;
    r->best_val = val_loss;
    r->best_step = r->step;
    if (save_checkpoint(r, r->best_path))
        return cli_fail(r->cmd, "Check the free space and permissions of the --out folder.",
                        "cannot save the best checkpoint: %s", recur_last_error());
    return CLI_OK;
}

static int save_latest(run *r)
{
    if (save_checkpoint(r, r->latest_path))
        return cli_fail(r->cmd, "Check the free space and permissions of the --out folder.",
                        "cannot save the checkpoint: %s", recur_last_error());
    r->last_saved_step = r->step;
    return CLI_OK;
}

static int stop_on_nan(run *r, const char *what, double loss)
{
    clear_live_line(r);
    char saved[4400];
    if (r->last_saved_step >= 0)
        snprintf(saved, sizeof saved, "The last good checkpoint, %s (step %" PRId64 "), is "
                 "intact: nothing was saved after it.", r->latest_path, r->last_saved_step);
    else
        snprintf(saved, sizeof saved, "No checkpoint had been saved yet.");
    fprintf(stderr, "recur train: error: %s at step %" PRId64 " (loss %g): training stopped.\n"
            "  %s\n  Try a lower --lr (now %g), gradient clipping (--clip, now %g), or "
            "--on-nan skip to skip such updates.\n", what, r->step, loss, saved, r->o->lr,
            r->o->clip);
    return CLI_FAILURE;
}

static int train_loop(run *r)
{
    train_opts *o = r->o;
    const int T = o->seq_len, B = o->batch;
    const size_t n_params = recur_lm_size(r->lm);
    float *params = recur_lm_params(r->lm), *grads = recur_lm_grads(r->lm);
    const int skip_nan = strcmp(o->on_nan, "skip") == 0;
    int consecutive_skips = 0, interrupted = 0;
    int64_t last_val_step = -1, last_log_step = -1;
    double window_tokens = 0, window_time = 0, last_live = 0;
    step_report s = {NAN, NAN, NAN, NAN, 0, 0};

    while (1) {
        if (stop_signal) {
            interrupted = 1;
            break;
        }
        if (r->max_steps > 0 && r->step >= r->max_steps)
            break;
        if (o->time_s > 0 && cli_now() - r->t_start >= o->time_s)
            break;
        const float lr = recur_schedule_lr(&r->schedule, (float)o->lr, r->step);
        int wrapped = 0;
        if (recur_textstream_next(r->stream, r->chunk, NULL, &wrapped))
            return cli_fail(r->cmd, "", "data stream: %s", recur_last_error());
        if (wrapped) {
            memset(r->h, 0, r->state_size * sizeof *r->h);
            if (r->c)
                memset(r->c, 0, r->state_size * sizeof *r->c);
        }
        const double t0 = cli_now();
        recur_lm_zero_grad(r->lm);
        double loss = NAN;
        int status = recur_lm_train_step(r->lm, r->chunk, T, B, r->h, r->c, &r->rng, &loss);
        r->step++;
        const char *bad = NULL;
        double grad_norm = NAN;
        if (status == RECUR_E_NUMERIC || (status == RECUR_OK && !isfinite(loss)))
            bad = "the loss is not finite (NaN or Inf)";
        else if (status)
            return cli_fail(r->cmd, "", "training step %" PRId64 " failed: %s", r->step,
                            recur_last_error());
        if (!bad && o->inject_nan == r->step)
            grads[0] = NAN;
        if (!bad) {
            grad_norm = recur_grad_norm(grads, n_params);
            if (!isfinite(grad_norm))
                bad = "the gradients are not finite (NaN or Inf)";
        }
        if (bad && !skip_nan)
            return stop_on_nan(r, bad, loss);
        if (bad) {
            clear_live_line(r);
            fprintf(stderr, "recur train: warning: %s at step %" PRId64 "; update skipped "
                    "(--on-nan skip) and the carried state reset.\n", bad, r->step);
            memset(r->h, 0, r->state_size * sizeof *r->h);
            if (r->c)
                memset(r->c, 0, r->state_size * sizeof *r->c);
            if (++consecutive_skips >= MAX_CONSECUTIVE_SKIPS)
                return cli_fail(r->cmd, "The model has diverged: restart from a checkpoint with "
                                "a lower --lr or with --clip.",
                                "%d steps in a row were not finite; giving up at step %" PRId64,
                                consecutive_skips, r->step);
        } else {
            consecutive_skips = 0;
            if (o->clip_value > 0)
                recur_clip_grad_value(grads, n_params, (float)o->clip_value);
            if (o->clip > 0)
                recur_clip_grad_norm(grads, n_params, o->clip, NULL);
            if (recur_optim_step(r->opt, params, grads, lr))
                return cli_fail(r->cmd, "", "optimizer step failed: %s", recur_last_error());
        }
        const double t1 = cli_now();
        window_time += t1 - t0;
        window_tokens += (double)T * (double)B;
        s.loss = loss;
        s.grad_norm = grad_norm;
        s.lr = lr;
        s.validated = 0;
        s.tokens_per_s = window_time > 0 ? window_tokens / window_time : 0;

        if (r->val_len && o->val_every > 0 && r->step % o->val_every == 0) {
            if (validate(r, &s.val_loss))
                return CLI_FAILURE;
            s.validated = 1;
            last_val_step = r->step;
            if (after_validation(r, s.val_loss))
                return CLI_FAILURE;
        }
        if (o->save_every > 0 && r->step % o->save_every == 0 && save_latest(r))
            return CLI_FAILURE;
        const int log_now = r->step % o->log_every == 0 || s.validated;
        if (log_now) {
            metrics_row(r, &s);
            last_log_step = r->step;
        }
        if (log_now || (r->tty && t1 - last_live > 0.1)) {
            report(r, &s, 0);
            last_live = t1;
        }
        if (log_now)
            window_tokens = window_time = 0;
        if (o->sample_every > 0 && r->step % o->sample_every == 0)
            print_sample(r);
    }

    if (!interrupted && r->val_len && last_val_step != r->step && r->step > r->start_step) {
        if (validate(r, &s.val_loss))
            return CLI_FAILURE;
        s.validated = 1;
        if (after_validation(r, s.val_loss))
            return CLI_FAILURE;
    }
    if (last_log_step != r->step && r->step > r->start_step) {
        metrics_row(r, &s);
        report(r, &s, 1);
    }
    clear_live_line(r);
    if (save_latest(r))
        return CLI_FAILURE;
    char took[32];
    cli_duration(elapsed(r), took, sizeof took);
    if (interrupted) {
        fprintf(stderr, "recur train: interrupted at step %" PRId64 "; saved %s.\n"
                "  Continue with: recur train --resume --out %s\n", r->step, r->latest_path,
                r->out_dir);
        return CLI_OK;
    }
    fprintf(stderr, "recur train: done at step %" PRId64 " (epoch %.2f) after %s; saved %s\n",
            r->step, epoch_progress(r), took, r->latest_path);
    if (isfinite(r->best_val))
        fprintf(stderr, "  best validation loss %.4f (%.3f bpc) at step %" PRId64 ": %s\n"
                "  Sample with: recur sample --model %s\n", r->best_val,
                r->best_val / log(2.0), r->best_step, r->best_path, r->best_path);
    else
        fprintf(stderr, "  Sample with: recur sample --model %s\n", r->latest_path);
    return CLI_OK;
}

/* ---- setup ------------------------------------------------------------------- */

/* Applies the options stored in a checkpoint under those given on the
 * command line. Frozen options may be repeated but not changed. */
static int merge_resumed_options(const char *cmd, cli_option *options,
                                 const recur_train_state *ts)
{
    const int new_stop = cli_find(options, "steps")->given || cli_find(options, "epochs")->given ||
                         cli_find(options, "time")->given;
    for (int i = 0; i < ts->option_count; i++) {
        cli_option *o = cli_find(options, ts->option_names[i]);
        if (!o || !(o->flags & CLI_SAVED)) {
            fprintf(stderr, "recur train: warning: ignoring the checkpoint's unknown option "
                    "'%s'\n", ts->option_names[i]);
            continue;
        }
        if (o->given) {
            char now[512];
            cli_format(o, now, sizeof now);
            if ((o->flags & CLI_FROZEN) && strcmp(now, ts->option_values[i]) != 0)
                return cli_usage(cmd, "--%s %s differs from the resumed run's value %s; a "
                                 "resumed run keeps its model, data walk, seed and optimizer "
                                 "(start a new run with another --out to change it)", o->name,
                                 now, ts->option_values[i]);
            continue;
        }
        if (new_stop && (strcmp(o->name, "steps") == 0 || strcmp(o->name, "epochs") == 0))
            continue;
        if (cli_set(cmd, o, ts->option_values[i]))
            return cli_fail(cmd, "The checkpoint's options are damaged; start a new run.",
                            "bad stored value for --%s", o->name);
    }
    return CLI_OK;
}

/* The double of a float's shortest decimal form (0.9f -> 0.9). */
static double float_value(float f)
{
    char text[32];
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, (double)f);
        if ((float)strtod(text, NULL) == f)
            break;
    }
    return strtod(text, NULL);
}

/* Fills the optimizer fields the user left unset with the optimizer's
 * defaults and writes the effective values back (so they are saved). */
static int resolve_optimizer(const char *cmd, train_opts *o, recur_optim_config *out)
{
    recur_optim_kind kind;
    if (recur_optim_parse(o->optimizer, &kind))
        return cli_usage(cmd, "--optimizer: %s", recur_last_error());
    recur_optim_config c = recur_optim_config_default(kind);
    c.lr = (float)o->lr;
#define TAKE(field, opt)                                                                      \
    do {                                                                                      \
        if (isnan(o->opt))                                                                    \
            o->opt = float_value(c.field);                                                    \
        else                                                                                  \
            c.field = (float)o->opt;                                                          \
    } while (0)
    TAKE(momentum, momentum);
    TAKE(dampening, dampening);
    TAKE(weight_decay, weight_decay);
    TAKE(beta1, beta1);
    TAKE(beta2, beta2);
    TAKE(eps, eps);
    TAKE(alpha, alpha);
    TAKE(lr_decay, lr_decay);
    TAKE(initial_accumulator_value, init_acc);
#undef TAKE
    c.nesterov = o->nesterov;
    c.amsgrad = o->amsgrad;
    c.centered = o->centered;
    if (recur_optim_config_check(&c))
        return cli_usage(cmd, "optimizer settings: %s", recur_last_error());
    *out = c;
    return CLI_OK;
}

static int build_schedule(run *r)
{
    train_opts *o = r->o;
    recur_schedule s = recur_schedule_default();
    if (recur_schedule_parse(o->schedule, &s.kind))
        return cli_usage(r->cmd, "--schedule: %s", recur_last_error());
    s.warmup_steps = o->warmup;
    s.step_size = o->step_size;
    s.gamma = (float)o->gamma;
    s.min_lr = (float)o->min_lr;
    if (s.kind == RECUR_SCHEDULE_COSINE) {
        s.total_steps = o->decay_steps > 0 ? o->decay_steps : r->max_steps;
        if (s.total_steps <= 0)
            return cli_usage(r->cmd, "--schedule cosine needs a length: give --decay-steps, "
                             "--steps or --epochs");
    }
    if (recur_schedule_check(&s))
        return cli_usage(r->cmd, "schedule settings: %s", recur_last_error());
    r->schedule = s;
    return CLI_OK;
}

static void free_run(run *r)
{
    if (r->metrics)
        fclose(r->metrics);
    free(r->chunk);
    free(r->h);
    free(r->c);
    recur_free(r->ids);
    recur_textstream_free(r->stream);
    recur_optim_free(r->opt);
    recur_lm_free(r->lm);
    recur_vocab_free(r->vocab);
    recur_train_state_free(r->resumed);
}

int cmd_train(int argc, char **argv)
{
    const char *cmd = "train";
    train_opts o = {
        .data = NULL, .cell = "lstm", .optimizer = "adam", .schedule = "constant", .out = NULL,
        .metrics = NULL, .on_nan = "stop", .hidden = 256, .layers = 2, .embed = 64,
        .seq_len = 100, .batch = 32, .threads = 0, .steps = 0, .epochs = 0, .time_s = 0,
        .lr = 2e-3, .momentum = NAN, .dampening = NAN, .weight_decay = NAN, .beta1 = NAN,
        .beta2 = NAN, .eps = NAN, .alpha = NAN, .lr_decay = NAN, .init_acc = NAN,
        .warmup = 0, .step_size = 1000, .decay_steps = 0, .gamma = 0.1, .min_lr = 0,
        .clip = 5, .clip_value = 0, .dropout = 0, .val_fraction = 0.1, .seed = 1,
        .val_every = 250, .sample_every = 0, .sample_length = 200, .log_every = 20,
        .save_every = 250, .inject_nan = 0};
    cli_option options[] = {
        {"data", CLI_STRING, &o.data, "FILE", "training text (UTF-8, or any bytes with "
         "--byte-level)", 0, 0, NULL, "required", SAVED, 0},
        {"out", CLI_STRING, &o.out, "DIR", "run folder: latest.safetensors, best.safetensors, "
         "metrics.csv", 0, 0, NULL, "runs/<data file name>", 0, 0},
        {"resume", CLI_FLAG, &o.resume, NULL, "continue the run in --out exactly where "
         "latest.safetensors left it", 0, 0, NULL, NULL, 0, 0},
        {"overwrite", CLI_FLAG, &o.overwrite, NULL, "start a new run even if --out already "
         "holds one", 0, 0, NULL, NULL, 0, 0},
        {"cell", CLI_CHOICE, &o.cell, "CELL", "recurrent cell: lstm, gru, rnn_tanh, rnn_relu", 0,
         0, cell_choices, NULL, FROZEN, 0},
        {"hidden", CLI_INT, &o.hidden, "N", "hidden units per layer", 1, 65536, NULL, NULL,
         FROZEN, 0},
        {"layers", CLI_INT, &o.layers, "N", "recurrent layers", 1, 64, NULL, NULL, FROZEN, 0},
        {"embed", CLI_INT, &o.embed, "N", "embedding size", 1, 65536, NULL, NULL, FROZEN, 0},
        {"dropout", CLI_DOUBLE, &o.dropout, "P", "dropout between recurrent layers", 0, 0.99,
         NULL, NULL, FROZEN, 0},
        {"byte-level", CLI_FLAG, &o.byte_level, NULL, "use the 256 byte values as the "
         "vocabulary instead of the text's characters", 0, 0, NULL, NULL, FROZEN, 0},
        {"seq-len", CLI_INT, &o.seq_len, "T", "steps of truncated backpropagation per chunk", 1,
         1 << 20, NULL, NULL, FROZEN, 0},
        {"batch", CLI_INT, &o.batch, "B", "parallel streams over the text", 1, 1 << 16, NULL,
         NULL, FROZEN, 0},
        {"steps", CLI_INT64, &o.steps, "N", "stop after N steps in all (counting those before "
         "--resume)", 0, 9e18, NULL, "1 epoch when no --steps, --epochs or --time is given",
         SAVED, 0},
        {"epochs", CLI_INT64, &o.epochs, "N", "stop after N passes over the training text", 0,
         1e9, NULL, "see --steps", SAVED, 0},
        {"time", CLI_DOUBLE, &o.time_s, "SECONDS", "stop after this many seconds of this "
         "invocation", 0, 1e9, NULL, "no limit", 0, 0},
        {"optimizer", CLI_CHOICE, &o.optimizer, "NAME", "adam, adamw, sgd, rmsprop or adagrad",
         0, 0, optim_choices, NULL, FROZEN, 0},
        {"lr", CLI_DOUBLE, &o.lr, "RATE", "base learning rate", 0, BIG, NULL, NULL, SAVED, 0},
        {"momentum", CLI_DOUBLE, &o.momentum, "M", "sgd, rmsprop: momentum", 0, BIG, NULL,
         OPTIM_DEFAULT " (0)", FROZEN, 0},
        {"dampening", CLI_DOUBLE, &o.dampening, "D", "sgd: dampening of the momentum", 0, BIG,
         NULL, OPTIM_DEFAULT " (0)", FROZEN, 0},
        {"nesterov", CLI_FLAG, &o.nesterov, NULL, "sgd: Nesterov momentum", 0, 0, NULL, NULL,
         FROZEN, 0},
        {"weight-decay", CLI_DOUBLE, &o.weight_decay, "W", "L2 penalty (adamw: decoupled decay)",
         0, BIG, NULL, OPTIM_DEFAULT " (0; adamw 0.01)", FROZEN, 0},
        {"beta1", CLI_DOUBLE, &o.beta1, "B1", "adam, adamw: decay of the first moment", 0, 1,
         NULL, OPTIM_DEFAULT " (0.9)", FROZEN, 0},
        {"beta2", CLI_DOUBLE, &o.beta2, "B2", "adam, adamw: decay of the second moment", 0, 1,
         NULL, OPTIM_DEFAULT " (0.999)", FROZEN, 0},
        {"eps", CLI_DOUBLE, &o.eps, "E", "term added to the denominator", 0, BIG, NULL,
         OPTIM_DEFAULT " (1e-8; adagrad 1e-10)", FROZEN, 0},
        {"amsgrad", CLI_FLAG, &o.amsgrad, NULL, "adam, adamw: AMSGrad variant", 0, 0, NULL, NULL,
         FROZEN, 0},
        {"alpha", CLI_DOUBLE, &o.alpha, "A", "rmsprop: smoothing constant", 0, 1, NULL,
         OPTIM_DEFAULT " (0.99)", FROZEN, 0},
        {"centered", CLI_FLAG, &o.centered, NULL, "rmsprop: normalise by the variance", 0, 0,
         NULL, NULL, FROZEN, 0},
        {"lr-decay", CLI_DOUBLE, &o.lr_decay, "D", "adagrad: learning-rate decay", 0, BIG, NULL,
         OPTIM_DEFAULT " (0)", FROZEN, 0},
        {"initial-accumulator", CLI_DOUBLE, &o.init_acc, "V", "adagrad: initial sum of squares",
         0, BIG, NULL, OPTIM_DEFAULT " (0)", FROZEN, 0},
        {"schedule", CLI_CHOICE, &o.schedule, "KIND", "learning-rate schedule: constant, step "
         "(times --gamma every --step-size steps) or cosine (to --min-lr)", 0, 0,
         schedule_choices, NULL, SAVED, 0},
        {"warmup", CLI_INT64, &o.warmup, "N", "linear warm-up steps from 0 to --lr", 0, 9e18,
         NULL, NULL, SAVED, 0},
        {"step-size", CLI_INT64, &o.step_size, "N", "step schedule: steps between decays", 1,
         9e18, NULL, NULL, SAVED, 0},
        {"gamma", CLI_DOUBLE, &o.gamma, "G", "step schedule: factor of each decay", 0, BIG,
         NULL, NULL, SAVED | CLI_OPEN_MIN, 0},
        {"decay-steps", CLI_INT64, &o.decay_steps, "N", "cosine schedule: length in steps "
         "(warm-up included)", 0, 9e18, NULL, "the run's step limit", SAVED, 0},
        {"min-lr", CLI_DOUBLE, &o.min_lr, "RATE", "cosine schedule: final learning rate", 0,
         BIG, NULL, NULL, SAVED, 0},
        {"clip", CLI_DOUBLE, &o.clip, "NORM", "clip the gradients' global 2-norm to NORM (0: "
         "off)", 0, BIG, NULL, NULL, SAVED, 0},
        {"clip-value", CLI_DOUBLE, &o.clip_value, "V", "clamp every gradient to [-V, V] (0: "
         "off)", 0, BIG, NULL, NULL, SAVED, 0},
        {"seed", CLI_INT64, &o.seed, "S", "random seed (weights, dropout)", 0, 9e18, NULL, NULL,
         FROZEN, 0},
        {"val-fraction", CLI_DOUBLE, &o.val_fraction, "F", "share of the text held out for "
         "validation (its tail; 0: none)", 0, 0.9, NULL, NULL, FROZEN, 0},
        {"val-every", CLI_INT64, &o.val_every, "N", "validate every N steps (0: only at the "
         "end)", 0, 9e18, NULL, NULL, SAVED, 0},
        {"save-every", CLI_INT64, &o.save_every, "N", "save latest.safetensors every N steps "
         "(0: only at the end)", 0, 9e18, NULL, NULL, SAVED, 0},
        {"sample-every", CLI_INT64, &o.sample_every, "N", "print a sample every N steps (0: "
         "never)", 0, 9e18, NULL, NULL, SAVED, 0},
        {"sample-length", CLI_INT64, &o.sample_length, "N", "characters per sample", 1, 1e9,
         NULL, NULL, SAVED, 0},
        {"log-every", CLI_INT64, &o.log_every, "N", "progress line and metrics row every N "
         "steps", 1, 9e18, NULL, NULL, SAVED, 0},
        {"metrics", CLI_STRING, &o.metrics, "FILE", "CSV metrics file", 0, 0, NULL,
         "DIR/metrics.csv", 0, 0},
        {"on-nan", CLI_CHOICE, &o.on_nan, "ACTION", "on a NaN/Inf loss or gradient: stop "
         "(without saving) or skip the update", 0, 0, nan_choices, NULL, SAVED, 0},
        {"threads", CLI_INT, &o.threads, "N", "threads for the matrix products (0: all cores)",
         0, 4096, NULL, "all cores", 0, 0},
        {"inject-nan", CLI_INT64, &o.inject_nan, "STEP", "for testing: make the gradients of "
         "step STEP NaN", 0, 9e18, NULL, "off", 0, 0},
        CLI_END};
    int status = cli_parse(cmd, options, argc, argv, "--data FILE [options]",
                           "Trains a character-level language model on FILE (the last "
                           "--val-fraction held out for\nvalidation), writing checkpoints and "
                           "metrics to --out. Ctrl-C saves and stops;\n--resume continues "
                           "exactly.");
    if (status == CLI_HELP_SHOWN)
        return CLI_OK;
    if (status)
        return status;

    run r;
    memset(&r, 0, sizeof r);
    r.cmd = cmd;
    r.o = &o;
    r.options = options;
    r.best_val = INFINITY;
    r.last_saved_step = -1;
    int rc = CLI_FAILURE;

    log_command_line(argc, argv);
    if (!o.out && !o.data)
        return cli_usage(cmd, o.resume ? "--resume needs --out DIR (the folder of the run)"
                                       : "--data FILE is required");
    if (o.out)
        snprintf(r.out_dir, sizeof r.out_dir, "%s", o.out);
    else
        default_out(o.data, r.out_dir, sizeof r.out_dir);
    snprintf(r.latest_path, sizeof r.latest_path, "%s/latest.safetensors", r.out_dir);
    snprintf(r.best_path, sizeof r.best_path, "%s/best.safetensors", r.out_dir);

    if (o.resume) {
        if (recur_checkpoint_load(r.latest_path, &r.lm, &r.vocab, &r.resumed)) {
            rc = cli_fail(cmd, "--resume continues the run whose folder is --out; start a new run "
                          "without --resume.", "cannot resume: %s", recur_last_error());
            goto done;
        }
        if (!r.resumed) {
            rc = cli_fail(cmd, "It holds a model only (e.g. exported from PyTorch); start a new "
                          "run, or fine-tune into another --out.", "cannot resume: %s has no "
                          "training state", r.latest_path);
            goto done;
        }
        if ((rc = merge_resumed_options(cmd, options, r.resumed)))
            goto done;
        rc = CLI_FAILURE;
        if (!o.data) {
            rc = cli_fail(cmd, "", "the checkpoint does not name its training data; pass --data");
            goto done;
        }
    } else {
        if (!o.data) {
            rc = cli_usage(cmd, "--data FILE is required");
            goto done;
        }
        if (file_exists(r.latest_path) && !o.overwrite) {
            rc = cli_fail(cmd, "Continue it with --resume, choose another --out, or pass "
                          "--overwrite to start again.", "%s already holds a run (%s)",
                          r.out_dir, r.latest_path);
            goto done;
        }
    }
    if (o.metrics)
        snprintf(r.metrics_path, sizeof r.metrics_path, "%s", o.metrics);
    else
        snprintf(r.metrics_path, sizeof r.metrics_path, "%s/metrics.csv", r.out_dir);

    recur_optim_config oc;
    if ((rc = resolve_optimizer(cmd, &o, &oc)))
        goto done;
    rc = CLI_FAILURE;
    recur_set_threads(o.threads);
    fprintf(stderr, "recur train: seed %" PRId64 "\n", o.seed);

    /* Data: the vocabulary comes from the whole text (or the checkpoint). */
    char *text = NULL;
    size_t len = 0;
    if (recur_text_read_file(o.data, &text, &len)) {
        cli_fail(cmd, "", "%s", recur_last_error());
        goto done;
    }
    if (!r.vocab &&
        recur_vocab_build(text, len, o.byte_level ? RECUR_VOCAB_BYTES : RECUR_VOCAB_CHARS,
                          &r.vocab)) {
        cli_fail(cmd, o.byte_level ? "" : "Fix the file's encoding, or pass --byte-level to train "
                 "on raw bytes.", "%s: %s", o.data, recur_last_error());
        recur_free(text);
        goto done;
    }
    status = recur_vocab_encode(r.vocab, text, len, &r.ids, &r.n);
    recur_free(text);
    if (status) {
        cli_fail(cmd, "The data differs from the text this run was trained on.", "%s: %s",
                 o.data, recur_last_error());
        goto done;
    }
    r.data_hash = recur_checkpoint_data_hash(r.ids, r.n);
    if (r.resumed && (r.resumed->data_tokens != r.n || r.resumed->data_hash != r.data_hash)) {
        cli_fail(cmd, "Resume with the same --data file; start a new run for new data.",
                 "%s is not the text this run was trained on (%zu tokens, checkpoint: %" PRIu64
                 " tokens%s)", o.data, r.n, r.resumed->data_tokens,
                 r.resumed->data_tokens == r.n ? ", different content" : "");
        goto done;
    }
    if (recur_text_split(r.n, o.val_fraction, o.seq_len, &r.train_len, &r.val_len)) {
        cli_fail(cmd, "Use a longer text, a smaller --seq-len or a different --val-fraction.",
                 "%s", recur_last_error());
        goto done;
    }
    if (recur_textstream_create(r.ids, r.train_len, o.batch, o.seq_len, &r.stream)) {
        cli_fail(cmd, "Use a smaller --batch or --seq-len, or a longer text.", "%s",
                 recur_last_error());
        goto done;
    }
    r.cpe = recur_textstream_chunks_per_epoch(r.stream);

    /* Model, optimizer, RNG, position and carried state. */
    if (!r.lm) {
        recur_lm_config cfg = recur_lm_config_default();
        recur_cell_parse(o.cell, &cfg.cell);
        cfg.vocab_size = recur_vocab_size(r.vocab);
        cfg.embedding_size = o.embed;
        cfg.hidden_size = o.hidden;
        cfg.num_layers = o.layers;
        cfg.dropout = (float)o.dropout;
        if (recur_lm_create(&cfg, &r.lm)) {
            cli_fail(cmd, "", "cannot create the model: %s", recur_last_error());
            goto done;
        }
        recur_rng_seed(&r.rng, (uint64_t)o.seed);
        recur_lm_init(r.lm, &r.rng);
        if (recur_optim_create(&oc, recur_lm_size(r.lm), &r.opt)) {
            cli_fail(cmd, "", "cannot create the optimizer: %s", recur_last_error());
            goto done;
        }
    } else {
        const recur_train_state *ts = r.resumed;
        if (ts->batch != o.batch || ts->seq_len != o.seq_len) {
            cli_fail(cmd, "", "the checkpoint's stream has batch %d and seq_len %d, the options "
                     "say %d and %d", ts->batch, ts->seq_len, o.batch, o.seq_len);
            goto done;
        }
        if (recur_train_state_make_optim(ts, recur_lm_size(r.lm), &r.opt) ||
            recur_textstream_set_pos(r.stream, &ts->position)) {
            cli_fail(cmd, "", "cannot restore the training state: %s", recur_last_error());
            goto done;
        }
        r.rng = ts->rng;
        r.step = ts->step;
        r.best_val = ts->best_val_loss;
        r.best_step = ts->best_step;
        r.elapsed_base = ts->elapsed_s;
        r.last_saved_step = ts->step;
    }
    const recur_lm_config *cfg = recur_lm_get_config(r.lm);
    r.state_size = recur_lm_state_size(r.lm, o.batch);
    r.h = calloc(r.state_size, sizeof *r.h);
    r.c = cfg->cell == RECUR_CELL_LSTM ? calloc(r.state_size, sizeof *r.c) : NULL;
    r.chunk = malloc((size_t)(o.seq_len + 1) * (size_t)o.batch * sizeof *r.chunk);
    if (!r.h || !r.chunk || (cfg->cell == RECUR_CELL_LSTM && !r.c)) {
        cli_fail(cmd, "", "out of memory");
        goto done;
    }
    if (r.resumed) {
        memcpy(r.h, r.resumed->h, r.state_size * sizeof *r.h);
        if (r.c)
            memcpy(r.c, r.resumed->c, r.state_size * sizeof *r.c);
    }

    /* Stop criteria: whichever of --steps, --epochs, --time comes first. */
    r.max_steps = 0;
    if (o.steps > 0)
        r.max_steps = o.steps;
    if (o.epochs > 0 && (r.max_steps == 0 || o.epochs * r.cpe < r.max_steps))
        r.max_steps = o.epochs * r.cpe;
    if (o.steps == 0 && o.epochs == 0 && o.time_s == 0)
        r.max_steps = r.cpe;
    if ((rc = build_schedule(&r)))
        goto done;
    rc = CLI_FAILURE;

    if (mkdir_p(r.out_dir) != 0) {
        cli_fail(cmd, "Choose another --out.", "cannot create the folder %s: %s", r.out_dir,
                 strerror(errno));
        goto done;
    }
    r.metrics = open_metrics(r.metrics_path, r.resumed != NULL, r.step);
    if (!r.metrics) {
        cli_fail(cmd, "Choose another --metrics file.", "cannot write %s: %s", r.metrics_path,
                 strerror(errno));
        goto done;
    }

    char limit[64] = "";
    if (r.max_steps > 0)
        snprintf(limit, sizeof limit, "%" PRId64 " steps", r.max_steps);
    fprintf(stderr, "recur train: %s %s, %d layer%s of %d, embedding %d, %d %s, %zu parameters; "
            "dropout %g\n", r.resumed ? "resuming" : "model", recur_cell_name(cfg->cell),
            cfg->num_layers, cfg->num_layers == 1 ? "" : "s", cfg->hidden_size,
            cfg->embedding_size, cfg->vocab_size,
            recur_vocab_get_kind(r.vocab) == RECUR_VOCAB_BYTES ? "bytes" : "characters",
            recur_lm_size(r.lm), cfg->dropout);
    fprintf(stderr, "recur train: data %s: %zu training + %zu validation tokens; batch %d x "
            "seq-len %d, %" PRId64 " steps per epoch; %s lr %g, clip %g; %d thread%s (%s)\n",
            o.data, r.train_len, r.val_len, o.batch, o.seq_len, r.cpe, o.optimizer, o.lr, o.clip,
            recur_get_threads(), recur_get_threads() == 1 ? "" : "s", recur_blas_backend());
    fprintf(stderr, "recur train: %s at step %" PRId64 "%s%s%s; writing to %s\n",
            r.resumed ? "continuing" : "starting", r.step, limit[0] ? ", stopping at " : "",
            limit, o.time_s > 0 ? " or after --time" : "", r.out_dir);

    r.tty = isatty(STDERR_FILENO);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C kills at once (saves are atomic) */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    r.start_step = r.step;
    r.t_start = cli_now();
    rc = train_loop(&r);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
done:
    free_run(&r);
    return rc;
}
