/* trainer.c - the training loop shared by the training commands
 * (trainer.h describes the API and the order of the calls).
 *
 * It owns what does not depend on the model or the data: the training
 * options and their merging on --resume, the optimizer with its moments,
 * the learning-rate schedule, clipping, NaN/Inf handling (stop without
 * saving, or skip the update), the stop limits (--steps, --epochs, --time,
 * Ctrl-C), the progress line (live on a terminal, periodic lines
 * otherwise), the metrics CSV, validation bookkeeping with best.safetensors,
 * latest.safetensors every --save-every steps and at the end, and the
 * trainer's part of the checkpointed training state (recur_train_state).
 * The command supplies one batch's gradient, the epoch position,
 * validation and the checkpoint writer through trainer_task. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <threads.h>
#include <unistd.h>

#include "dist.h"
#include "trainer.h"

/* --on-nan skip gives up after this many non-finite steps in a row. */
#define MAX_CONSECUTIVE_SKIPS 100
/* Options stored in a checkpoint, at most. */
#define MAX_SAVED_OPTIONS 128

/* Ctrl-C and SIGTERM. trainer_signals_init (main, before any other thread
 * exists) blocks both in every thread and takes them in a thread of their
 * own with sigwait, so no handler ever interrupts the computation: a
 * handler run inside the matrix library's kernels corrupted its heap now
 * and then (tests/test_cli's Ctrl-C case failed in about 1 run of 10).
 * While a training loop runs, the first signal asks it to stop (it saves
 * and ends); otherwise, and on a second signal, the signal's default
 * action ends the process at once (saves are atomic). Without the waiting
 * thread, trainer_run falls back to a handler. */
static atomic_int stop_signal, training_active, waiter_running;

static void on_signal(int sig) { atomic_store(&stop_signal, sig); }

static void stop_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
}

static int signal_waiter(void *arg)
{
    (void)arg;
    sigset_t set;
    stop_signals(&set);
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0)
            continue;
        int none = 0;
        if (atomic_load(&training_active) && atomic_compare_exchange_strong(&stop_signal, &none, sig))
            continue;
        sigset_t one;
        sigemptyset(&one);
        sigaddset(&one, sig);
        signal(sig, SIG_DFL);
        pthread_sigmask(SIG_UNBLOCK, &one, NULL);
        raise(sig); /* to this thread, where it is not blocked: the default action */
    }
    return 0;
}

void trainer_signals_init(void)
{
    sigset_t set;
    stop_signals(&set);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        return;
    thrd_t waiter;
    if (thrd_create(&waiter, signal_waiter, NULL) != thrd_success) {
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
        return;
    }
    thrd_detach(waiter);
    atomic_store(&waiter_running, 1);
}

static const char *const optim_choices[] = {"adam", "adamw", "sgd", "rmsprop", "adagrad", NULL};
static const char *const schedule_choices[] = {"constant", "step", "cosine", NULL};
static const char *const nan_choices[] = {"stop", "skip", NULL};
static const char *const matmul_choices[] = {"f32", "bf16", NULL};

#define BIG 1e300
#define SAVED CLI_SAVED
#define FROZEN (CLI_SAVED | CLI_FROZEN)
#define OPTIM_DEFAULT "the optimizer's"

struct trainer {
    const char *cmd;
    trainer_options *o;
    cli_option *options;
    trainer_task task;
    char out_dir[4096];
    char latest_path[4200], best_path[4200], metrics_path[4200];
    const recur_train_state *resumed; /* borrowed until trainer_start */
    int was_resumed;
    recur_optim_config optim_config;
    recur_optim *opt;
    recur_schedule schedule;
    recur_rng rng;
    float *ema;  /* [n_params] the average of the weights (--ema), or NULL */
    int ema_on;  /* it has started (from --ema-start) */
    int64_t step, start_step, max_steps, best_step, last_saved_step;
    double best_val, elapsed_base, t_start;
    FILE *metrics;
    int tty;
    int live_line; /* a live line is on the terminal */
    int dist_agreed; /* MPI: every rank leaves by the same decision (dist_finish) */
};

/* ---- options ---------------------------------------------------------------- */

void trainer_options_default(trainer_options *o)
{
    *o = (trainer_options){
        .steps = 0, .epochs = 0, .time_s = 0, .optimizer = "adam", .lr = 2e-3,
        .momentum = NAN, .dampening = NAN, .weight_decay = NAN, .beta1 = NAN, .beta2 = NAN,
        .eps = NAN, .alpha = NAN, .lr_decay = NAN, .init_acc = NAN, .nesterov = 0,
        .amsgrad = 0, .centered = 0, .schedule = "constant", .warmup = 0, .step_size = 1000,
        .decay_steps = 0, .gamma = 0.1, .min_lr = 0, .clip = 5, .clip_value = 0,
        .ema = 0, .ema_start = 0,
        .on_nan = "stop", .inject_nan = 0, .seed = 1, .threads = 0, .matmul = "f32",
        .out = NULL,
        .metrics = NULL, .resume = 0, .overwrite = 0, .val_every = 250, .save_every = 250,
        .log_every = 20, .out_default_text = "runs/<data file name>"};
}

int trainer_add_options(cli_option *table, int capacity, trainer_options *o)
{
    const cli_option entries[] = {
        {"out", CLI_STRING, &o->out, "DIR", "run folder: latest.safetensors, best.safetensors, "
         "metrics.csv", 0, 0, NULL, o->out_default_text, 0, 0},
        {"resume", CLI_FLAG, &o->resume, NULL, "continue the run in --out exactly where "
         "latest.safetensors left it", 0, 0, NULL, NULL, 0, 0},
        {"overwrite", CLI_FLAG, &o->overwrite, NULL, "start a new run even if --out already "
         "holds one", 0, 0, NULL, NULL, 0, 0},
        {"steps", CLI_INT64, &o->steps, "N", "stop after N steps in all (counting those before "
         "--resume)", 0, 9e18, NULL, "1 epoch when no --steps, --epochs or --time is given",
         SAVED, 0},
        {"epochs", CLI_INT64, &o->epochs, "N", "stop after N passes over the training data", 0,
         1e9, NULL, "see --steps", SAVED, 0},
        {"time", CLI_DOUBLE, &o->time_s, "SECONDS", "stop after this many seconds of this "
         "invocation", 0, 1e9, NULL, "no limit", 0, 0},
        {"optimizer", CLI_CHOICE, &o->optimizer, "NAME", "adam, adamw, sgd, rmsprop or adagrad",
         0, 0, optim_choices, NULL, FROZEN, 0},
        {"lr", CLI_DOUBLE, &o->lr, "RATE", "base learning rate", 0, BIG, NULL, NULL, SAVED, 0},
        {"momentum", CLI_DOUBLE, &o->momentum, "M", "sgd, rmsprop: momentum", 0, BIG, NULL,
         OPTIM_DEFAULT " (0)", FROZEN, 0},
        {"dampening", CLI_DOUBLE, &o->dampening, "D", "sgd: dampening of the momentum", 0, BIG,
         NULL, OPTIM_DEFAULT " (0)", FROZEN, 0},
        {"nesterov", CLI_FLAG, &o->nesterov, NULL, "sgd: Nesterov momentum", 0, 0, NULL, NULL,
         FROZEN, 0},
        {"weight-decay", CLI_DOUBLE, &o->weight_decay, "W", "L2 penalty (adamw: decoupled "
         "decay)", 0, BIG, NULL, OPTIM_DEFAULT " (0; adamw 0.01)", FROZEN, 0},
        {"beta1", CLI_DOUBLE, &o->beta1, "B1", "adam, adamw: decay of the first moment", 0, 1,
         NULL, OPTIM_DEFAULT " (0.9)", FROZEN, 0},
        {"beta2", CLI_DOUBLE, &o->beta2, "B2", "adam, adamw: decay of the second moment", 0, 1,
         NULL, OPTIM_DEFAULT " (0.999)", FROZEN, 0},
        {"eps", CLI_DOUBLE, &o->eps, "E", "term added to the denominator", 0, BIG, NULL,
         OPTIM_DEFAULT " (1e-8; adagrad 1e-10)", FROZEN, 0},
        {"amsgrad", CLI_FLAG, &o->amsgrad, NULL, "adam, adamw: AMSGrad variant", 0, 0, NULL,
         NULL, FROZEN, 0},
        {"alpha", CLI_DOUBLE, &o->alpha, "A", "rmsprop: smoothing constant", 0, 1, NULL,
         OPTIM_DEFAULT " (0.99)", FROZEN, 0},
        {"centered", CLI_FLAG, &o->centered, NULL, "rmsprop: normalise by the variance", 0, 0,
         NULL, NULL, FROZEN, 0},
        {"lr-decay", CLI_DOUBLE, &o->lr_decay, "D", "adagrad: learning-rate decay", 0, BIG, NULL,
         OPTIM_DEFAULT " (0)", FROZEN, 0},
        {"initial-accumulator", CLI_DOUBLE, &o->init_acc, "V", "adagrad: initial sum of "
         "squares", 0, BIG, NULL, OPTIM_DEFAULT " (0)", FROZEN, 0},
        {"schedule", CLI_CHOICE, &o->schedule, "KIND", "learning-rate schedule: constant, step "
         "(times --gamma every --step-size steps) or cosine (to --min-lr)", 0, 0,
         schedule_choices, NULL, SAVED, 0},
        {"warmup", CLI_INT64, &o->warmup, "N", "linear warm-up steps from 0 to --lr", 0, 9e18,
         NULL, NULL, SAVED, 0},
        {"step-size", CLI_INT64, &o->step_size, "N", "step schedule: steps between decays", 1,
         9e18, NULL, NULL, SAVED, 0},
        {"gamma", CLI_DOUBLE, &o->gamma, "G", "step schedule: factor of each decay", 0, BIG,
         NULL, NULL, SAVED | CLI_OPEN_MIN, 0},
        {"decay-steps", CLI_INT64, &o->decay_steps, "N", "cosine schedule: length in steps "
         "(warm-up included)", 0, 9e18, NULL, "the run's step limit", SAVED, 0},
        {"min-lr", CLI_DOUBLE, &o->min_lr, "RATE", "cosine schedule: final learning rate", 0,
         BIG, NULL, NULL, SAVED, 0},
        {"clip", CLI_DOUBLE, &o->clip, "NORM", "clip the gradients' global 2-norm to NORM (0: "
         "off)", 0, BIG, NULL, NULL, SAVED, 0},
        {"clip-value", CLI_DOUBLE, &o->clip_value, "V", "clamp every gradient to [-V, V] (0: "
         "off)", 0, BIG, NULL, NULL, SAVED, 0},
        {"ema", CLI_DOUBLE, &o->ema, "DECAY", "average the weights: an exponential moving "
         "average with this decay (e.g. 0.999) is validated and saved as the model (0: off)", 0,
         1, NULL, NULL, SAVED | CLI_OPEN_MAX, 0},
        {"ema-start", CLI_INT64, &o->ema_start, "STEP", "--ema: start the average at this step",
         0, 9e18, NULL, NULL, SAVED, 0},
        {"seed", CLI_INT64, &o->seed, "S", "random seed (weights, dropout)", 0, 9e18, NULL,
         NULL, FROZEN, 0},
        {"val-every", CLI_INT64, &o->val_every, "N", "validate every N steps (0: only at the "
         "end)", 0, 9e18, NULL, NULL, SAVED, 0},
        {"save-every", CLI_INT64, &o->save_every, "N", "save latest.safetensors every N steps "
         "(0: only at the end)", 0, 9e18, NULL, NULL, SAVED, 0},
        {"keep-every", CLI_INT64, &o->keep_every, "N", "also keep the checkpoint of every N-th "
         "step as step-NNNNNNNN.safetensors in --out, e.g. for checkpoint averaging (0: off)",
         0, 9e18, NULL, NULL, SAVED, 0},
        {"log-every", CLI_INT64, &o->log_every, "N", "progress line and metrics row every N "
         "steps", 1, 9e18, NULL, NULL, SAVED, 0},
        {"metrics", CLI_STRING, &o->metrics, "FILE", "CSV metrics file", 0, 0, NULL,
         "DIR/metrics.csv", 0, 0},
        {"on-nan", CLI_CHOICE, &o->on_nan, "ACTION", "on a NaN/Inf loss or gradient: stop "
         "(without saving) or skip the update", 0, 0, nan_choices, NULL, SAVED, 0},
        {"threads", CLI_INT, &o->threads, "N", "threads for the matrix products (0: all cores)",
         0, 4096, NULL, "all cores", 0, 0},
        {"matmul", CLI_CHOICE, &o->matmul, "PRECISION", "f32, or bf16: the large matrix "
         "products round their inputs to bfloat16 and accumulate in float (mixed-precision "
         "training, measured 1.2-1.3x as fast; needs a CPU with AVX512-BF16)", 0, 0,
         matmul_choices, NULL, 0, 0},
        {"inject-nan", CLI_INT64, &o->inject_nan, "STEP", "for testing: make the gradients of "
         "step STEP NaN", 0, 9e18, NULL, "off", 0, 0},
    };
    const int count = (int)(sizeof entries / sizeof entries[0]);
    if (!table || capacity < count)
        return -1;
    memcpy(table, entries, sizeof entries);
    /* MPI: --mpi-bucket, --mpi-timeout (builds with RECUR_MPI only) */
    int mpi_count = dist_add_options(table + count, capacity - count);
    return mpi_count < 0 ? -1 : count + mpi_count;
}

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

/* "recur <cmd>: command line: recur <cmd> <args>", quoting what a shell
 * would not read back as is. */
static void log_command_line(const char *cmd, int argc, char **argv)
{
    fprintf(stderr, "recur %s: command line: recur %s", cmd, cmd);
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
static FILE *open_metrics(const char *path, const char *header, int resume, int64_t step)
{
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
    if (!isnan(x))
        fprintf(f, fmt, x);
    fputs(last ? "\n" : ",", f);
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

/* ---- setup ------------------------------------------------------------------- */

int trainer_create(const char *cmd, cli_option *options, trainer_options *o, int argc,
                   char **argv, trainer **out)
{
    *out = NULL;
    trainer *t = calloc(1, sizeof *t);
    if (!t)
        return cli_fail(cmd, "", "out of memory");
    t->cmd = cmd;
    t->o = o;
    t->options = options;
    t->best_val = INFINITY;
    t->last_saved_step = -1;
    *out = t;
    /* MPI: join the job when started by mpirun; rank 0 alone talks */
    if (dist_init(cmd))
        return CLI_FAILURE;
    if (dist_is_main())
        log_command_line(cmd, argc, argv);
    return CLI_OK;
}

int trainer_open_run(trainer *t, const char *default_out)
{
    const trainer_options *o = t->o;
    if (!o->out && !default_out)
        return cli_usage(t->cmd, "--resume needs --out DIR (the folder of the run)");
    snprintf(t->out_dir, sizeof t->out_dir, "%s", o->out ? o->out : default_out);
    snprintf(t->latest_path, sizeof t->latest_path, "%s/latest.safetensors", t->out_dir);
    snprintf(t->best_path, sizeof t->best_path, "%s/best.safetensors", t->out_dir);
    if (!o->resume && file_exists(t->latest_path) && !o->overwrite)
        return cli_fail(t->cmd, "Continue it with --resume, choose another --out, or pass "
                        "--overwrite to start again.", "%s already holds a run (%s)",
                        t->out_dir, t->latest_path);
    return CLI_OK;
}

/* Applies the options stored in a checkpoint under those given on the
 * command line. Frozen options may be repeated but not changed. */
int trainer_resume(trainer *t, const recur_train_state *ts)
{
    const char *cmd = t->cmd;
    if (!ts)
        return cli_fail(cmd, "It holds a model only (e.g. exported from PyTorch); start a new "
                        "run, or fine-tune into another --out.", "cannot resume: %s has no "
                        "training state", t->latest_path);
    cli_option *options = t->options;
    const int new_stop = cli_find(options, "steps")->given ||
                         cli_find(options, "epochs")->given || cli_find(options, "time")->given;
    int saved_ranks = 1;
    for (int i = 0; i < ts->option_count; i++) {
        if (strcmp(ts->option_names[i], DIST_RANKS_OPTION) == 0) {
            saved_ranks = atoi(ts->option_values[i]);
            continue;
        }
        cli_option *o = cli_find(options, ts->option_names[i]);
        if (!o || !(o->flags & CLI_SAVED)) {
            fprintf(stderr, "recur %s: warning: ignoring the checkpoint's unknown option '%s'\n",
                    cmd, ts->option_names[i]);
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
    /* MPI: a run continues with the number of ranks that made it (their
     * streams and carried state split the batch) */
    if (saved_ranks != dist_size())
        return cli_fail(cmd, "Resume with the same number of processes (mpirun -np N), or "
                        "start a new run.", "%s was trained by %d process%s; this run has %d",
                        t->latest_path, saved_ranks, saved_ranks == 1 ? "" : "es",
                        dist_size());
    t->resumed = ts;
    t->was_resumed = 1;
    return CLI_OK;
}

/* Fills the optimizer fields the user left unset with the optimizer's
 * defaults and writes the effective values back (so they are saved). */
static int resolve_optimizer(trainer *t)
{
    trainer_options *o = t->o;
    recur_optim_kind kind;
    if (recur_optim_parse(o->optimizer, &kind))
        return cli_usage(t->cmd, "--optimizer: %s", recur_last_error());
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
        return cli_usage(t->cmd, "optimizer settings: %s", recur_last_error());
    t->optim_config = c;
    return CLI_OK;
}

int trainer_prepare(trainer *t)
{
    int rc = resolve_optimizer(t);
    if (rc)
        return rc;
    if (t->o->metrics)
        snprintf(t->metrics_path, sizeof t->metrics_path, "%s", t->o->metrics);
    else
        snprintf(t->metrics_path, sizeof t->metrics_path, "%s/metrics.csv", t->out_dir);
    /* MPI: ranks on one machine share its cores */
    recur_set_threads(t->o->threads ? t->o->threads : dist_default_threads());
    if (recur_set_matmul_precision(strcmp(t->o->matmul, "bf16") == 0 ? RECUR_PRECISION_BF16
                                                                      : RECUR_PRECISION_F32))
        return cli_fail(t->cmd, "leave out --matmul bf16 to train in float.", "--matmul bf16: %s",
                        recur_last_error());
    if (dist_is_main())
        fprintf(stderr, "recur %s: seed %" PRId64 "%s\n", t->cmd, t->o->seed,
                recur_get_matmul_precision() == RECUR_PRECISION_BF16
                    ? "; the large matrix products in bfloat16 (--matmul bf16)" : "");
    recur_rng_seed(&t->rng, (uint64_t)t->o->seed);
    return CLI_OK;
}

static int build_schedule(trainer *t)
{
    const trainer_options *o = t->o;
    recur_schedule s = recur_schedule_default();
    if (recur_schedule_parse(o->schedule, &s.kind))
        return cli_usage(t->cmd, "--schedule: %s", recur_last_error());
    s.warmup_steps = o->warmup;
    s.step_size = o->step_size;
    s.gamma = (float)o->gamma;
    s.min_lr = (float)o->min_lr;
    if (s.kind == RECUR_SCHEDULE_COSINE) {
        s.total_steps = o->decay_steps > 0 ? o->decay_steps : t->max_steps;
        if (s.total_steps <= 0)
            return cli_usage(t->cmd, "--schedule cosine needs a length: give --decay-steps, "
                             "--steps or --epochs");
    }
    if (recur_schedule_check(&s))
        return cli_usage(t->cmd, "schedule settings: %s", recur_last_error());
    t->schedule = s;
    return CLI_OK;
}

int trainer_start(trainer *t, const trainer_task *task)
{
    const trainer_options *o = t->o;
    const char *cmd = t->cmd;
    t->task = *task;
    if (!task->step || !task->epoch || !task->save || !task->params || !task->grads ||
        task->steps_per_epoch < 1)
        return cli_fail(cmd, "", "internal error: incomplete training task");
    const size_t n = task->n_params;
    if (o->ema > 0 && !(t->ema = malloc((n ? n : 1) * sizeof *t->ema)))
        return cli_fail(cmd, "", "out of memory for the average of %zu weights", n);
    if (!t->resumed) {
        if (recur_optim_create(&t->optim_config, task->n_params, &t->opt))
            return cli_fail(cmd, "", "cannot create the optimizer: %s", recur_last_error());
    } else {
        const recur_train_state *ts = t->resumed;
        if (recur_train_state_make_optim(ts, task->n_params, &t->opt))
            return cli_fail(cmd, "", "cannot restore the training state: %s",
                            recur_last_error());
        t->rng = ts->rng;
        t->step = ts->step;
        t->best_val = ts->best_val_loss;
        t->best_step = ts->best_step;
        t->elapsed_base = ts->elapsed_s;
        t->last_saved_step = ts->step;
        /* an averaged model: training continues from the optimizer's
         * iterate, and the model's weights are the average so far */
        if (ts->weights && ts->weights_count == n) {
            if (t->ema) {
                memcpy(t->ema, task->params, n * sizeof *t->ema);
                t->ema_on = 1;
            }
            memcpy(task->params, ts->weights, n * sizeof *task->params);
        }
        t->resumed = NULL; /* the caller may free it now */
    }

    /* Stop criteria: whichever of --steps, --epochs, --time comes first. */
    const int64_t spe = task->steps_per_epoch;
    t->max_steps = 0;
    if (o->steps > 0)
        t->max_steps = o->steps;
    if (o->epochs > 0 && (t->max_steps == 0 || o->epochs * spe < t->max_steps))
        t->max_steps = o->epochs * spe;
    if (o->steps == 0 && o->epochs == 0 && o->time_s == 0)
        t->max_steps = spe;
    int rc = build_schedule(t);
    if (rc)
        return rc;

    /* MPI: every rank starts from rank 0's weights and moments */
    if (dist_active()) {
        float *optim_state = NULL;
        size_t optim_count = 0;
        recur_optim_state(t->opt, &optim_state, &optim_count);
        int d = dist_check_same(t->step, "the step to start from");
        if (!d)
            d = dist_broadcast(task->params, task->n_params * sizeof *task->params);
        if (!d && optim_count)
            d = dist_broadcast(optim_state, optim_count * sizeof *optim_state);
        if (d)
            return cli_fail(cmd, "Every rank must resume from the same checkpoint (a shared "
                            "--out folder, or a copy of it on every machine).", "%s",
                            dist_error());
        if (dist_is_main() && !task->shards_data)
            fprintf(stderr, "recur %s: warning: this command gives every one of the %d ranks "
                    "the same batches: they average equal gradients, no faster than one "
                    "process\n", cmd, dist_size());
    }
    if (!dist_is_main())
        return CLI_OK; /* rank 0 alone writes the run folder */
    if (mkdir_p(t->out_dir) != 0)
        return cli_fail(cmd, "Choose another --out.", "cannot create the folder %s: %s",
                        t->out_dir, strerror(errno));
    char header[256];
    snprintf(header, sizeof header, "step,epoch,train_loss,val_loss,%s,%s_per_s,grad_norm,lr,"
             "elapsed_s\n", task->bits ? "bpc" : task->metric_name ? task->metric_name
                                                                     : "val_metric",
             task->unit_csv ? task->unit_csv : "items");
    t->metrics = open_metrics(t->metrics_path, header, t->was_resumed, t->step);
    if (!t->metrics)
        return cli_fail(cmd, "Choose another --metrics file.", "cannot write %s: %s",
                        t->metrics_path, strerror(errno));
    return CLI_OK;
}

void trainer_free(trainer *t)
{
    if (!t)
        return;
    if (t->metrics)
        fclose(t->metrics);
    recur_optim_free(t->opt);
    free(t->ema);
    /* MPI: leave the job (MPI_Abort unless every rank ended the same way) */
    dist_finish(t->dist_agreed);
    free(t);
}

const char *trainer_out_dir(const trainer *t) { return t->out_dir; }
const char *trainer_latest_path(const trainer *t) { return t->latest_path; }
const char *trainer_best_path(const trainer *t) { return t->best_path; }
recur_rng *trainer_rng(trainer *t) { return &t->rng; }
int64_t trainer_max_steps(const trainer *t) { return t->max_steps; }
int64_t trainer_step(const trainer *t) { return t->step; }
const recur_optim_config *trainer_optim_config(const trainer *t) { return &t->optim_config; }

/* ---- the loop ------------------------------------------------------------------ */

static double elapsed(const trainer *t) { return t->elapsed_base + (cli_now() - t->t_start); }

static double epoch_progress(const trainer *t) { return t->task.epoch(t->task.ctx); }

void trainer_clear_line(trainer *t)
{
    if (t->live_line) {
        fputs("\r\033[K", stderr);
        t->live_line = 0;
    }
}

/* MPI: a rank died, hangs or cannot be reached; dist_finish then ends the
 * job. Returns CLI_FAILURE (distinct from every recur status). */
static int dist_lost(trainer *t)
{
    char saved[4400];
    if (t->last_saved_step >= 0)
        snprintf(saved, sizeof saved, "The last checkpoint, %s (step %" PRId64 "), is intact: "
                 "only rank 0 writes, atomically. Continue with --resume and the same number "
                 "of processes.", t->latest_path, t->last_saved_step);
    else
        snprintf(saved, sizeof saved, "No checkpoint had been saved yet.");
    trainer_clear_line(t);
    t->dist_agreed = 0;
    return cli_fail(t->cmd, saved, "%s", dist_error());
}

/* Exchanges the weights and their average (--ema, once started): validation
 * and saving see the average, then the second call puts the iterate back. */
static void swap_average(trainer *t)
{
    if (!t->ema_on)
        return;
    float *p = t->task.params, *a = t->ema;
    for (size_t i = 0; i < t->task.n_params; i++) {
        const float x = p[i];
        p[i] = a[i];
        a[i] = x;
    }
}

/* After an update: starts or advances the average of the weights. */
static void update_average(trainer *t)
{
    if (!t->ema || t->step < t->o->ema_start)
        return;
    const float *p = t->task.params;
    float *a = t->ema;
    const size_t n = t->task.n_params;
    if (!t->ema_on) {
        memcpy(a, p, n * sizeof *a);
        t->ema_on = 1;
        return;
    }
    const float keep = (float)(1.0 - t->o->ema);
    for (size_t i = 0; i < n; i++)
        a[i] += keep * (p[i] - a[i]);
}

static int save_checkpoint(trainer *t, const char *path)
{
    const char *names[MAX_SAVED_OPTIONS], *values[MAX_SAVED_OPTIONS];
    char storage[MAX_SAVED_OPTIONS][512];
    int count = 0;
    for (cli_option *o = t->options; o->name && count < MAX_SAVED_OPTIONS; o++) {
        if (!(o->flags & CLI_SAVED))
            continue;
        if ((o->type == CLI_STRING || o->type == CLI_CHOICE) && !*(const char *const *)o->dest)
            continue; /* an unset string (e.g. no --pretrained) is not stored */
        cli_format(o, storage[count], sizeof storage[count]);
        names[count] = o->name;
        values[count] = storage[count];
        count++;
    }
    /* MPI: the rank count is part of the run; the ranks' own state goes to
     * rank 0, which alone writes; every rank learns the outcome */
    if (dist_active() && count < MAX_SAVED_OPTIONS) {
        snprintf(storage[count], sizeof storage[count], "%d", dist_size());
        names[count] = DIST_RANKS_OPTION;
        values[count] = storage[count];
        count++;
    }
    if (dist_active() && t->task.gather_state && t->task.gather_state(t->task.ctx))
        return dist_lost(t);
    float *optim_state = NULL;
    size_t optim_count = 0;
    recur_optim_state(t->opt, &optim_state, &optim_count);
    recur_train_state ts = {
        .step = t->step,
        .rng = t->rng,
        .optim = *recur_optim_get_config(t->opt),
        .optim_step = recur_optim_get_step(t->opt),
        .optim_state = optim_state,
        .optim_state_count = optim_count,
        .schedule = t->schedule,
        .best_val_loss = t->best_val,
        .best_step = t->best_step,
        .elapsed_s = elapsed(t),
        .option_count = count,
        .option_names = names,
        .option_values = values,
    };
    if (t->ema_on) { /* the model is the average; the iterate goes with the state */
        swap_average(t);
        ts.weights = t->ema;
        ts.weights_count = t->task.n_params;
    }
    int status = dist_is_main() ? t->task.save(t->task.ctx, path, &ts) : RECUR_OK;
    swap_average(t);
    if (dist_agree(&status))
        return dist_lost(t);
    return status;
}

typedef struct step_report {
    double loss, val_loss, val_metric, grad_norm, lr, items_per_s;
    int validated;
} step_report;

/* " (1.781 bpc)" with task.bits, else "". */
static void bits_text(const trainer *t, double loss, char *out, size_t size)
{
    if (t->task.bits)
        snprintf(out, size, fabs(loss) < 1e5 ? " (%.3f bpc)" : " (%.4g bpc)", loss / log(2.0));
    else if (size)
        out[0] = '\0';
}

static void report(trainer *t, const step_report *s, int final_line)
{
    if (!dist_is_main())
        return;
    char eta[32] = "", took[32], line[512], bits[32];
    const double now = cli_now(), spent = now - t->t_start;
    const int64_t done = t->step - t->start_step;
    double remaining = INFINITY;
    if (t->max_steps > 0 && done > 0)
        remaining = (double)(t->max_steps - t->step) * spent / (double)done;
    if (t->o->time_s > 0 && t->o->time_s - spent < remaining)
        remaining = t->o->time_s - spent;
    if (isfinite(remaining) && !final_line) {
        char left[24];
        cli_duration(remaining > 0 ? remaining : 0, left, sizeof left);
        snprintf(eta, sizeof eta, ", ETA %s", left);
    }
    cli_duration(elapsed(t), took, sizeof took);
    int used = 0;
    if (t->max_steps > 0)
        used = snprintf(line, sizeof line, "step %" PRId64 "/%" PRId64, t->step, t->max_steps);
    else
        used = snprintf(line, sizeof line, "step %" PRId64, t->step);
    /* "%.4f" for ordinary losses, "%.4g" for the huge ones of a diverging run */
    bits_text(t, s->loss, bits, sizeof bits);
    used += snprintf(line + used, sizeof line - (size_t)used,
                     fabs(s->loss) < 1e5 ? " | epoch %.2f | loss %.4f%s"
                                         : " | epoch %.2f | loss %.4g%s",
                     epoch_progress(t), s->loss, bits);
    if (isfinite(s->val_loss)) {
        bits_text(t, s->val_loss, bits, sizeof bits);
        used += snprintf(line + used, sizeof line - (size_t)used,
                         fabs(s->val_loss) < 1e5 ? " | val %.4f%s" : " | val %.4g%s",
                         s->val_loss, bits);
        if (!t->task.bits && isfinite(s->val_metric))
            used += snprintf(line + used, sizeof line - (size_t)used, ", %s %.4f",
                             t->task.metric_name ? t->task.metric_name : "metric",
                             s->val_metric);
    }
    snprintf(line + used, sizeof line - (size_t)used, " | %.1fk %s/s | grad %.3g | lr %.3g | %s%s",
             s->items_per_s / 1000.0, t->task.unit ? t->task.unit : "items", s->grad_norm, s->lr,
             took, eta);
    if (t->tty) {
        fprintf(stderr, "\r\033[K%s", line);
        t->live_line = 1;
        if (s->validated || final_line) {
            fputc('\n', stderr);
            t->live_line = 0;
        }
    } else {
        fprintf(stderr, "%s\n", line);
    }
    fflush(stderr);
}

static void metrics_row(trainer *t, const step_report *s)
{
    if (!t->metrics)
        return;
    fprintf(t->metrics, "%" PRId64 ",%.4f,", t->step, epoch_progress(t));
    csv_number(t->metrics, "%.6f", s->loss, 0);
    csv_number(t->metrics, "%.6f", s->validated ? s->val_loss : NAN, 0);
    csv_number(t->metrics, "%.6f", s->validated ? s->val_metric : NAN, 0);
    csv_number(t->metrics, "%.0f", s->items_per_s, 0);
    csv_number(t->metrics, "%.6g", s->grad_norm, 0);
    csv_number(t->metrics, "%.6g", s->lr, 0);
    csv_number(t->metrics, "%.2f", elapsed(t), 1);
    fflush(t->metrics);
}

static int validate(trainer *t, step_report *s)
{
    double metric = NAN;
    /* MPI: rank 0 validates and shares the result */
    int status = 0;
    if (dist_is_main()) {
        swap_average(t);
        status = t->task.validate(t->task.ctx, &s->val_loss, &metric);
        swap_average(t);
    }
    if (dist_active()) {
        double shared[3] = {status, s->val_loss, metric};
        if (dist_broadcast(shared, sizeof shared))
            return dist_lost(t);
        status = (int)shared[0];
        s->val_loss = shared[1];
        metric = shared[2];
    }
    if (status)
        return dist_is_main() ? cli_fail(t->cmd, "", "validation failed: %s", recur_last_error())
                              : CLI_FAILURE;
    s->val_metric = t->task.bits ? s->val_loss / log(2.0) : metric;
    s->validated = 1;
    return CLI_OK;
}

/* Validation bookkeeping: keeps best.safetensors. */
static int after_validation(trainer *t, double val_loss)
{
    if (!(val_loss < t->best_val))
        return CLI_OK;
    t->best_val = val_loss;
    t->best_step = t->step;
    int status = save_checkpoint(t, t->best_path);
    if (status == CLI_FAILURE || (status && !dist_is_main()))
        return CLI_FAILURE;
    if (status)
        return cli_fail(t->cmd, "Check the free space and permissions of the --out folder.",
                        "cannot save the best checkpoint: %s", recur_last_error());
    return CLI_OK;
}

static int save_latest(trainer *t)
{
    int status = save_checkpoint(t, t->latest_path);
    if (status == CLI_FAILURE || (status && !dist_is_main()))
        return CLI_FAILURE;
    if (status)
        return cli_fail(t->cmd, "Check the free space and permissions of the --out folder.",
                        "cannot save the checkpoint: %s", recur_last_error());
    t->last_saved_step = t->step;
    return CLI_OK;
}

/* --keep-every: the checkpoint of this step under its own name. */
static int keep_checkpoint(trainer *t)
{
    char path[sizeof t->latest_path + 32];
    snprintf(path, sizeof path, "%s/step-%08" PRId64 ".safetensors", t->out_dir, t->step);
    int status = save_checkpoint(t, path);
    if (status == CLI_FAILURE || (status && !dist_is_main()))
        return CLI_FAILURE;
    if (status)
        return cli_fail(t->cmd, "Check the free space and permissions of the --out folder.",
                        "cannot keep the checkpoint %s: %s", path, recur_last_error());
    return CLI_OK;
}

static int stop_on_nan(trainer *t, const char *what, double loss)
{
    if (!dist_is_main())
        return CLI_FAILURE;
    trainer_clear_line(t);
    char saved[4400];
    if (t->last_saved_step >= 0)
        snprintf(saved, sizeof saved, "The last good checkpoint, %s (step %" PRId64 "), is "
                 "intact: nothing was saved after it.", t->latest_path, t->last_saved_step);
    else
        snprintf(saved, sizeof saved, "No checkpoint had been saved yet.");
    fprintf(stderr, "recur %s: error: %s at step %" PRId64 " (loss %g): training stopped.\n"
            "  %s\n  Try a lower --lr (now %g), gradient clipping (--clip, now %g), or "
            "--on-nan skip to skip such updates.\n", t->cmd, what, t->step, loss, saved,
            t->o->lr, t->o->clip);
    return CLI_FAILURE;
}

static int train_loop(trainer *t)
{
    const trainer_options *o = t->o;
    const trainer_task *task = &t->task;
    const size_t n_params = task->n_params;
    float *params = task->params, *grads = task->grads;
    const int skip_nan = strcmp(o->on_nan, "skip") == 0;
    const int can_validate = task->validate != NULL;
    int consecutive_skips = 0, interrupted = 0;
    int64_t last_val_step = -1, last_log_step = -1;
    double window_items = 0, window_time = 0, last_live = 0;
    step_report s = {NAN, NAN, NAN, NAN, NAN, 0, 0};
    /* MPI: every decision below is the same on every rank; the stop
     * requests (bit 0 Ctrl-C/SIGTERM, bit 1 --time) are agreed each step */
    const int mpi = dist_active();
    int agreed_stop = 0;
    t->dist_agreed = 1;

    while (1) {
        if (mpi ? agreed_stop & 1 : atomic_load(&stop_signal)) {
            interrupted = 1;
            break;
        }
        if (t->max_steps > 0 && t->step >= t->max_steps)
            break;
        if (mpi ? agreed_stop & 2 : o->time_s > 0 && cli_now() - t->t_start >= o->time_s)
            break;
        const float lr = recur_schedule_lr(&t->schedule, (float)o->lr, t->step);
        const double t0 = cli_now();
        double loss = NAN, items = 0;
        if (mpi && dist_overlap())
            dist_reduce_begin(grads, n_params); /* MPI: buckets start during the backward */
        int status = task->step(task->ctx, &t->rng, &loss, &items);
        t->step++;
        /* MPI: average the gradients over the ranks (before clipping), with
         * the losses, item counts and stop requests */
        if (mpi) {
            const int local_stop = (atomic_load(&stop_signal) ? 1 : 0) |
                                   (o->time_s > 0 && cli_now() - t->t_start >= o->time_s ? 2 : 0);
            int d = dist_step_end(t->cmd, grads, n_params, &status, &loss, &items, local_stop,
                                  &agreed_stop);
            if (d)
                return d == DIST_LOST ? dist_lost(t) : CLI_FAILURE;
        }
        const char *bad = NULL;
        double grad_norm = NAN;
        if (status == RECUR_E_NUMERIC || (status == RECUR_OK && !isfinite(loss)))
            bad = "the loss is not finite (NaN or Inf)";
        else if (status)
            return cli_fail(t->cmd, "", "training step %" PRId64 " failed: %s", t->step,
                            recur_last_error());
        if (!bad && o->inject_nan == t->step)
            grads[0] = NAN;
        if (!bad) {
            grad_norm = recur_grad_norm(grads, n_params);
            if (!isfinite(grad_norm))
                bad = "the gradients are not finite (NaN or Inf)";
        }
        if (bad && !skip_nan)
            return stop_on_nan(t, bad, loss);
        if (bad) {
            trainer_clear_line(t);
            if (dist_is_main())
                fprintf(stderr, "recur %s: warning: %s at step %" PRId64 "; update skipped "
                        "(--on-nan skip)%s.\n", t->cmd, bad, t->step,
                        task->skipped ? " and the carried state reset" : "");
            if (task->skipped)
                task->skipped(task->ctx);
            if (++consecutive_skips >= MAX_CONSECUTIVE_SKIPS && !dist_is_main())
                return CLI_FAILURE; /* MPI: rank 0 says it */
            if (consecutive_skips >= MAX_CONSECUTIVE_SKIPS)
                return cli_fail(t->cmd, "The model has diverged: restart from a checkpoint with "
                                "a lower --lr or with --clip.",
                                "%d steps in a row were not finite; giving up at step %" PRId64,
                                consecutive_skips, t->step);
        } else {
            consecutive_skips = 0;
            if (o->clip_value > 0)
                recur_clip_grad_value(grads, n_params, (float)o->clip_value);
            if (o->clip > 0)
                recur_clip_grad_norm(grads, n_params, o->clip, NULL);
            if (recur_optim_step(t->opt, params, grads, lr))
                return cli_fail(t->cmd, "", "optimizer step failed: %s", recur_last_error());
            update_average(t);
        }
        const double t1 = cli_now();
        window_time += t1 - t0;
        window_items += items;
        s.loss = loss;
        s.grad_norm = grad_norm;
        s.lr = lr;
        s.validated = 0;
        s.items_per_s = window_time > 0 ? window_items / window_time : 0;

        if (can_validate && o->val_every > 0 && t->step % o->val_every == 0) {
            if (validate(t, &s))
                return CLI_FAILURE;
            last_val_step = t->step;
            if (after_validation(t, s.val_loss))
                return CLI_FAILURE;
        }
        if (o->save_every > 0 && t->step % o->save_every == 0 && save_latest(t))
            return CLI_FAILURE;
        if (o->keep_every > 0 && t->step % o->keep_every == 0 && keep_checkpoint(t))
            return CLI_FAILURE;
        const int log_now = t->step % o->log_every == 0 || s.validated;
        if (log_now) {
            metrics_row(t, &s);
            last_log_step = t->step;
        }
        if (log_now || (t->tty && t1 - last_live > 0.1)) {
            report(t, &s, 0);
            last_live = t1;
        }
        if (log_now)
            window_items = window_time = 0;
        if (task->after_step)
            task->after_step(task->ctx, t->step);
    }
    const double loop_seconds = cli_now() - t->t_start; /* MPI: for the summary */

    if (!interrupted && can_validate && last_val_step != t->step && t->step > t->start_step) {
        if (validate(t, &s))
            return CLI_FAILURE;
        if (after_validation(t, s.val_loss))
            return CLI_FAILURE;
    }
    if (last_log_step != t->step && t->step > t->start_step) {
        metrics_row(t, &s);
        report(t, &s, 1);
    }
    trainer_clear_line(t);
    if (save_latest(t))
        return CLI_FAILURE;
    /* MPI: rank 0 alone reports, with the time spent communicating */
    if (!dist_is_main())
        return CLI_OK;
    if (mpi && dist_steps() > 0)
        fprintf(stderr, "recur %s: %d ranks: %.1f ms per step, of which %.1f ms communication "
                "(rank 0)\n", t->cmd, dist_size(), 1e3 * loop_seconds / (double)dist_steps(),
                1e3 * dist_comm_seconds() / (double)dist_steps());
    char took[32];
    cli_duration(elapsed(t), took, sizeof took);
    if (interrupted) {
        char launcher[64] = ""; /* MPI: the same number of ranks */
        if (mpi)
            snprintf(launcher, sizeof launcher, "mpirun -np %d ", dist_size());
        fprintf(stderr, "recur %s: interrupted at step %" PRId64 "; saved %s.\n"
                "  Continue with: %srecur %s --resume --out %s\n", t->cmd, t->step,
                t->latest_path, launcher, t->cmd, t->out_dir);
        return CLI_OK;
    }
    fprintf(stderr, "recur %s: done at step %" PRId64 " (epoch %.2f) after %s; saved %s\n",
            t->cmd, t->step, epoch_progress(t), took, t->latest_path);
    const int have_best = isfinite(t->best_val);
    if (have_best) {
        char bits[32];
        bits_text(t, t->best_val, bits, sizeof bits);
        fprintf(stderr, "  best validation loss %.4f%s at step %" PRId64 ": %s\n", t->best_val,
                bits, t->best_step, t->best_path);
    }
    if (task->next_hint) {
        fputs("  ", stderr);
        fprintf(stderr, task->next_hint, have_best ? t->best_path : t->latest_path);
        fputc('\n', stderr);
    }
    return CLI_OK;
}

int trainer_run(trainer *t)
{
    const trainer_options *o = t->o;
    char limit[64] = "";
    if (t->max_steps > 0)
        snprintf(limit, sizeof limit, "%" PRId64 " steps", t->max_steps);
    if (dist_is_main())
        fprintf(stderr, "recur %s: %s at step %" PRId64 "%s%s%s; writing to %s\n", t->cmd,
                t->was_resumed ? "continuing" : "starting", t->step,
                limit[0] ? ", stopping at " : "", limit, o->time_s > 0 ? " or after --time" : "",
                t->out_dir);

    t->tty = isatty(STDERR_FILENO);
    atomic_store(&stop_signal, 0);
    const int handler = !atomic_load(&waiter_running);
    if (handler) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C kills at once (saves are atomic) */
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
    }
    atomic_store(&training_active, 1);

    t->start_step = t->step;
    t->t_start = cli_now();
    int rc = train_loop(t);
    atomic_store(&training_active, 0);
    if (handler) {
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
    }
    return rc;
}
