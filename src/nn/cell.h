/* cell.h - the table through which every cell kind plugs into the single
 * time loop of rnn.c. A cell supplies only its pointwise step math, forward
 * and backward; the matrix products (input projection before the loop, one
 * recurrent product per step, weight gradients after the loop), truncation,
 * state carry-over, reversal, stacking, variable lengths and dropout are
 * written once in rnn.c.
 *
 * Conventions for one step of one direction of one layer, batch B, hidden H,
 * G gates (packed in PyTorch's order, gate k occupying columns [k*H, (k+1)*H)):
 *   xg  [B, G*H]  W_ih x_t          (no bias)
 *   hg  [B, G*H]  W_hh h_{t-1}      (no bias)
 *   act [B, G*H]  gate activations saved for backward
 *   aux [B, H]    GRU only: W_hn h_{t-1} + b_hn, saved for backward
 * Rows whose `active` flag is 0 (a sequence already past its length) carry
 * their state unchanged and get zero gate gradients; the state is passed
 * through untouched in backward. Each output element j reads the previous
 * state only at j, so h may alias h_prev and c may alias c_prev, and calls
 * on disjoint unit ranges [j0, j1) may run in parallel threads. */
#ifndef RECUR_CELL_H
#define RECUR_CELL_H

#include <stdbool.h>

typedef struct cell_forward_args {
    int B, H;
    int j0, j1;                /* the hidden units [j0, j1) this call computes */
    const float *xg, *hg;      /* [B, G*H] */
    const float *b_ih, *b_hh;  /* [G*H] */
    const float *h_prev;       /* [B, H] */
    const float *c_prev;       /* [B, H] LSTM only */
    float *h;                  /* [B, H] new state */
    float *c;                  /* [B, H] LSTM only */
    float *act;                /* [B, G*H] */
    float *aux;                /* [B, H] GRU only */
    const unsigned char *active; /* [B] or NULL: all active */
} cell_forward_args;

typedef struct cell_backward_args {
    int B, H;
    int j0, j1;                /* the hidden units [j0, j1) this call computes */
    const float *act;          /* [B, G*H] from forward */
    const float *aux;          /* [B, H] GRU */
    const float *h_prev;       /* [B, H] */
    const float *c_prev, *c;   /* [B, H] LSTM: c_{t-1} and c_t */
    const float *dh;           /* [B, H] dL/dh_t, everything that reaches h_t */
    float *dc;                 /* [B, H] LSTM: in dL/dc_t from later steps; out dL/dc_{t-1} */
    float *dgx;                /* [B, G*H] dL/d(pre-activation), input side */
    float *dgh;                /* [B, G*H] recurrent side (== dgx except GRU's n gate) */
    float *dh_prev;            /* [B, H] out: the part of dL/dh_{t-1} that does not go
                                  through W_hh (GRU's z*dh, inactive rows' dh) */
    const unsigned char *active;
} cell_backward_args;

typedef struct cell_ops {
    int gates;        /* G */
    bool has_c;       /* LSTM cell state */
    bool has_aux;     /* GRU's saved W_hn h + b_hn */
    bool split_dgh;   /* dgh differs from dgx (GRU) */
    /* vectorized kernels (run-time AVX-512 / AVX2 / generic clones) */
    void (*forward)(const cell_forward_args *a);
    void (*backward)(const cell_backward_args *a);
    /* the plain reference with libm's expf/tanhf, kept for comparison */
    void (*forward_ref)(const cell_forward_args *a);
    void (*backward_ref)(const cell_backward_args *a);
} cell_ops;

/* Each cell writes its step once as an always-inlined body taking
 * `const bool fast`; the two variants above are that body with fast false
 * (libm) and true (vmath.h, vectorized). */
#define CELL_IMPL static inline __attribute__((always_inline))
#define SIGMOID(x) (fast ? recur_vsigmoid(x) : 1.0f / (1.0f + expf(-(x))))
#define TANH(x) (fast ? recur_vtanh(x) : tanhf(x))

extern const cell_ops recur_cell_rnn_tanh;
extern const cell_ops recur_cell_rnn_relu;
extern const cell_ops recur_cell_lstm;
extern const cell_ops recur_cell_gru;

#endif
