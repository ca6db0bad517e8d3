/* schedule.c - learning-rate schedules: constant, step decay (torch's
 * StepLR) and cosine decay to a floor, each with an optional linear
 * warm-up from 0. A schedule is a pure function of the step number, so
 * resuming from a checkpoint needs only the step counter. The rate is
 * computed in double and rounded to float once. */
#include <ctype.h>
#include <math.h>
#include <string.h>

#include "internal.h"
#include "recur/optim.h"

static const char *const schedule_names[] = {"constant", "step", "cosine"};
#define SCHEDULE_PI 3.14159265358979323846 /* M_PI is not in strict C11 */
#define SCHEDULE_KINDS ((int)(sizeof schedule_names / sizeof schedule_names[0]))

const char *recur_schedule_name(recur_schedule_kind kind)
{
    if ((int)kind < 0 || (int)kind >= SCHEDULE_KINDS)
        return "unknown";
    return schedule_names[kind];
}

int recur_schedule_parse(const char *name, recur_schedule_kind *out)
{
    if (!name || !out)
        return recur__error(RECUR_E_INVALID, "recur_schedule_parse: NULL argument");
    for (int k = 0; k < SCHEDULE_KINDS; k++) {
        const char *a = name, *b = schedule_names[k];
        while (*a && *b && tolower((unsigned char)*a) == *b) {
            a++;
            b++;
        }
        if (!*a && !*b) {
            *out = (recur_schedule_kind)k;
            return RECUR_OK;
        }
    }
    return recur__error(RECUR_E_INVALID,
                        "unknown schedule '%s' (expected constant, step or cosine)", name);
}

recur_schedule recur_schedule_default(void)
{
    recur_schedule s;
    memset(&s, 0, sizeof s);
    s.kind = RECUR_SCHEDULE_CONSTANT;
    s.step_size = 1;
    s.gamma = 0.1f;
    return s;
}

int recur_schedule_check(const recur_schedule *s)
{
    if (!s)
        return recur__error(RECUR_E_INVALID, "schedule is NULL");
    if ((int)s->kind < 0 || (int)s->kind >= SCHEDULE_KINDS)
        return recur__error(RECUR_E_INVALID,
                            "schedule kind %d is not one of constant, step, cosine", (int)s->kind);
    if (s->warmup_steps < 0)
        return recur__error(RECUR_E_INVALID, "schedule: warmup_steps must be >= 0 (got %lld)",
                            (long long)s->warmup_steps);
    switch (s->kind) {
    case RECUR_SCHEDULE_CONSTANT:
        break;
    case RECUR_SCHEDULE_STEP:
        if (s->step_size < 1)
            return recur__error(RECUR_E_INVALID, "step schedule: step_size must be >= 1 (got %lld)",
                                (long long)s->step_size);
        if (!(s->gamma > 0.0f) || isinf(s->gamma))
            return recur__error(RECUR_E_INVALID,
                                "step schedule: gamma must be finite and > 0 (got %g)",
                                (double)s->gamma);
        break;
    case RECUR_SCHEDULE_COSINE:
        if (s->total_steps <= s->warmup_steps)
            return recur__error(RECUR_E_INVALID,
                                "cosine schedule: total_steps (%lld) must be greater than "
                                "warmup_steps (%lld)",
                                (long long)s->total_steps, (long long)s->warmup_steps);
        if (!(s->min_lr >= 0.0f) || isinf(s->min_lr))
            return recur__error(RECUR_E_INVALID,
                                "cosine schedule: min_lr must be finite and >= 0 (got %g)",
                                (double)s->min_lr);
        break;
    }
    return RECUR_OK;
}

/* warm-up:  lr * s / W                                  for s < W
 * constant: lr
 * step:     lr * gamma^floor(s / step_size)
 * cosine:   min + (lr - min) * (1 + cos(pi * q)) / 2,   q = clamp((s - W) / (T - W), 0, 1) */
float recur_schedule_lr(const recur_schedule *s, float base_lr, int64_t step)
{
    if (!s || recur_schedule_check(s) != RECUR_OK)
        return base_lr;
    if (step < 0)
        step = 0;
    const double lr = base_lr;
    if (step < s->warmup_steps)
        return (float)(lr * (double)step / (double)s->warmup_steps);
    switch (s->kind) {
    case RECUR_SCHEDULE_CONSTANT:
        return base_lr;
    case RECUR_SCHEDULE_STEP:
        return (float)(lr * pow((double)s->gamma, (double)(step / s->step_size)));
    case RECUR_SCHEDULE_COSINE: {
        double q = (double)(step - s->warmup_steps) / (double)(s->total_steps - s->warmup_steps);
        if (q > 1.0)
            q = 1.0;
        const double min_lr = s->min_lr;
        return (float)(min_lr + (lr - min_lr) * 0.5 * (1.0 + cos(SCHEDULE_PI * q)));
    }
    }
    return base_lr;
}
