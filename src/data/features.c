/* features.c - acoustic features: log-mel filterbank energies and MFCCs,
 * and their normalisation.
 *
 * For frame t of a signal x[0..n) (floats in [-1, 1]):
 *   y[i]     = x[i] - a x[i-1]  (y[0] = x[0]; pre-emphasis, a = 0 is off)
 *   s[j]     = y[t*H + j] w[j],  j < W  (zero past n and for W <= j < N)
 *   P[k]     = |sum_j s[j] e^{-2 pi i j k / N}|^2,  k = 0..N/2   (FFTW r2c)
 *   E[m]     = sum_k fb[m, k] P[k]                 m = 0..M-1
 *   fbank[m] = log(max(E[m], floor))
 *   mfcc[c]  = s_c sum_m fbank[m] cos(pi c (2m + 1) / (2M)),  c < num_ceps,
 *              s_0 = sqrt(1/M), s_c = sqrt(2/M)   (orthonormal DCT-II)
 * fb[m, k] is the HTK triangle rising from corner f_m to f_{m+1} and falling
 * to f_{m+2}, evaluated at the bin frequency k * rate / N, with the M + 2
 * corners equally spaced on the mel scale mel(f) = 2595 log10(1 + f / 700)
 * between low_hz and high_hz; the triangles are not area-normalised.
 * Everything is computed in double and stored as float. Deltas, dither and
 * liftering are left out: a recurrent stack sees the context itself. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <fftw3.h>

#include "internal.h"
#include "recur/speech.h"

#define FEATURES_PI 3.14159265358979323846 /* M_PI is not in strict C11 */
#define MAX_SAMPLE_RATE 768000
#define MAX_FFT (1 << 22)
#define MAX_MELS 1024

struct recur_features {
    recur_features_config config;
    int win, hop, nfft, nbins, dim;
    double *window;      /* [win] */
    double *filters;     /* [M, nbins] */
    int *first, *last;   /* [M] the bins where filter m is non-zero */
    double *dct;         /* [num_ceps, M] (MFCC) */
    double *frame;       /* [nfft] FFT input */
    fftw_complex *spectrum; /* [nbins] FFT output */
    double *logmel;      /* [M] */
    fftw_plan plan;
};

/* ---- names ------------------------------------------------------------- */

const char *recur_features_kind_name(recur_features_kind kind)
{
    switch (kind) {
    case RECUR_FEATURES_FBANK: return "fbank";
    case RECUR_FEATURES_MFCC: return "mfcc";
    }
    return "unknown";
}

int recur_features_kind_parse(const char *name, recur_features_kind *out)
{
    if (name && strcasecmp(name, "fbank") == 0)
        *out = RECUR_FEATURES_FBANK;
    else if (name && strcasecmp(name, "mfcc") == 0)
        *out = RECUR_FEATURES_MFCC;
    else
        return recur__error(RECUR_E_INVALID, "unknown feature kind '%s' (fbank or mfcc)",
                            name ? name : "(null)");
    return RECUR_OK;
}

const char *recur_window_name(recur_window window)
{
    switch (window) {
    case RECUR_WINDOW_HAMMING: return "hamming";
    case RECUR_WINDOW_HANN: return "hann";
    }
    return "unknown";
}

int recur_window_parse(const char *name, recur_window *out)
{
    if (name && strcasecmp(name, "hamming") == 0)
        *out = RECUR_WINDOW_HAMMING;
    else if (name && strcasecmp(name, "hann") == 0)
        *out = RECUR_WINDOW_HANN;
    else
        return recur__error(RECUR_E_INVALID, "unknown window '%s' (hamming or hann)",
                            name ? name : "(null)");
    return RECUR_OK;
}

const char *recur_norm_name(recur_norm_kind kind)
{
    switch (kind) {
    case RECUR_NORM_NONE: return "none";
    case RECUR_NORM_UTTERANCE: return "utterance";
    case RECUR_NORM_GLOBAL: return "global";
    }
    return "unknown";
}

int recur_norm_parse(const char *name, recur_norm_kind *out)
{
    static const char *const names[] = {"none", "utterance", "global"};
    for (int i = 0; i < 3; i++)
        if (name && strcasecmp(name, names[i]) == 0) {
            *out = (recur_norm_kind)i;
            return RECUR_OK;
        }
    return recur__error(RECUR_E_INVALID, "unknown normalisation '%s' (none, utterance or "
                        "global)", name ? name : "(null)");
}

/* ---- configuration -------------------------------------------------------- */

recur_features_config recur_features_config_default(void)
{
    recur_features_config c;
    memset(&c, 0, sizeof c);
    c.kind = RECUR_FEATURES_FBANK;
    c.sample_rate = 8000;
    c.window_ms = 25.0;
    c.hop_ms = 10.0;
    c.fft_size = 0;
    c.num_mels = 40;
    c.num_ceps = 13;
    c.low_hz = 20.0;
    c.high_hz = 0.0;
    c.preemphasis = 0.97;
    c.energy_floor = 1e-8;
    c.window = RECUR_WINDOW_HAMMING;
    return c;
}

static double hz_to_mel(double f) { return 2595.0 * log10(1.0 + f / 700.0); }
static double mel_to_hz(double m) { return 700.0 * (pow(10.0, m / 2595.0) - 1.0); }

/* Window, hop and FFT sizes in samples; the config's numbers must be finite. */
static void sizes_of(const recur_features_config *c, int *win, int *hop, int *nfft)
{
    *win = (int)lround(c->window_ms * c->sample_rate / 1000.0);
    *hop = (int)lround(c->hop_ms * c->sample_rate / 1000.0);
    int n = c->fft_size;
    if (n == 0) {
        n = 1;
        while (n < *win)
            n *= 2;
    }
    *nfft = n;
}

static double high_of(const recur_features_config *c)
{
    return c->high_hz > 0.0 ? c->high_hz : c->sample_rate / 2.0;
}

/* Corner frequency i (0..M+1) of the filterbank, in Hz. */
static double corner_hz(const recur_features_config *c, int i)
{
    const double lo = hz_to_mel(c->low_hz), hi = hz_to_mel(high_of(c));
    return mel_to_hz(lo + (hi - lo) * i / (c->num_mels + 1));
}

/* fb[m, k]: the triangle of filter m at frequency f. */
static double triangle(double f, double left, double centre, double right)
{
    if (f > left && f <= centre)
        return (f - left) / (centre - left);
    if (f > centre && f < right)
        return (right - f) / (right - centre);
    return 0.0;
}

int recur_features_config_check(const recur_features_config *c)
{
    if (!c)
        return recur__error(RECUR_E_INVALID, "features config is NULL");
    if (c->kind != RECUR_FEATURES_FBANK && c->kind != RECUR_FEATURES_MFCC)
        return recur__error(RECUR_E_INVALID, "features config: unknown kind %d", (int)c->kind);
    if (c->window != RECUR_WINDOW_HAMMING && c->window != RECUR_WINDOW_HANN)
        return recur__error(RECUR_E_INVALID, "features config: unknown window %d",
                            (int)c->window);
    if (c->sample_rate < 1 || c->sample_rate > MAX_SAMPLE_RATE)
        return recur__error(RECUR_E_INVALID, "features config: sample_rate %d outside 1..%d",
                            c->sample_rate, MAX_SAMPLE_RATE);
    if (!(c->window_ms > 0.0 && c->window_ms <= 1000.0))
        return recur__error(RECUR_E_INVALID, "features config: window_ms %g outside (0, 1000]",
                            c->window_ms);
    if (!(c->hop_ms > 0.0 && c->hop_ms <= 1000.0))
        return recur__error(RECUR_E_INVALID, "features config: hop_ms %g outside (0, 1000]",
                            c->hop_ms);
    if (c->fft_size < 0 || c->fft_size > MAX_FFT)
        return recur__error(RECUR_E_INVALID, "features config: fft_size %d outside 0..%d",
                            c->fft_size, MAX_FFT);
    int win, hop, nfft;
    sizes_of(c, &win, &hop, &nfft);
    if (win < 2)
        return recur__error(RECUR_E_INVALID, "features config: a %g ms window at %d Hz is %d "
                            "samples; at least 2 are needed", c->window_ms, c->sample_rate, win);
    if (hop < 1)
        return recur__error(RECUR_E_INVALID, "features config: a %g ms hop at %d Hz is less "
                            "than one sample", c->hop_ms, c->sample_rate);
    if (nfft < win || nfft > MAX_FFT)
        return recur__error(RECUR_E_INVALID, "features config: fft_size %d is smaller than the "
                            "window of %d samples", nfft, win);
    if (c->num_mels < 1 || c->num_mels > MAX_MELS)
        return recur__error(RECUR_E_INVALID, "features config: num_mels %d outside 1..%d",
                            c->num_mels, MAX_MELS);
    if (c->kind == RECUR_FEATURES_MFCC && (c->num_ceps < 1 || c->num_ceps > c->num_mels))
        return recur__error(RECUR_E_INVALID, "features config: num_ceps %d outside 1..num_mels "
                            "(%d)", c->num_ceps, c->num_mels);
    const double nyquist = c->sample_rate / 2.0;
    if (!(c->low_hz >= 0.0 && c->low_hz < nyquist))
        return recur__error(RECUR_E_INVALID, "features config: low_hz %g outside [0, %g)",
                            c->low_hz, nyquist);
    if (!(c->high_hz >= 0.0 && c->high_hz <= nyquist) || !(high_of(c) > c->low_hz))
        return recur__error(RECUR_E_INVALID, "features config: high_hz %g must lie in "
                            "(low_hz %g, %g] (0: %g)", c->high_hz, c->low_hz, nyquist, nyquist);
    if (!(c->preemphasis >= 0.0 && c->preemphasis < 1.0))
        return recur__error(RECUR_E_INVALID, "features config: preemphasis %g outside [0, 1)",
                            c->preemphasis);
    if (!(c->energy_floor > 0.0 && isfinite(c->energy_floor)))
        return recur__error(RECUR_E_INVALID, "features config: energy_floor %g must be positive",
                            c->energy_floor);
    /* Every filter must see at least one bin, or its log energy is the
     * floor for every input: too many filters for the FFT's resolution. */
    const int nbins = nfft / 2 + 1;
    for (int m = 0; m < c->num_mels; m++) {
        const double l = corner_hz(c, m), ce = corner_hz(c, m + 1), r = corner_hz(c, m + 2);
        int covered = 0;
        for (int k = 0; k < nbins && !covered; k++)
            covered = triangle((double)k * c->sample_rate / nfft, l, ce, r) > 0.0;
        if (!covered)
            return recur__error(RECUR_E_INVALID, "features config: mel filter %d (%.1f .. %.1f "
                                "Hz) covers no bin of a %d-point FFT at %d Hz; use fewer "
                                "num_mels, a larger fft_size or a higher low_hz", m, l, r, nfft,
                                c->sample_rate);
    }
    return RECUR_OK;
}

int recur_features_dim(const recur_features_config *c)
{
    if (!c || (c->kind != RECUR_FEATURES_FBANK && c->kind != RECUR_FEATURES_MFCC))
        return 0;
    return c->kind == RECUR_FEATURES_MFCC ? c->num_ceps : c->num_mels;
}

int recur_features_frames(const recur_features_config *c, size_t n)
{
    if (!c || n == 0 || !(c->window_ms > 0.0) || !(c->hop_ms > 0.0))
        return 0;
    int win, hop, nfft;
    sizes_of(c, &win, &hop, &nfft);
    if (win < 1 || hop < 1)
        return 0;
    if (n <= (size_t)win)
        return 1;
    const size_t extra = (n - (size_t)win + (size_t)hop - 1) / (size_t)hop;
    return extra >= (size_t)INT32_MAX ? 0 : (int)(1 + extra);
}

/* ---- the extractor ------------------------------------------------------------ */

void recur_features_free(recur_features *f)
{
    if (!f)
        return;
    if (f->plan) {
        /* FFTW's planner is not thread-safe; creation and destruction go
         * through one named critical section. */
#pragma omp critical(recur_fftw_planner)
        fftw_destroy_plan(f->plan);
    }
    recur__free(f->window);
    recur__free(f->filters);
    recur__free(f->first);
    recur__free(f->last);
    recur__free(f->dct);
    recur__free(f->frame);
    recur__free(f->spectrum);
    recur__free(f->logmel);
    recur__free(f);
}

int recur_features_create(const recur_features_config *config, recur_features **out)
{
    if (!out)
        return recur__error(RECUR_E_INVALID, "recur_features_create: out is NULL");
    *out = NULL;
    int status = recur_features_config_check(config);
    if (status)
        return status;
    recur_features *f = recur__calloc(1, sizeof *f);
    if (!f)
        return recur__error(RECUR_E_NOMEM, "out of memory creating a feature extractor");
    f->config = *config;
    sizes_of(config, &f->win, &f->hop, &f->nfft);
    f->nbins = f->nfft / 2 + 1;
    f->dim = recur_features_dim(config);
    const int M = config->num_mels, W = f->win, K = f->nbins;
    f->window = recur__calloc((size_t)W, sizeof(double));
    f->filters = recur__calloc((size_t)M * (size_t)K, sizeof(double));
    f->first = recur__calloc((size_t)M, sizeof(int));
    f->last = recur__calloc((size_t)M, sizeof(int));
    f->frame = recur__calloc((size_t)f->nfft, sizeof(double));
    f->spectrum = recur__calloc((size_t)K, sizeof(fftw_complex));
    f->logmel = recur__calloc((size_t)M, sizeof(double));
    if (config->kind == RECUR_FEATURES_MFCC)
        f->dct = recur__calloc((size_t)config->num_ceps * (size_t)M, sizeof(double));
    if (!f->window || !f->filters || !f->first || !f->last || !f->frame || !f->spectrum ||
        !f->logmel || (config->kind == RECUR_FEATURES_MFCC && !f->dct)) {
        recur_features_free(f);
        return recur__error(RECUR_E_NOMEM, "out of memory creating a feature extractor");
    }
    const double a0 = config->window == RECUR_WINDOW_HAMMING ? 0.54 : 0.5;
    for (int j = 0; j < W; j++)
        f->window[j] = a0 - (1.0 - a0) * cos(2.0 * FEATURES_PI * j / (W - 1));
    for (int m = 0; m < M; m++) {
        const double l = corner_hz(config, m), ce = corner_hz(config, m + 1);
        const double r = corner_hz(config, m + 2);
        f->first[m] = K;
        f->last[m] = -1;
        for (int k = 0; k < K; k++) {
            double w = triangle((double)k * config->sample_rate / f->nfft, l, ce, r);
            f->filters[(size_t)m * K + k] = w;
            if (w > 0.0) {
                if (k < f->first[m])
                    f->first[m] = k;
                f->last[m] = k;
            }
        }
    }
    if (f->dct) {
        for (int c = 0; c < config->num_ceps; c++) {
            const double s = c == 0 ? sqrt(1.0 / M) : sqrt(2.0 / M);
            for (int m = 0; m < M; m++)
                f->dct[(size_t)c * M + m] = s * cos(FEATURES_PI * c * (2.0 * m + 1.0) / (2.0 * M));
        }
    }
#pragma omp critical(recur_fftw_planner)
    f->plan = fftw_plan_dft_r2c_1d(f->nfft, f->frame, f->spectrum, FFTW_ESTIMATE);
    if (!f->plan) {
        recur_features_free(f);
        return recur__error(RECUR_E_NOMEM, "FFTW could not plan a %d-point FFT", f->nfft);
    }
    *out = f;
    return RECUR_OK;
}

const recur_features_config *recur_features_get_config(const recur_features *f)
{
    return &f->config;
}

double recur_features_filter_weight(const recur_features *f, int m, int k)
{
    if (!f || m < 0 || m >= f->config.num_mels || k < 0 || k >= f->nbins)
        return 0.0;
    return f->filters[(size_t)m * f->nbins + k];
}

int recur_features_compute(recur_features *f, const float *samples, size_t n, float *out)
{
    if (!f || !samples || !out)
        return recur__error(RECUR_E_INVALID, "recur_features_compute: NULL argument");
    if (n == 0)
        return recur__error(RECUR_E_INVALID, "recur_features_compute: no samples");
    const int T = recur_features_frames(&f->config, n);
    if (T < 1)
        return recur__error(RECUR_E_INVALID, "recur_features_compute: %zu samples are too many "
                            "frames", n);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(samples[i]))
            return recur__error(RECUR_E_NUMERIC, "recur_features_compute: sample %zu is not "
                                "finite", i);
    const int M = f->config.num_mels, K = f->nbins, F = f->dim;
    const double a = f->config.preemphasis, floor_e = f->config.energy_floor;
    for (int t = 0; t < T; t++) {
        const size_t start = (size_t)t * (size_t)f->hop;
        for (int j = 0; j < f->nfft; j++) {
            double v = 0.0;
            const size_t i = start + (size_t)j;
            if (j < f->win && i < n)
                v = (double)samples[i] - (i > 0 ? a * (double)samples[i - 1] : 0.0);
            f->frame[j] = j < f->win ? v * f->window[j] : 0.0;
        }
        fftw_execute(f->plan);
        for (int m = 0; m < M; m++) {
            double e = 0.0;
            const double *w = f->filters + (size_t)m * K;
            for (int k = f->first[m]; k <= f->last[m]; k++) {
                const double re = f->spectrum[k][0], im = f->spectrum[k][1];
                e += w[k] * (re * re + im * im);
            }
            f->logmel[m] = log(e > floor_e ? e : floor_e);
        }
        float *row = out + (size_t)t * (size_t)F;
        if (f->config.kind == RECUR_FEATURES_FBANK) {
            for (int m = 0; m < M; m++)
                row[m] = (float)f->logmel[m];
        } else {
            for (int c = 0; c < F; c++) {
                double s = 0.0;
                const double *d = f->dct + (size_t)c * M;
                for (int m = 0; m < M; m++)
                    s += d[m] * f->logmel[m];
                row[c] = (float)s;
            }
        }
    }
    return RECUR_OK;
}

/* ---- normalisation ---------------------------------------------------------------- */

void recur_features_accumulate(const float *x, int T, int F, double *sum, double *sum_sq)
{
    for (int t = 0; t < T; t++)
        for (int d = 0; d < F; d++) {
            const double v = x[(size_t)t * F + d];
            sum[d] += v;
            sum_sq[d] += v * v;
        }
}

int recur_features_moments(const double *sum, const double *sum_sq, int64_t count, int F,
                           float *mean, float *std)
{
    if (count < 1 || F < 1 || !sum || !sum_sq || !mean || !std)
        return recur__error(RECUR_E_INVALID, "recur_features_moments: count %lld and F %d must "
                            "be positive", (long long)count, F);
    for (int d = 0; d < F; d++) {
        const double mu = sum[d] / (double)count;
        double var = sum_sq[d] / (double)count - mu * mu;
        double s = var > 0.0 ? sqrt(var) : 0.0;
        mean[d] = (float)mu;
        std[d] = (float)(s > RECUR_NORM_MIN_STD ? s : RECUR_NORM_MIN_STD);
    }
    return RECUR_OK;
}

void recur_features_standardize(float *x, int T, int F, const float *mean, const float *std)
{
    for (int t = 0; t < T; t++)
        for (int d = 0; d < F; d++) {
            float *v = x + (size_t)t * F + d;
            *v = (*v - mean[d]) / std[d];
        }
}

void recur_features_normalize(float *x, int T, int F)
{
    if (!x || T < 1 || F < 1)
        return;
    double sum[MAX_MELS], sum_sq[MAX_MELS];
    float mean[MAX_MELS], std[MAX_MELS];
    /* F never exceeds MAX_MELS for features made here; wider inputs are
     * normalised in slices of MAX_MELS dimensions. */
    for (int d0 = 0; d0 < F; d0 += MAX_MELS) {
        const int width = F - d0 < MAX_MELS ? F - d0 : MAX_MELS;
        memset(sum, 0, sizeof sum);
        memset(sum_sq, 0, sizeof sum_sq);
        for (int t = 0; t < T; t++)
            for (int d = 0; d < width; d++) {
                const double v = x[(size_t)t * F + d0 + d];
                sum[d] += v;
                sum_sq[d] += v * v;
            }
        recur_features_moments(sum, sum_sq, T, width, mean, std);
        for (int t = 0; t < T; t++)
            for (int d = 0; d < width; d++) {
                float *v = x + (size_t)t * F + d0 + d;
                *v = (*v - mean[d]) / std[d];
            }
    }
}
