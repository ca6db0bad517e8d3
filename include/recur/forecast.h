/* recur/forecast.h - time-series forecasting with a recurrent stack
 * (docs/forecast.md): reading series from CSV files, scaling learned on the
 * training part, a forecaster (recurrent stack -> linear head predicting the
 * next `horizon` steps with an interval), its training walk, streaming
 * inference, checkpoints, and honest evaluation (split by time, rolling
 * origins, MAE/RMSE/sMAPE/MASE beside the naive, seasonal-naive and drift
 * baselines).
 *
 * The model (in the manner of MQ-RNN: Wen et al., "A Multi-Horizon Quantile
 * Recurrent Forecaster", 2017): at every step t the stack reads features of
 * the newest observation y_t and its state carries the older history; a
 * linear head maps the top layer's state to the next steps' forecasts as
 * corrections of the seasonal-naive forecast, in units of the training
 * part's seasonal-naive error s:
 *   b_k  = y_{t+k-m*ceil(k/m)}                      (seasonal naive, m = period)
 *   yhat_{t+k} = b_k + s * head(h_t)_k               k = 1..horizon
 * The inputs at step t are (y_t - y_{t-1})/s, (y_t - y_{t-m})/s (m > 1),
 * (y_t - mean)/std (level; optional), sin/cos of the seasonal phase (m > 1)
 * and the standardised covariates at t. None depends on how far back the
 * history goes, so a forecast can be updated one observation at a time
 * (recur_forecast_stream) and training walks the series in chunks with the
 * state carried over (truncated backpropagation through time). */
#ifndef RECUR_FORECAST_H
#define RECUR_FORECAST_H

#include "recur/core.h"
#include "recur/rnn.h"
#include "recur/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Series                                                                   */

/* How the time column is written. Dates are stored as days since
 * 1970-01-01 (a fraction for a time of day), numbers as they are. */
typedef enum recur_time_kind {
    RECUR_TIME_NONE,       /* no time column: the steps are numbered 0, 1, ... */
    RECUR_TIME_ISO,        /* 2001-12-29 (also 2001/12/29, a time of day "T12:00[:00]") */
    RECUR_TIME_ISO_MONTH,  /* 2001-12 */
    RECUR_TIME_YYYYMMDD,   /* 20011229 */
    RECUR_TIME_MON_D_YYYY, /* Jan-1-1995 (English month abbreviations) */
    RECUR_TIME_NUMBER      /* plain or decimal years (1700, 1959.25) or any number */
} recur_time_kind;

/* Which columns to read. A target "FIRST:LAST" (with no column of that
 * exact name) names a wide layout: the columns FIRST through LAST of each
 * row are consecutive steps, read row by row (e.g. a year per row and
 * twelve monthly columns); the time column then labels each row, and the
 * steps of a row numbered y get the times y + j/J (J columns), written as
 * months "y-MM" when J = 12. Wide files take no covariates. */
typedef struct recur_series_spec {
    const char *target;               /* required */
    const char *time;                 /* NULL: no time column */
    const char *const *covariates;    /* covariate_count column names (borrowed) */
    int covariate_count;
} recur_series_spec;

/* At most this many covariate columns. */
#define RECUR_FORECAST_MAX_COVARIATES 64

typedef struct recur_series recur_series;

/* Reads a CSV file with a header row (RFC 4180 quoting, comma-separated,
 * parsed with libcsv; a UTF-8 byte-order mark is skipped, blank lines are
 * ignored). Missing values are empty fields or NA, N/A, NaN, null, "."
 * (any case); they are kept as NaN (see recur_fill_missing). Rows whose
 * target is missing before the first or after the last observed value are
 * dropped. Errors (RECUR_E_FORMAT unless said), each naming the file, the
 * line and the column where there is one:
 *   a column of the spec absent from the header (RECUR_E_NOT_FOUND; the
 *   message lists the header); a row with more or fewer fields than the
 *   header; broken quoting; a value that is not a finite number; a time
 *   value in no known format or in another format than the first row's, or
 *   not later than the previous row's; fewer than 2 observed target values
 *   (RECUR_E_INVALID). RECUR_E_IO / RECUR_E_NOT_FOUND when the file cannot
 *   be read. */
RECUR_API int recur_series_read_csv(const char *path, const recur_series_spec *spec,
                                    recur_series **out);
/* The same from text in memory; `name` stands for the file in messages. */
RECUR_API int recur_series_parse_csv(const char *text, size_t len, const char *name,
                                     const recur_series_spec *spec, recur_series **out);
/* A series of n values (NaN: missing), no time and no covariates; for
 * synthetic data. The values are copied. */
RECUR_API int recur_series_from_values(const double *values, size_t n, const char *name,
                                       recur_series **out);
RECUR_API void recur_series_free(recur_series *series);

/* Steps n. */
RECUR_API size_t recur_series_length(const recur_series *series);
/* [n] target values, NaN where missing. Owned by the series. */
RECUR_API const double *recur_series_values(const recur_series *series);
/* Number of missing target values. */
RECUR_API size_t recur_series_missing(const recur_series *series);
RECUR_API int recur_series_covariate_count(const recur_series *series);
/* [n, C] covariates, NaN where missing; NULL when C = 0. */
RECUR_API const double *recur_series_covariates(const recur_series *series);
/* Names as in the header (the target of a wide file is "FIRST:LAST"); the
 * file name given at reading. */
RECUR_API const char *recur_series_name(const recur_series *series);
RECUR_API const char *recur_series_target_name(const recur_series *series);
RECUR_API const char *recur_series_covariate_name(const recur_series *series, int c);
RECUR_API const char *recur_series_time_name(const recur_series *series);
/* The file line of step i (1-based; 0 for a series not read from a file). */
RECUR_API size_t recur_series_line(const recur_series *series, size_t i);

RECUR_API recur_time_kind recur_series_time_kind(const recur_series *series);
/* [n] times (days since 1970-01-01 for dates), or NULL without a time column. */
RECUR_API const double *recur_series_times(const recur_series *series);
/* The seasonal period the calendar suggests: 12 for monthly steps, 4
 * quarterly, 52 weekly, 7 daily, 1 yearly; 0 when unknown or no time. */
RECUR_API int recur_series_calendar_period(const recur_series *series);
/* The time of step n-1+k (k >= 1: the future), continuing the series' step
 * (calendar months for monthly data, else the usual spacing). Without a
 * time column it is the step number n-1+k. */
RECUR_API double recur_series_time_after(const recur_series *series, int k);
/* Writes a time as the file writes it (a number for RECUR_TIME_NONE). */
RECUR_API void recur_series_format_time(const recur_series *series, double t, char *out,
                                        size_t size);

/* Fills missing values (NaN) of x [n] (stride: distance between
 * consecutive values, e.g. C for a covariate column) into out (same layout;
 * may alias x). Positions before `split` are linearly interpolated between
 * the nearest observed values before `split` (an edge copies its nearest
 * observation); positions from `split` on carry the last observation
 * forward, since interpolating would use the future. RECUR_E_INVALID when
 * nothing before split is observed. */
RECUR_API int recur_fill_missing(const double *x, size_t n, size_t stride, size_t split,
                                 double *out);

/* ------------------------------------------------------------------------ */
/* Period, metrics and baselines                                            */

/* The seasonal period of y [n] (no NaN) from its autocorrelation r: the
 * series is differenced once (removing a trend); a lag p in 2..min(n/4,
 * 400) is significant when r_p is above 2.5 standard errors (Bartlett's
 * sqrt((1 + 2 sum_{j<min(p,4)} r_j^2) / n), i.e. under a short-memory null,
 * and above 0.1) and r_2p confirms it (above 2 standard errors and 0.05).
 * The significant local maximum with the largest r_p wins, replaced by its
 * smallest significant divisor within 0.1 of it (multiples peak too), then
 * by `hint` (e.g. recur_series_calendar_period; 0: none) when that is
 * significant and within 0.1. 1 when no lag qualifies. */
RECUR_API int recur_detect_period(const double *y, size_t n, int hint, int *period);

/* The M4 competition's MASE denominator: the in-sample mean absolute error
 * of the seasonal-naive forecast, mean_{t >= m} |y_t - y_{t-m}| over y [n],
 * pairs with a NaN skipped. RECUR_E_INVALID when no pair remains or the
 * mean is 0 (a constant series). */
RECUR_API int recur_mase_scale(const double *y, size_t n, int period, double *scale);

/* Sums of forecast errors; zero-initialise, add pairs, then summarise. */
typedef struct recur_forecast_errors {
    size_t count;              /* forecasts added */
    double abs_sum, sq_sum;    /* sum |a - f|, sum (a - f)^2 */
    double smape_sum;          /* sum 2|a - f| / (|a| + |f|)  (0 when both are 0) */
    size_t interval_count;     /* forecasts added with an interval */
    size_t covered;            /* ... whose actual fell inside [lo, hi] */
} recur_forecast_errors;

/* Adds one forecast f of the actual value a; lo and hi bound its interval
 * (pass NAN for both when there is none). */
RECUR_API void recur_forecast_errors_add(recur_forecast_errors *e, double actual,
                                         double forecast, double lo, double hi);

typedef struct recur_forecast_metrics {
    size_t count;
    double mae, rmse;
    double smape;    /* percent, 0..200: the M4 definition */
    double mase;     /* mae / scale */
    double coverage; /* share of actuals inside the interval; NaN when none */
} recur_forecast_metrics;

/* MAE, RMSE, sMAPE, MASE (mae / mase_scale) and coverage; NaN when empty. */
RECUR_API recur_forecast_metrics recur_forecast_errors_summary(const recur_forecast_errors *e,
                                                               double mase_scale);

typedef enum recur_baseline {
    RECUR_BASELINE_NAIVE,          /* yhat_{t+k} = y_t */
    RECUR_BASELINE_SEASONAL_NAIVE, /* yhat_{t+k} = y_{t+k-m*ceil(k/m)} */
    RECUR_BASELINE_DRIFT           /* yhat_{t+k} = y_t + k (y_t - y_0) / t */
} recur_baseline;

/* "naive", "seasonal naive", "drift". */
RECUR_API const char *recur_baseline_name(recur_baseline kind);
/* Forecasts out [horizon] from the history y [n] (no NaN; the origin is
 * y[n-1]). RECUR_E_INVALID for n < 1, horizon < 1, period < 1 or when the
 * seasonal naive needs n >= period. Drift with n = 1 is the naive. */
RECUR_API int recur_baseline_forecast(recur_baseline kind, const double *y, size_t n, int period,
                                      int horizon, double *out);

/* ------------------------------------------------------------------------ */
/* The forecaster                                                           */

typedef enum recur_forecast_loss {
    RECUR_FORECAST_QUANTILE, /* pinball loss of the (1-p)/2, 1/2 and (1+p)/2 quantiles */
    RECUR_FORECAST_GAUSSIAN  /* Gaussian negative log-likelihood: mean and log sd */
} recur_forecast_loss;

typedef enum recur_forecast_mode {
    RECUR_FORECAST_DIRECT,        /* the head predicts all horizon steps at once */
    RECUR_FORECAST_AUTOREGRESSIVE /* one step, fed back (as the median) horizon times */
} recur_forecast_mode;

/* "quantile", "gaussian"; "direct", "autoregressive". */
RECUR_API const char *recur_forecast_loss_name(recur_forecast_loss loss);
RECUR_API int recur_forecast_loss_parse(const char *name, recur_forecast_loss *out);
RECUR_API const char *recur_forecast_mode_name(recur_forecast_mode mode);
RECUR_API int recur_forecast_mode_parse(const char *name, recur_forecast_mode *out);

typedef struct recur_forecast_config {
    recur_cell cell;
    int hidden_size;      /* H */
    int num_layers;       /* L */
    float dropout;        /* between layers, training only */
    int horizon;          /* steps forecast, >= 1 */
    int period;           /* seasonal period m >= 1 (1: none) */
    int covariate_count;  /* C, 0..RECUR_FORECAST_MAX_COVARIATES */
    int level_input;      /* non-zero: the standardised level is an input */
    recur_forecast_loss loss;
    recur_forecast_mode mode;
    double interval;      /* coverage of the interval, in (0, 1), e.g. 0.8 */
    double interval_adapt; /* eta >= 0 of the stream's online interval tracking (0: off) */
} recur_forecast_config;

/* gru, H = 64, 1 layer, no dropout, horizon 1, period 1, no covariates,
 * level input on, quantile loss, direct, 80% interval, interval_adapt
 * 1. */
RECUR_API recur_forecast_config recur_forecast_config_default(void);
/* RECUR_E_INVALID naming the field. */
RECUR_API int recur_forecast_config_check(const recur_forecast_config *config);

/* Statistics of the training part, used to scale inputs and outputs. */
typedef struct recur_forecast_scaling {
    double mean, std;  /* of the target */
    double scale;      /* recur_mase_scale of the target (std, then 1, if that fails) */
    int covariate_count;
    double covariate_mean[RECUR_FORECAST_MAX_COVARIATES];
    double covariate_std[RECUR_FORECAST_MAX_COVARIATES]; /* 1 where the std is 0 */
} recur_forecast_scaling;

/* Learns the scaling from the first n_train steps of y [n_train] and cov
 * [n_train, C] (may be NULL when C = 0), NaN skipped: nothing after
 * n_train is read. RECUR_E_INVALID when fewer than 2 values are observed. */
RECUR_API int recur_forecast_scaling_fit(const double *y, const double *cov, int C,
                                         size_t n_train, int period,
                                         recur_forecast_scaling *out);

typedef struct recur_forecaster recur_forecaster;

RECUR_API int recur_forecaster_create(const recur_forecast_config *config,
                                      recur_forecaster **out);
RECUR_API void recur_forecaster_free(recur_forecaster *fc);
RECUR_API const recur_forecast_config *recur_forecaster_get_config(const recur_forecaster *fc);
/* The scaling starts as mean 0, std 1, scale 1; set it before training. */
RECUR_API int recur_forecaster_set_scaling(recur_forecaster *fc,
                                           const recur_forecast_scaling *scaling);
RECUR_API const recur_forecast_scaling *recur_forecaster_get_scaling(const recur_forecaster *fc);
/* Features per step I, head outputs O (= steps predicted * values per step:
 * 3 quantiles or mean and log sd), and the steps the head predicts (horizon
 * for direct, 1 for autoregressive). */
RECUR_API int recur_forecaster_input_size(const recur_forecaster *fc);
RECUR_API int recur_forecaster_output_size(const recur_forecaster *fc);
RECUR_API int recur_forecaster_head_steps(const recur_forecaster *fc);

/* One flat parameter array: the stack's tensors (named "rnn.<PyTorch
 * name>") then head.weight [O, H] and head.bias [O]; a gradient array of
 * the same layout. */
RECUR_API float *recur_forecaster_params(recur_forecaster *fc);
RECUR_API float *recur_forecaster_grads(recur_forecaster *fc);
RECUR_API size_t recur_forecaster_size(const recur_forecaster *fc);
RECUR_API void recur_forecaster_zero_grad(recur_forecaster *fc);
RECUR_API recur_rnn *recur_forecaster_rnn(recur_forecaster *fc);
RECUR_API int recur_forecaster_tensor_count(const recur_forecaster *fc);
RECUR_API const recur_param_view *recur_forecaster_tensor_at(const recur_forecaster *fc,
                                                             int index);
/* Stack: U(-1/sqrt(H), 1/sqrt(H)); head weight the same, head bias 0 so
 * that the untrained model starts near the seasonal-naive forecast. */
RECUR_API void recur_forecaster_init(recur_forecaster *fc, recur_rng *rng);

/* The features of steps t0..t0+T-1 of y [n] (no NaN; cov [n, C], no NaN)
 * into x [T, I] (as the stack reads them; for tests and tools). Steps
 * before 0 count as equal to y[0]. */
RECUR_API int recur_forecaster_features(const recur_forecaster *fc, const double *y,
                                        const double *cov, size_t n, size_t t0, int T, float *x);

/* ------------------------------------------------------------------------ */
/* Training                                                                 */

/* The training walk over y [n] (no NaN; e.g. after recur_fill_missing) and
 * cov [n, C]: B streams, each a contiguous segment of the steps, walked in
 * chunks of T steps with the stack's state carried from chunk to chunk
 * (detached) and reset when the walk wraps into a new epoch. Every step t
 * of a chunk is a forecast origin; its loss covers the targets y_{t+k} with
 * t+k < n that were observed (observed [n] non-zero; NULL: all), so nothing
 * at or after n is ever read. Each epoch starts the segments at a shift in
 * [0, T) drawn from (seed, epoch), so that chunk boundaries move. The
 * arrays are borrowed and must outlive the walk. */
typedef struct recur_forecast_walk recur_forecast_walk;

RECUR_API int recur_forecast_walk_create(recur_forecaster *fc, const double *y,
                                         const double *cov, const unsigned char *observed,
                                         size_t n, int T, int B, uint64_t seed,
                                         recur_forecast_walk **out);
/* A shard of the walk of total_batch streams, for data-parallel training:
 * the streams first .. first+B-1 of that layout (its segments, chunks per
 * epoch and epoch shifts), with a carried state [L, B, H] of its own.
 * Chunk k of shard r of N shards of B streams is then column block r of
 * chunk k of the walk of N*B streams, and positions transfer between
 * shards. recur_forecast_walk_create is the shard first = 0, B =
 * total_batch. RECUR_E_INVALID unless 0 <= first, B >= 1 and first + B <=
 * total_batch. */
RECUR_API int recur_forecast_walk_create_shard(recur_forecaster *fc, const double *y,
                                               const double *cov, const unsigned char *observed,
                                               size_t n, int T, int total_batch, int first, int B,
                                               uint64_t seed, recur_forecast_walk **out);
RECUR_API void recur_forecast_walk_free(recur_forecast_walk *walk);
RECUR_API int64_t recur_forecast_walk_chunks_per_epoch(const recur_forecast_walk *walk);
/* Position (epoch, chunk) and the carried state [L, B, H] (h, and c for an
 * LSTM) for checkpoints; set them to resume exactly. */
RECUR_API void recur_forecast_walk_get_pos(const recur_forecast_walk *walk, int64_t *epoch,
                                           int64_t *chunk);
RECUR_API int recur_forecast_walk_set_pos(recur_forecast_walk *walk, int64_t epoch,
                                          int64_t chunk);
RECUR_API size_t recur_forecast_walk_state_size(const recur_forecast_walk *walk);
RECUR_API float *recur_forecast_walk_state_h(recur_forecast_walk *walk);
RECUR_API float *recur_forecast_walk_state_c(recur_forecast_walk *walk); /* NULL unless LSTM */
/* One chunk: forward, loss (mean over the chunk's targets) and backward,
 * ADDING the gradient to recur_forecaster_grads (zeroing is the caller's);
 * then the walk moves on. *targets (may be NULL) receives the number of
 * target values in the loss (0 for a chunk without any: loss 0, no
 * gradient). RECUR_E_NUMERIC when the loss is not finite. */
RECUR_API int recur_forecast_walk_step(recur_forecast_walk *walk, recur_rng *rng,
                                       double *loss, size_t *targets);
/* The target values of the next chunk over all total_batch streams of the
 * layout (every shard's; the walk's own for a walk that is not a shard):
 * the count that the whole batch's mean loss divides by. */
RECUR_API size_t recur_forecast_walk_chunk_targets(const recur_forecast_walk *walk);

/* The mean loss of the forecasts made at the origins t in
 * [from - 1, n - 2] of y [n] (no NaN), i.e. of targets from step `from`
 * on, with the state carried from step 0 (as in streaming). Targets before
 * `from` and unobserved ones are left out. *mae (may be NULL) receives the
 * mean absolute error of the median (mean) in units of s, i.e. the MASE of
 * those one-model forecasts (before calibration, which does not move the
 * median); *targets (may be NULL) their number. NaN without targets. */
RECUR_API int recur_forecaster_evaluate(recur_forecaster *fc, const double *y,
                                        const double *cov, const unsigned char *observed,
                                        size_t n, size_t from, double *loss, double *mae,
                                        size_t *targets);

/* Conformalized quantile regression (Romano, Patterson and Candes, 2019)
 * on the same origins as recur_forecaster_evaluate: for each horizon step
 * k the conformity scores E = max(lo - y, y - hi) (in units of s) give the
 * ceil((1 - a)(N + 1))-th smallest as a margin added to both bounds
 * (a = 1 - interval), so that the interval covers about `interval` of new
 * data even where the raw quantiles are too narrow. Without origins the
 * margins stay 0. Stored in the checkpoint. */
RECUR_API int recur_forecaster_calibrate(recur_forecaster *fc, const double *y,
                                         const double *cov, const unsigned char *observed,
                                         size_t n, size_t from);
/* The margins [horizon] (units of s), and the number of steps n of the
 * series they were calibrated on (0 before any calibration): streams adapt
 * the margins online from that step on (recur_forecast_stream_push). */
RECUR_API const double *recur_forecaster_calibration(const recur_forecaster *fc);
RECUR_API size_t recur_forecaster_calibrated_steps(const recur_forecaster *fc);
RECUR_API int recur_forecaster_set_calibration(recur_forecaster *fc, const double *margins,
                                               size_t calibrated_steps);

/* ------------------------------------------------------------------------ */
/* Streaming inference                                                      */

/* Feeds one observation at a time and forecasts from the newest: O(1) work
 * and memory per step (the stack's streaming step plus the last m values),
 * never rereading the history. The forecaster must outlive the stream and
 * keep its weights while the stream is used. */
typedef struct recur_forecast_stream recur_forecast_stream;

RECUR_API int recur_forecast_stream_create(const recur_forecaster *fc,
                                           recur_forecast_stream **out);
RECUR_API void recur_forecast_stream_free(recur_forecast_stream *stream);
/* Back to an empty history. */
RECUR_API int recur_forecast_stream_reset(recur_forecast_stream *stream);
/* Appends y (NaN: missing, replaced by the last observation) with its
 * covariates cov [C] (NULL when C = 0; NaN entries likewise carried
 * forward). RECUR_E_INVALID when the first value is missing.
 * Online interval tracking (conformal quantile tracking: Angelopoulos,
 * Candes and Tibshirani, "Conformal PID Control for Time Series
 * Prediction", 2023): from the step recur_forecaster_calibrated_steps on
 * (the data after the calibration), every observed y_t checks the interval
 * that the forecast from origin t-k gave for it, for each k = 1..horizon,
 * and moves that step's margin:
 *   q_k += eta / sqrt(k) * B_k * (miss - (1 - interval)),
 * miss 1 when y_t fell outside, eta = interval_adapt (damped by sqrt(k):
 * the outcome of a k-step forecast arrives k steps late, and a fast
 * reaction to late news overshoots), and B_k the running
 * mean of the earlier absolute errors |y - median| / s of step k
 * (forgetting 10% a step; at least 0.01; no step before the first), so
 * that the steps follow the scale of the errors. The coverage thus
 * follows the nominal level even
 * when the data after the calibration are noisier or calmer than the
 * calibration data. A stream keeps the last horizon forecasts for this
 * (3 horizon^2 numbers; no tracking when horizon^2 exceeds 2^20), and
 * computes a forecast at each push from then on. */
RECUR_API int recur_forecast_stream_push(recur_forecast_stream *stream, double y,
                                         const double *cov);
RECUR_API size_t recur_forecast_stream_count(const recur_forecast_stream *stream);
/* The forecast of the next horizon steps from the values pushed so far:
 * median (or mean) [horizon], and the interval's bounds lo, hi [horizon]
 * (either may be NULL). RECUR_E_STATE before the first push. */
RECUR_API int recur_forecast_stream_forecast(recur_forecast_stream *stream, double *median,
                                             double *lo, double *hi);

/* ------------------------------------------------------------------------ */
/* Checkpoints                                                              */

/* What a checkpoint records besides the weights, so that `predict` reads
 * new data the same way. Strings are borrowed when saving; after a load
 * they are owned by the loaded object. */
typedef struct recur_forecast_info {
    const char *target;   /* target column (or FIRST:LAST) */
    const char *time;     /* time column or NULL */
    const char *const *covariates; /* covariate_count names (the config's C) */
    int lookback;         /* T of training */
    size_t train_steps;   /* steps in the training part (scaling, fitting) */
    size_t fit_steps;     /* steps the weights were fitted on (the rest validated) */
} recur_forecast_info;

/* Adds the forecaster's tensors (F32: "rnn.*", "head.weight",
 * "head.bias"; F64: "calibration" [horizon]) and the __metadata__ key
 * "recur_forecast" (JSON: format, config, scaling with doubles that read
 * back exactly, the info) to a safetensors writer. The writer borrows the
 * weights until it is saved or freed. */
RECUR_API int recur_forecaster_write(const recur_forecaster *fc, const recur_forecast_info *info,
                                     recur_st_writer *writer);
/* Saves to path atomically (recur_forecaster_write + recur_st_writer_save). */
RECUR_API int recur_forecaster_save(const char *path, const recur_forecaster *fc,
                                    const recur_forecast_info *info);

/* Info owned by a loaded checkpoint. */
typedef struct recur_forecast_loaded recur_forecast_loaded;

/* Reads a forecaster from an open safetensors file, checking every field:
 * RECUR_E_FORMAT (naming the file and the field or tensor) for a missing
 * or malformed "recur_forecast" metadata, a wrong shape, a non-finite
 * weight or scaling; RECUR_E_UNSUPPORTED for a newer format. *info (may be
 * NULL) receives the info, valid until recur_forecast_loaded_free(*loaded). */
RECUR_API int recur_forecaster_read(const recur_st *st, const char *name,
                                    recur_forecaster **fc, recur_forecast_loaded **loaded);
RECUR_API int recur_forecaster_load(const char *path, recur_forecaster **fc,
                                    recur_forecast_loaded **loaded);
RECUR_API const recur_forecast_info *recur_forecast_loaded_info(const recur_forecast_loaded *l);
RECUR_API void recur_forecast_loaded_free(recur_forecast_loaded *loaded);

/* ------------------------------------------------------------------------ */
/* Rolling-origin evaluation                                                */

/* The rows of an evaluation table, in this order. */
enum {
    RECUR_EVAL_MODEL,
    RECUR_EVAL_NAIVE,
    RECUR_EVAL_SEASONAL_NAIVE,
    RECUR_EVAL_DRIFT,
    RECUR_EVAL_ROWS
};

typedef struct recur_forecast_evaluation {
    size_t origins;        /* forecast origins used */
    size_t first_origin, last_origin; /* their step indices */
    double mase_scale;     /* recur_mase_scale of the training part */
    recur_forecast_metrics rows[RECUR_EVAL_ROWS]; /* model (coverage of its interval), baselines */
} recur_forecast_evaluation;

/* Rolling-origin evaluation over the test part of y [n] (NaN: missing) and
 * cov [n, C]: the steps from n_train on. The origins are `origins` evenly
 * spaced steps (0: every step) from n_train - 1 to n - 1 - horizon; at each
 * the forecaster (fed every step up to the origin through a stream, the
 * training part filled by interpolation and the test part by the last
 * observation) and the three baselines (on the same history) forecast
 * horizon steps, scored against the observed actuals. fc may be NULL
 * (baselines only). When `forecasts` is not NULL it receives, per origin
 * o (the used origins in order) and step k, the model's median, lo and hi
 * [origins][horizon][3] (caller-allocated for the number of origins that
 * recur_forecast_origin_count gives). RECUR_E_INVALID when the test part
 * is shorter than horizon or the training part is shorter than 2 steps. */
RECUR_API int recur_forecast_evaluate(const recur_forecaster *fc, const double *y,
                                      const double *cov, size_t n, size_t n_train, int period,
                                      int horizon, size_t origins,
                                      recur_forecast_evaluation *out, double *forecasts);
/* The number of origins recur_forecast_evaluate uses, and the step of the
 * i-th (0 when the test part is too short). */
RECUR_API size_t recur_forecast_origin_count(size_t n, size_t n_train, int horizon,
                                             size_t origins);
RECUR_API size_t recur_forecast_origin_at(size_t n, size_t n_train, int horizon, size_t origins,
                                          size_t i);

#ifdef __cplusplus
}
#endif
#endif
