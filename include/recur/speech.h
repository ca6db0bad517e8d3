/* recur/speech.h - speech recognition with CTC: audio input (libsndfile,
 * resampling with libsamplerate, mono mixdown), acoustic features (log-mel
 * filterbank energies and MFCCs through FFTW) with per-utterance or global
 * normalisation, labelled recordings (Free Spoken Digit Dataset file names
 * or a manifest), connected utterances joined from clips, and the acoustic
 * model: optional frame subsampling -> (bidirectional) recurrent stack ->
 * linear head over the alphabet plus the CTC blank, trained with
 * recur_ctc_loss and decoded greedily or by prefix beam search. The math and
 * the checkpoint format are in docs/speech.md.
 *
 * Conventions: samples are float in [-1, 1] (16-bit PCM / 32768); feature
 * matrices are [T, F] row-major (frame t's F values at x + t * F); batches
 * are time-major [T, B, F] like the recurrent stacks. Buffers the library
 * returns are freed with recur_free(). */
#ifndef RECUR_SPEECH_H
#define RECUR_SPEECH_H

#include <stddef.h>
#include <stdint.h>

#include "recur/core.h"
#include "recur/data.h"
#include "recur/rnn.h"
#include "recur/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Audio ------------------------------------------------------------- */

/* Longest recording recur_audio_read accepts, in seconds. */
#define RECUR_AUDIO_MAX_SECONDS 3600

/* Reads any file libsndfile reads (WAV, FLAC, Ogg, AIFF, ...), mixes its
 * channels down to mono (the mean of the channels) and, when sample_rate > 0
 * and differs from the file's rate, resamples to sample_rate with
 * libsamplerate (recur_audio_resample). sample_rate == 0 keeps the file's
 * rate. *samples receives a new array of *count floats (free with
 * recur_free; count >= 1); *file_rate (may be NULL) the file's own rate.
 * Errors, each message naming the path:
 *   RECUR_E_NOT_FOUND  no such file;  RECUR_E_IO  it cannot be opened/read;
 *   RECUR_E_FORMAT     not an audio file libsndfile understands (its reason
 *                      quoted), a truncated file (a WAV whose data chunk
 *                      declares more bytes than the file holds, or fewer
 *                      frames readable than the header announces), no
 *                      samples at all, a non-finite sample (float files);
 *   RECUR_E_UNSUPPORTED  longer than RECUR_AUDIO_MAX_SECONDS, or a rate
 *                      ratio libsamplerate cannot do (beyond 1/256..256). */
RECUR_API int recur_audio_read(const char *path, int sample_rate, float **samples, size_t *count,
                               int *file_rate);

/* Resamples in[0..n) from rate `from` to rate `to` (Hz, > 0) with
 * libsamplerate's SRC_SINC_MEDIUM_QUALITY band-limited sinc interpolator
 * (97 dB SNR, 90% bandwidth). *out receives a new array of *out_count
 * floats, about n * to / from of them (a copy when the rates are equal).
 * RECUR_E_INVALID for bad arguments, RECUR_E_UNSUPPORTED when to / from is
 * outside [1/256, 256], RECUR_E_NOMEM. */
RECUR_API int recur_audio_resample(const float *in, size_t n, int from, int to, float **out,
                                   size_t *out_count);

/* ---- Features ------------------------------------------------------------ */

typedef enum recur_features_kind {
    RECUR_FEATURES_FBANK, /* log-mel filterbank energies: F = num_mels */
    RECUR_FEATURES_MFCC   /* their orthonormal DCT-II, first num_ceps: F = num_ceps */
} recur_features_kind;

typedef enum recur_window {
    RECUR_WINDOW_HAMMING, /* 0.54 - 0.46 cos(2 pi n / (N - 1)) */
    RECUR_WINDOW_HANN     /* 0.5 - 0.5 cos(2 pi n / (N - 1)) */
} recur_window;

/* "fbank", "mfcc"; "hamming", "hann". Parsers give RECUR_E_INVALID
 * (listing the choices) for any other name. */
RECUR_API const char *recur_features_kind_name(recur_features_kind kind);
RECUR_API int recur_features_kind_parse(const char *name, recur_features_kind *out);
RECUR_API const char *recur_window_name(recur_window window);
RECUR_API int recur_window_parse(const char *name, recur_window *out);

/* The analysis (docs/speech.md): pre-emphasis y[n] = x[n] - a x[n-1] over
 * the whole signal; frames of W = round(window_ms * rate / 1000) samples
 * every H = round(hop_ms * rate / 1000) samples, the last one zero-padded;
 * a window; the power spectrum |X_k|^2, k = 0..N/2, of an N-point real FFT
 * (FFTW); M triangular filters on the HTK mel scale
 * mel(f) = 2595 log10(1 + f / 700), their corners equally spaced in mel from
 * low_hz to high_hz; log(max(energy, energy_floor)); for MFCCs the
 * orthonormal DCT-II of the M log energies, coefficients 0..num_ceps-1. */
typedef struct recur_features_config {
    recur_features_kind kind;
    int sample_rate;     /* Hz of the samples given to the extractor */
    double window_ms;    /* analysis window length */
    double hop_ms;       /* frame shift */
    int fft_size;        /* N, >= W; 0: the smallest power of two >= W */
    int num_mels;        /* M */
    int num_ceps;        /* MFCC only: 1..M coefficients kept */
    double low_hz;       /* lowest filter corner, >= 0 */
    double high_hz;      /* highest filter corner, <= rate / 2; 0: rate / 2 */
    double preemphasis;  /* a in [0, 1); 0: off */
    double energy_floor; /* > 0: log argument floor */
    recur_window window;
} recur_features_config;

/* fbank, 8000 Hz, 25 ms window, 10 ms hop, fft_size 0, 40 mels, 13
 * cepstra, 20 Hz .. rate/2, pre-emphasis 0.97, energy floor 1e-8, Hamming. */
RECUR_API recur_features_config recur_features_config_default(void);
/* Checks every field and that each filter covers at least one FFT bin;
 * RECUR_E_INVALID naming the field otherwise. */
RECUR_API int recur_features_config_check(const recur_features_config *config);
/* F, the values per frame (num_mels or num_ceps); 0 for an invalid config. */
RECUR_API int recur_features_dim(const recur_features_config *config);
/* Frames for n samples: 1 + ceil((n - W) / H) when n > W, else 1 (n >= 1). */
RECUR_API int recur_features_frames(const recur_features_config *config, size_t n);

/* An extractor: the FFTW plan, window, filterbank and DCT matrix, plus a
 * workspace. One object must not be used by two threads at once (make one
 * per thread); creating and freeing objects is thread-safe. */
typedef struct recur_features recur_features;

RECUR_API int recur_features_create(const recur_features_config *config, recur_features **out);
RECUR_API void recur_features_free(recur_features *features);
RECUR_API const recur_features_config *recur_features_get_config(const recur_features *features);

/* Computes the features of samples[0..n) (n >= 1) into out [T, F], with
 * T = recur_features_frames(config, n) and F = recur_features_dim(config).
 * Internally in double. RECUR_E_INVALID for n == 0 or NULL pointers,
 * RECUR_E_NUMERIC for a non-finite sample. */
RECUR_API int recur_features_compute(recur_features *features, const float *samples, size_t n,
                                     float *out);

/* The filterbank weight of filter m at FFT bin k (0 <= k <= N/2), for tests
 * and plots; 0 outside the ranges. */
RECUR_API double recur_features_filter_weight(const recur_features *features, int m, int k);

/* ---- Normalisation ------------------------------------------------------- */

typedef enum recur_norm_kind {
    RECUR_NORM_NONE,      /* features used as computed */
    RECUR_NORM_UTTERANCE, /* each utterance to zero mean, unit variance per dimension */
    RECUR_NORM_GLOBAL     /* mean and std over the training set, stored with the model */
} recur_norm_kind;

/* "none", "utterance", "global". */
RECUR_API const char *recur_norm_name(recur_norm_kind kind);
RECUR_API int recur_norm_parse(const char *name, recur_norm_kind *out);

/* The smallest standard deviation used to divide by: a dimension that is
 * (nearly) constant is centred, not blown up. */
#define RECUR_NORM_MIN_STD 1e-3

/* Moments accumulated over many utterances: sum[F] += column sums of x
 * [T, F], sum_sq[F] += column sums of squares (in double). */
RECUR_API void recur_features_accumulate(const float *x, int T, int F, double *sum,
                                         double *sum_sq);
/* mean = sum / count, std = max(sqrt(sum_sq / count - mean^2),
 * RECUR_NORM_MIN_STD) for each of F dimensions. count >= 1
 * (RECUR_E_INVALID otherwise). */
RECUR_API int recur_features_moments(const double *sum, const double *sum_sq, int64_t count,
                                     int F, float *mean, float *std);
/* x[t, f] = (x[t, f] - mean[f]) / std[f] for every frame of x [T, F]. */
RECUR_API void recur_features_standardize(float *x, int T, int F, const float *mean,
                                          const float *std);
/* Per-utterance normalisation of x [T, F] in place (the three above over
 * this one utterance). */
RECUR_API void recur_features_normalize(float *x, int T, int F);

/* ---- Labelled recordings ------------------------------------------------- */

/* Parses a Free Spoken Digit Dataset file name "{digit}_{speaker}_{take}.wav"
 * (a path is allowed; only the last component is read): digit one of 0-9,
 * speaker a non-empty name of letters, digits or '-', take a decimal
 * number. *digit, *take and speaker[0..speaker_size) (NUL-terminated) are
 * written on success. RECUR_E_FORMAT (quoting the name) otherwise. */
RECUR_API int recur_fsdd_parse_name(const char *path, int *digit, char *speaker,
                                    size_t speaker_size, int *take);

/* One labelled recording. Strings are owned by the list. */
typedef struct recur_speech_entry {
    const char *path;       /* the file (as found or as written in the manifest,
                               relative ones made relative to its folder) */
    const char *transcript; /* UTF-8 */
    const char *speaker;    /* from an FSDD name, else "" */
    int take;               /* from an FSDD name, else -1 */
} recur_speech_entry;

typedef struct recur_speech_list recur_speech_list;

/* Reads a list of labelled recordings from `path`:
 *   - a folder: every "*.wav" in it (or, when it has none, in its
 *     "recordings" subfolder, FSDD's layout), each named as FSDD names them
 *     (the transcript is the digit); other files are ignored; sorted by
 *     path;
 *   - a file: a manifest of "path<TAB>transcript" lines (UTF-8; empty lines
 *     and lines starting with '#' skipped; relative paths are relative to
 *     the manifest's folder; the speaker and take are filled in when the
 *     file name is an FSDD name), in file order.
 * Errors: RECUR_E_NOT_FOUND / RECUR_E_IO for the path; RECUR_E_FORMAT for a
 * .wav file with another name (naming it), a manifest line without a tab,
 * with an empty path or transcript, or not UTF-8 (naming the line); and
 * RECUR_E_FORMAT for a list with no entry. */
RECUR_API int recur_speech_list_read(const char *path, recur_speech_list **out);
RECUR_API void recur_speech_list_free(recur_speech_list *list);
RECUR_API size_t recur_speech_list_count(const recur_speech_list *list);
/* NULL for an index out of range. Valid until the list is freed. */
RECUR_API const recur_speech_entry *recur_speech_list_at(const recur_speech_list *list,
                                                          size_t index);

/* ---- Connected utterances ---------------------------------------------- */

/* How recur_speech_join builds an utterance from clips. */
typedef struct recur_speech_join_config {
    int sample_rate;      /* Hz of the clips */
    double pause_min_s;   /* silence between two clips: uniform in */
    double pause_max_s;   /*   [pause_min_s, pause_max_s] */
    double edge_max_s;    /* silence before the first / after the last clip:
                             uniform in [0, edge_max_s] */
    double snr_db;        /* white Gaussian noise over the whole utterance at
                             this signal-to-noise ratio (signal power: the
                             mean square of the clips' samples); +INFINITY:
                             no noise */
    double speed_min;     /* speed perturbation: each clip played f times */
    double speed_max;     /*   faster, f uniform in [speed_min, speed_max] within
                             [0.5, 2] (tempo and pitch change together; the clip
                             is resampled by 1/f); 1 and 1: unchanged */
} recur_speech_join_config;

/* 8000 Hz, pauses 0.05 .. 0.30 s, edges up to 0.15 s, SNR 30 dB, speed 1. */
RECUR_API recur_speech_join_config recur_speech_join_config_default(void);

/* Joins clips[0..count) (count >= 1, each of lengths[i] >= 1 samples at the
 * config's rate) in that order with random pauses, speeds and noise drawn
 * from rng (in that order: the count + 1 silences, then each clip's speed
 * when speed_min != speed_max or != 1, then the noise). *out receives a
 * new array of *out_count samples (free with recur_free).
 * RECUR_E_INVALID for bad arguments or config. */
RECUR_API int recur_speech_join(const float *const *clips, const size_t *lengths, int count,
                                const recur_speech_join_config *config, recur_rng *rng,
                                float **out, size_t *out_count);

/* ---- The acoustic model -------------------------------------------------- */

typedef enum recur_subsample_mode {
    RECUR_SUBSAMPLE_STACK, /* k consecutive frames concatenated: input k*F */
    RECUR_SUBSAMPLE_SKIP   /* every k-th frame kept: input F */
} recur_subsample_mode;

/* "stack", "skip". */
RECUR_API const char *recur_subsample_name(recur_subsample_mode mode);
RECUR_API int recur_subsample_parse(const char *name, recur_subsample_mode *out);

typedef struct recur_speech_config {
    recur_features_config features;
    recur_norm_kind norm;
    recur_cell cell;
    int hidden_size;   /* H per direction */
    int num_layers;    /* L */
    int bidirectional; /* D = 2 when non-zero */
    float dropout;     /* between recurrent layers, training only */
    int subsample;     /* k >= 1: the stack sees ceil(T / k) frames */
    recur_subsample_mode subsample_mode;
} recur_speech_config;

/* Default features, utterance normalisation, bidirectional LSTM, H = 128,
 * L = 2, no dropout, subsample 2 by stacking. */
RECUR_API recur_speech_config recur_speech_config_default(void);
RECUR_API int recur_speech_config_check(const recur_speech_config *config);

/* The model: x [T, B, F] -> subsample -> xs [T', B, I] (T' = ceil(T / k),
 * I = k*F (stack) or F (skip)) -> stack -> y [T', B, D*H] -> head ->
 * logits [T', B, C] with C = V + 1: class 0 is the CTC blank and class
 * 1 + i is letter i of the alphabet. One flat parameter array holds the
 * stack's tensors (named rnn.<PyTorch name>), then head.weight [C, D*H] and
 * head.bias [C]. */
typedef struct recur_speech recur_speech;

/* Creates a model (weights zero: call recur_speech_init or load). The
 * alphabet (a character vocabulary, V >= 1) is copied. With RECUR_NORM_GLOBAL
 * the normalisation starts as mean 0, std 1: set it with
 * recur_speech_set_norm. RECUR_E_INVALID for a bad config or a byte
 * vocabulary. */
RECUR_API int recur_speech_create(const recur_speech_config *config, const recur_vocab *alphabet,
                                  recur_speech **out);
RECUR_API void recur_speech_free(recur_speech *model);

RECUR_API const recur_speech_config *recur_speech_get_config(const recur_speech *model);
/* The alphabet, owned by the model. */
RECUR_API const recur_vocab *recur_speech_alphabet(const recur_speech *model);
/* C = V + 1. */
RECUR_API int recur_speech_num_classes(const recur_speech *model);
/* F: feature values per frame. */
RECUR_API int recur_speech_feature_dim(const recur_speech *model);
/* T' = ceil(T / k): frames of logits for T feature frames. */
RECUR_API int recur_speech_output_frames(const recur_speech *model, int T);

RECUR_API float *recur_speech_params(recur_speech *model);
RECUR_API float *recur_speech_grads(recur_speech *model);
RECUR_API size_t recur_speech_size(const recur_speech *model);
RECUR_API void recur_speech_zero_grad(recur_speech *model);
/* The stack inside (borrowed; lives as long as the model). */
RECUR_API recur_rnn *recur_speech_rnn(recur_speech *model);
/* PyTorch's defaults: stack and head ~ U(-1/sqrt(H'), 1/sqrt(H')) with H'
 * = H for the stack and D*H (the head's fan-in) for the head. */
RECUR_API void recur_speech_init(recur_speech *model, recur_rng *rng);

/* Named views in state_dict order: "rnn.weight_ih_l0", ..., "head.weight",
 * "head.bias". */
RECUR_API int recur_speech_tensor_count(const recur_speech *model);
RECUR_API const recur_param_view *recur_speech_tensor_at(const recur_speech *model, int index);
RECUR_API const recur_param_view *recur_speech_tensor_find(const recur_speech *model,
                                                           const char *name);

/* Global normalisation statistics, mean [F] and std [F] (every std > 0 and
 * all finite, else RECUR_E_INVALID). Kept for any norm kind but used only
 * with RECUR_NORM_GLOBAL. get copies them out. */
RECUR_API int recur_speech_set_norm(recur_speech *model, const float *mean, const float *std);
RECUR_API void recur_speech_get_norm(const recur_speech *model, float *mean, float *std);

/* Features of one utterance as the model expects them: computed with the
 * model's feature config from samples at its sample rate, then normalised
 * by its norm kind. *x receives a new [*T, F] array (free with recur_free). */
RECUR_API int recur_speech_featurize(recur_speech *model, const float *samples, size_t n,
                                     float **x, int *T);

/* A padded batch of utterances for training and evaluation. Every pointer
 * is borrowed for the call. */
typedef struct recur_speech_batch {
    int T, B;
    const float *x;               /* [T, B, F] features; frames past lengths[b] unread */
    const int32_t *lengths;       /* [B] frames of each utterance, 1..T */
    const int32_t *labels;        /* [B, S] alphabet ids 0..V-1, row b padded past
                                     label_lengths[b] */
    int S;
    const int32_t *label_lengths; /* [B] 0..S */
} recur_speech_batch;

/* One training step: forward, the CTC loss of every utterance, and the
 * gradient of their MEAN over the batch ADDED to recur_speech_grads
 * (dropout drawn from rng, which may be NULL when dropout is 0). *loss
 * receives that mean in nats per utterance. RECUR_E_INVALID (naming the
 * item) for a bad length or label, or an utterance too short for its
 * transcript: CTC needs T' >= its labels plus one per pair of equal
 * neighbours; RECUR_E_NUMERIC for a non-finite loss. */
RECUR_API int recur_speech_train_step(recur_speech *model, const recur_speech_batch *batch,
                                      recur_rng *rng, double *loss);
/* The same mean loss without gradients or dropout. */
RECUR_API int recur_speech_evaluate(recur_speech *model, const recur_speech_batch *batch,
                                    double *loss);

/* Inference: logits [T', B, C] (T' = recur_speech_output_frames(T)) of x
 * [T, B, F] with lengths [B] (NULL: all T); out_lengths [B] (may be NULL)
 * receives each utterance's T'. Logits past an utterance's end are the
 * head's bias. */
RECUR_API int recur_speech_logits(recur_speech *model, const float *x, int T, int B,
                                  const int32_t *lengths, float *logits, int32_t *out_lengths);

/* Decodes T frames of logits (frame t at logits + t * stride, stride >= C)
 * to text: greedy when beam_width <= 1, else prefix beam search of that
 * width. *text receives a new NUL-terminated UTF-8 string (free with
 * recur_free). */
RECUR_API int recur_speech_decode(const recur_speech *model, const float *logits, int T,
                                  size_t stride, int beam_width, char **text);

/* Samples (at the model's rate) to text: featurize, logits, decode. */
RECUR_API int recur_speech_transcribe(recur_speech *model, const float *samples, size_t n,
                                      int beam_width, char **text);

/* ---- Checkpoints --------------------------------------------------------- */

/* The "format" of the "recur_speech" metadata; newer files are refused. */
#define RECUR_SPEECH_FORMAT 1

/* Adds the model to a safetensors writer: its tensors (F32, named as
 * recur_speech_tensor_at, plus "norm.mean" [F] and "norm.std" [F]) and the
 * "recur_speech" metadata (a JSON object with the feature, normalisation
 * and model settings and the alphabet; docs/speech.md). The tensors are
 * borrowed: keep the model alive and unchanged until the writer saves. The
 * caller may add more (a training state) and then save. */
RECUR_API int recur_speech_write(recur_speech *model, recur_st_writer *writer);
/* Builds a model from an opened file. `name` (e.g. the path) starts every
 * message. RECUR_E_FORMAT for missing or malformed metadata, fields,
 * tensors or shapes, or non-finite weights; RECUR_E_UNSUPPORTED for a
 * newer format. */
RECUR_API int recur_speech_read(const recur_st *st, const char *name, recur_speech **out);
/* recur_speech_write to a new writer saved atomically at path; and
 * recur_st_open + recur_speech_read. */
RECUR_API int recur_speech_save(recur_speech *model, const char *path);
RECUR_API int recur_speech_load(const char *path, recur_speech **out);

#ifdef __cplusplus
}
#endif
#endif
