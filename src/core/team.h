/* team.h - a small team of helper threads for work that is only a few
 * microseconds long, such as one streaming step: an OpenMP parallel region
 * costs about 3 us to start here, a handshake with a spinning helper 0.7 us.
 *
 * recur__team_run(team, fn, ctx) calls fn(ctx, k) for k = 1 .. P-1 on the
 * helpers and fn(ctx, 0) on the caller, and returns when all are done.
 * Between runs a helper spins for about RECUR__TEAM_SPIN_US microseconds
 * (back-to-back steps find it awake), then sleeps on a condition variable
 * until the next run, so an idle stream costs no CPU. The caller waits for
 * the helpers by spinning briefly, then yielding the core (a helper that
 * lost its core gets it back). A team serves one caller at a time. */
#ifndef RECUR_TEAM_H
#define RECUR_TEAM_H

#define RECUR__TEAM_SPIN_US 200

typedef struct recur_team recur_team;

/* A team of P threads in all (P - 1 helpers; P >= 2). RECUR_E_NOMEM or
 * RECUR_E_NOMEM when the threads cannot be made. */
int recur__team_create(int P, recur_team **out);
void recur__team_run(recur_team *team, void (*fn)(void *ctx, int k), void *ctx);
/* Stops and joins the helpers; NULL is allowed. */
void recur__team_free(recur_team *team);

#endif
