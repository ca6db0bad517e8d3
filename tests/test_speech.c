/* test_speech.c - speech recognition pieces (include/recur/speech.h):
 *   - features: the frame count; the filterbank against the HTK formulas;
 *     log-mel and MFCC values of a synthetic tone against a direct DFT in
 *     double; the mel bin at the tone's frequency dominates; doubling the
 *     amplitude adds log 4; configs that cannot work are refused;
 *   - normalisation: per utterance gives mean 0 / std 1, global stats;
 *   - audio: WAV files written here byte by byte (mono, stereo mixdown,
 *     16 kHz resampled to 8 kHz, FLAC through libsndfile) and malformed,
 *     truncated, empty and missing files; the committed FSDD clips;
 *   - FSDD names, folders and manifests; joining clips into utterances;
 *   - the model: output frames, a gradient check of the CTC training step
 *     by central differences (varlen, bidirectional, both subsampling
 *     modes), too-short utterances, decoding of hand-made posteriors
 *     (greedy and beam), save/load round trip and corrupt checkpoints;
 *   - a tiny training on synthetic two-tone "speech" that learns to
 *     transcribe sequences of 1-3 tones. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sndfile.h>

#include "check.h"
#include "recur.h"

#define PI 3.14159265358979323846

static char tmp_dir[64];

static void tmp_path(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", tmp_dir, name);
}

/* ---- helpers: WAV bytes ---------------------------------------------------- */

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* A 16-bit PCM WAV image of frames x channels samples (interleaved);
 * returns its size. buf must hold 44 + 2 * frames * channels bytes. */
static size_t make_wav(uint8_t *buf, int rate, int channels, const int16_t *pcm, size_t frames)
{
    const uint32_t data = (uint32_t)(frames * (size_t)channels * 2);
    memcpy(buf, "RIFF", 4);
    put32(buf + 4, 36 + data);
    memcpy(buf + 8, "WAVEfmt ", 8);
    put32(buf + 16, 16);
    put16(buf + 20, 1);
    put16(buf + 22, (uint16_t)channels);
    put32(buf + 24, (uint32_t)rate);
    put32(buf + 28, (uint32_t)(rate * channels * 2));
    put16(buf + 32, (uint16_t)(channels * 2));
    put16(buf + 34, 16);
    memcpy(buf + 36, "data", 4);
    put32(buf + 40, data);
    for (size_t i = 0; i < frames * (size_t)channels; i++)
        put16(buf + 44 + 2 * i, (uint16_t)pcm[i]);
    return 44 + data;
}

static void write_file(const char *path, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fwrite(bytes, 1, n, f);
    fclose(f);
}

/* ---- features ------------------------------------------------------------- */

static double mel_of(double f) { return 2595.0 * log10(1.0 + f / 700.0); }
static double hz_of(double m) { return 700.0 * (pow(10.0, m / 2595.0) - 1.0); }

/* The HTK triangle of filter m (corners i = m, m+1, m+2) at frequency f. */
static double direct_weight(const recur_features_config *c, int m, double f)
{
    const double hi = c->high_hz > 0 ? c->high_hz : c->sample_rate / 2.0;
    const double lo_m = mel_of(c->low_hz), hi_m = mel_of(hi);
    double corner[3];
    for (int i = 0; i < 3; i++)
        corner[i] = hz_of(lo_m + (hi_m - lo_m) * (m + i) / (c->num_mels + 1));
    if (f > corner[0] && f <= corner[1])
        return (f - corner[0]) / (corner[1] - corner[0]);
    if (f > corner[1] && f < corner[2])
        return (corner[2] - f) / (corner[2] - corner[1]);
    return 0.0;
}

/* Log-mel energies of frame t, straight from the definitions: pre-emphasis,
 * Hamming window, a direct O(N^2) DFT, triangles, log. */
static void direct_logmel(const recur_features_config *c, const float *x, size_t n, int t,
                          double *logmel)
{
    const int W = (int)lround(c->window_ms * c->sample_rate / 1000.0);
    const int H = (int)lround(c->hop_ms * c->sample_rate / 1000.0);
    int N = 1;
    while (N < W)
        N *= 2;
    double s[4096];
    for (int j = 0; j < N; j++) {
        size_t i = (size_t)t * H + (size_t)j;
        double y = 0.0;
        if (j < W && i < n)
            y = x[i] - (i > 0 ? c->preemphasis * x[i - 1] : 0.0);
        s[j] = j < W ? y * (0.54 - 0.46 * cos(2.0 * PI * j / (W - 1))) : 0.0;
    }
    for (int m = 0; m < c->num_mels; m++)
        logmel[m] = 0.0;
    for (int k = 0; k <= N / 2; k++) {
        double re = 0.0, im = 0.0;
        for (int j = 0; j < N; j++) {
            re += s[j] * cos(2.0 * PI * j * k / N);
            im -= s[j] * sin(2.0 * PI * j * k / N);
        }
        const double p = re * re + im * im, f = (double)k * c->sample_rate / N;
        for (int m = 0; m < c->num_mels; m++)
            logmel[m] += direct_weight(c, m, f) * p;
    }
    for (int m = 0; m < c->num_mels; m++)
        logmel[m] = log(logmel[m] > c->energy_floor ? logmel[m] : c->energy_floor);
}

static float *tone(size_t n, int rate, double hz, double amplitude)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(amplitude * sin(2.0 * PI * hz * (double)i / rate));
    return x;
}

static void test_features(void)
{
    recur_features_config c = recur_features_config_default();
    /* 25 ms / 10 ms at 8 kHz: W = 200, H = 80, N = 256. */
    CHECK(recur_features_frames(&c, 200) == 1);
    CHECK(recur_features_frames(&c, 1) == 1);
    CHECK(recur_features_frames(&c, 201) == 2);
    CHECK(recur_features_frames(&c, 280) == 2);
    CHECK(recur_features_frames(&c, 281) == 3);
    CHECK(recur_features_frames(&c, 4000) == 49);
    CHECK(recur_features_frames(&c, 0) == 0);
    CHECK(recur_features_dim(&c) == 40);

    recur_features *fx = NULL;
    CHECK_OK(recur_features_create(&c, &fx));
    if (!fx)
        return;
    /* The filterbank equals the HTK formulas at every bin. */
    double worst = 0.0;
    for (int m = 0; m < c.num_mels; m++)
        for (int k = 0; k <= 128; k++) {
            double d = fabs(recur_features_filter_weight(fx, m, k) -
                            direct_weight(&c, m, k * 8000.0 / 256.0));
            worst = d > worst ? d : worst;
        }
    CHECK_NEAR(worst, 0.0, 1e-12);

    /* A tone at the centre of filter 20: that filter dominates every frame. */
    const int m0 = 20;
    const double f0 = hz_of(mel_of(c.low_hz) + (mel_of(4000.0) - mel_of(c.low_hz)) * (m0 + 1) /
                            (c.num_mels + 1));
    const size_t n = 4000;
    float *x = tone(n, 8000, f0, 0.25);
    float *x2 = tone(n, 8000, f0, 0.5);
    const int T = recur_features_frames(&c, n), F = c.num_mels;
    float *fb = malloc((size_t)T * F * sizeof *fb), *fb2 = malloc((size_t)T * F * sizeof *fb2);
    CHECK_OK(recur_features_compute(fx, x, n, fb));
    CHECK_OK(recur_features_compute(fx, x2, n, fb2));
    int dominated = 1;
    double margin = 1e9;
    for (int t = 1; t < T - 3; t++) {
        const float *row = fb + (size_t)t * F;
        int best = 0;
        for (int m = 1; m < F; m++)
            best = row[m] > row[best] ? m : best;
        dominated &= best == m0;
        for (int m = 0; m < F; m++)
            if (abs(m - m0) > 3 && row[m0] - row[m] < margin)
                margin = row[m0] - row[m];
    }
    CHECK_MSG(dominated, "mel filter %d (%.1f Hz) should hold the most energy in every frame",
              m0, f0);
    CHECK_MSG(margin > 5.0, "filters far from the tone should be > 5 nats below it (%.2f)",
              margin);
    /* Power is quadratic in amplitude: twice the amplitude adds log 4. */
    for (int t = 2; t < 5; t++)
        CHECK_NEAR(fb2[(size_t)t * F + m0] - fb[(size_t)t * F + m0], log(4.0), 1e-4);

    /* Log-mel values against the direct computation, several frames
     * (including the zero-padded last one). */
    double logmel[64];
    const int frames[] = {0, 3, 17, T - 1};
    double err = 0.0;
    for (int i = 0; i < 4; i++) {
        direct_logmel(&c, x, n, frames[i], logmel);
        for (int m = 0; m < F; m++) {
            double d = fabs(fb[(size_t)frames[i] * F + m] - logmel[m]);
            err = d > err ? d : err;
        }
    }
    CHECK_NEAR(err, 0.0, 1e-4);

    /* MFCC: the orthonormal DCT-II of the direct log-mel values. */
    recur_features_config cm = c;
    cm.kind = RECUR_FEATURES_MFCC;
    cm.num_ceps = 13;
    recur_features *fm = NULL;
    CHECK_OK(recur_features_create(&cm, &fm));
    CHECK(recur_features_dim(&cm) == 13);
    float *mf = malloc((size_t)T * 13 * sizeof *mf);
    CHECK_OK(recur_features_compute(fm, x, n, mf));
    direct_logmel(&c, x, n, 3, logmel);
    err = 0.0;
    for (int k = 0; k < 13; k++) {
        double s = 0.0;
        for (int m = 0; m < F; m++)
            s += logmel[m] * cos(PI * k * (2.0 * m + 1.0) / (2.0 * F));
        s *= k == 0 ? sqrt(1.0 / F) : sqrt(2.0 / F);
        double d = fabs(mf[3 * 13 + k] - s);
        err = d > err ? d : err;
    }
    CHECK_NEAR(err, 0.0, 1e-4);
    /* Silence gives the floor everywhere. */
    float zeros[300] = {0};
    CHECK_OK(recur_features_compute(fx, zeros, 300, fb));
    CHECK_NEAR(fb[5], log(c.energy_floor), 1e-5);
    /* A NaN sample and no samples are refused. */
    x[100] = NAN;
    CHECK_STATUS(recur_features_compute(fx, x, n, fb), RECUR_E_NUMERIC);
    CHECK_ERROR_MENTIONS("sample 100");
    CHECK_STATUS(recur_features_compute(fx, x, 0, fb), RECUR_E_INVALID);

    /* Configs that cannot work. */
    recur_features_config bad = c;
    bad.num_mels = 200;
    CHECK_STATUS(recur_features_config_check(&bad), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("covers no bin");
    bad = c;
    bad.high_hz = 5000;
    CHECK_STATUS(recur_features_config_check(&bad), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("high_hz");
    bad = cm;
    bad.num_ceps = 41;
    CHECK_STATUS(recur_features_config_check(&bad), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("num_ceps");
    bad = c;
    bad.fft_size = 128;
    CHECK_STATUS(recur_features_config_check(&bad), RECUR_E_INVALID);
    bad = c;
    bad.hop_ms = 0.0;
    recur_features *none = (recur_features *)&bad;
    CHECK_STATUS(recur_features_create(&bad, &none), RECUR_E_INVALID);
    CHECK(none == NULL);
    recur_features_kind kind;
    recur_window window;
    CHECK_OK(recur_features_kind_parse("mfcc", &kind));
    CHECK(kind == RECUR_FEATURES_MFCC);
    CHECK_STATUS(recur_features_kind_parse("plp", &kind), RECUR_E_INVALID);
    CHECK_OK(recur_window_parse("hann", &window));
    CHECK(window == RECUR_WINDOW_HANN);

    recur_features_free(fm);
    recur_features_free(NULL);
    free(mf);
    free(fb);
    free(fb2);
    free(x);
    free(x2);
    recur_features_free(fx);
}

static void test_normalize(void)
{
    enum { T = 50, F = 3 };
    float x[T * F];
    recur_rng rng;
    recur_rng_seed(&rng, 7);
    for (int i = 0; i < T * F; i++)
        x[i] = (float)(3.0 + 2.0 * (i % F) + (1 + i % F) * recur_rng_normal(&rng));
    for (int i = 0; i < T; i++)
        x[i * F + 2] = 4.0f; /* a constant dimension */
    float y[T * F];
    memcpy(y, x, sizeof y);
    recur_features_normalize(y, T, F);
    for (int d = 0; d < F; d++) {
        double s = 0, s2 = 0;
        for (int t = 0; t < T; t++)
            s += y[t * F + d], s2 += (double)y[t * F + d] * y[t * F + d];
        CHECK_NEAR(s / T, 0.0, 1e-5);
        if (d < 2)
            CHECK_NEAR(sqrt(s2 / T - (s / T) * (s / T)), 1.0, 1e-4);
        else
            CHECK_NEAR(s2, 0.0, 1e-6); /* centred, not divided by ~0 */
    }
    /* Global: two halves accumulated give the same as the whole. */
    double sum[F] = {0}, sum_sq[F] = {0};
    recur_features_accumulate(x, T / 2, F, sum, sum_sq);
    recur_features_accumulate(x + (T / 2) * F, T - T / 2, F, sum, sum_sq);
    float mean[F], std[F];
    CHECK_OK(recur_features_moments(sum, sum_sq, T, F, mean, std));
    CHECK_NEAR(std[2], RECUR_NORM_MIN_STD, 1e-9);
    float z[T * F];
    memcpy(z, x, sizeof z);
    recur_features_standardize(z, T, F, mean, std);
    double diff = 0;
    for (int i = 0; i < T * F; i++)
        diff = fmax(diff, fabs(z[i] - y[i]));
    CHECK_NEAR(diff, 0.0, 1e-4);
    CHECK_STATUS(recur_features_moments(sum, sum_sq, 0, F, mean, std), RECUR_E_INVALID);
    recur_norm_kind nk;
    CHECK_OK(recur_norm_parse("global", &nk));
    CHECK(nk == RECUR_NORM_GLOBAL);
    CHECK(strcmp(recur_norm_name(RECUR_NORM_UTTERANCE), "utterance") == 0);
}

/* ---- audio ------------------------------------------------------------------ */

static void test_audio(void)
{
    char path[256];
    enum { N = 1000 };
    static int16_t pcm[2 * 4 * N];
    static uint8_t buf[44 + 2 * 2 * 4 * N];
    for (int i = 0; i < N; i++)
        pcm[i] = (int16_t)((i * 37) % 20000 - 10000);
    size_t size = make_wav(buf, 8000, 1, pcm, N);
    tmp_path(path, sizeof path, "mono.wav");
    write_file(path, buf, size);
    float *s = NULL;
    size_t n = 0;
    int rate = 0;
    CHECK_OK(recur_audio_read(path, 0, &s, &n, &rate));
    CHECK(n == N && rate == 8000);
    int same = s != NULL;
    for (int i = 0; same && i < N; i++)
        same = s[i] == pcm[i] / 32768.0f;
    CHECK_MSG(same, "16-bit samples must read as value / 32768");
    recur_free(s);
    /* Asking for the file's own rate changes nothing. */
    CHECK_OK(recur_audio_read(path, 8000, &s, &n, NULL));
    CHECK(n == N);
    recur_free(s);

    /* Stereo: the mean of the two channels. */
    for (int i = 0; i < N; i++) {
        pcm[2 * i] = (int16_t)(1000 + i);
        pcm[2 * i + 1] = (int16_t)(-3000 + 3 * i);
    }
    size = make_wav(buf, 8000, 2, pcm, N);
    tmp_path(path, sizeof path, "stereo.wav");
    write_file(path, buf, size);
    CHECK_OK(recur_audio_read(path, 0, &s, &n, NULL));
    CHECK(n == N);
    double worst = 0;
    for (int i = 0; s && i < N; i++)
        worst = fmax(worst, fabs(s[i] - ((1000 + i) + (-3000 + 3 * i)) / 2.0 / 32768.0));
    CHECK_NEAR(worst, 0.0, 1e-6);
    recur_free(s);

    /* 16 kHz 440 Hz tone read at 8 kHz: half the samples, the same tone. */
    const int n16 = 4 * N;
    for (int i = 0; i < n16; i++)
        pcm[i] = (int16_t)lround(8000.0 * sin(2 * PI * 440.0 * i / 16000.0));
    size = make_wav(buf, 16000, 1, pcm, (size_t)n16);
    tmp_path(path, sizeof path, "tone16k.wav");
    write_file(path, buf, size);
    CHECK_OK(recur_audio_read(path, 8000, &s, &n, &rate));
    CHECK(rate == 16000);
    CHECK_MSG(n >= (size_t)n16 / 2 - 2 && n <= (size_t)n16 / 2 + 2, "resampled count %zu", n);
    worst = 0;
    for (int i = 200; s && i < (int)n - 200; i++)
        worst = fmax(worst, fabs(s[i] - 8000.0 / 32768.0 * sin(2 * PI * 440.0 * i / 8000.0)));
    CHECK_NEAR(worst, 0.0, 5e-3);
    recur_free(s);
    CHECK_STATUS(recur_audio_read(path, 20, &s, &n, NULL), RECUR_E_UNSUPPORTED);
    CHECK_ERROR_MENTIONS("ratio");

    /* Another format through libsndfile: FLAC at 22050 Hz. */
    tmp_path(path, sizeof path, "tone.flac");
    SF_INFO info = {0};
    info.samplerate = 22050;
    info.channels = 1;
    info.format = SF_FORMAT_FLAC | SF_FORMAT_PCM_16;
    SNDFILE *f = sf_open(path, SFM_WRITE, &info);
    CHECK(f != NULL);
    if (f) {
        sf_write_short(f, pcm, n16);
        sf_close(f);
        CHECK_OK(recur_audio_read(path, 8000, &s, &n, &rate));
        CHECK(rate == 22050);
        CHECK_NEAR((double)n, n16 * 8000.0 / 22050.0, 2.0);
        recur_free(s);
    }

    /* Truncated: cut in the middle of the data. */
    size = make_wav(buf, 8000, 1, pcm, N);
    tmp_path(path, sizeof path, "cut.wav");
    write_file(path, buf, size / 2);
    s = (float *)buf; /* must be reset to NULL on failure */
    CHECK_STATUS(recur_audio_read(path, 0, &s, &n, NULL), RECUR_E_FORMAT);
    CHECK_ERROR_MENTIONS("truncated");
    CHECK_ERROR_MENTIONS("cut.wav");
    CHECK(s == NULL && n == 0);
    /* Cut inside the header. */
    tmp_path(path, sizeof path, "header.wav");
    write_file(path, buf, 30);
    CHECK_STATUS(recur_audio_read(path, 0, &s, &n, NULL), RECUR_E_FORMAT);
    CHECK_ERROR_MENTIONS("header.wav");
    /* Not audio at all. */
    tmp_path(path, sizeof path, "text.wav");
    write_file(path, "hello, this is not a sound file at all\n", 39);
    CHECK_STATUS(recur_audio_read(path, 0, &s, &n, NULL), RECUR_E_FORMAT);
    CHECK_ERROR_MENTIONS("not an audio file");
    /* A RIFF/WAVE header whose fmt chunk is garbage. */
    memcpy(buf + 20, "\xff\xff\x00\x00\x00\x00\x00\x00", 8);
    tmp_path(path, sizeof path, "badfmt.wav");
    write_file(path, buf, size);
    CHECK_STATUS(recur_audio_read(path, 0, &s, &n, NULL), RECUR_E_FORMAT);
    /* A valid header with no samples. */
    size = make_wav(buf, 8000, 1, pcm, 0);
    tmp_path(path, sizeof path, "empty.wav");
    write_file(path, buf, size);
    CHECK_STATUS(recur_audio_read(path, 0, &s, &n, NULL), RECUR_E_FORMAT);
    CHECK_ERROR_MENTIONS("no audio");
    /* An empty file, a missing file, a folder. */
    tmp_path(path, sizeof path, "zero.wav");
    write_file(path, "", 0);
    CHECK_STATUS(recur_audio_read(path, 0, &s, &n, NULL), RECUR_E_FORMAT);
    tmp_path(path, sizeof path, "missing.wav");
    CHECK_STATUS(recur_audio_read(path, 0, &s, &n, NULL), RECUR_E_NOT_FOUND);
    CHECK_ERROR_MENTIONS("missing.wav");
    CHECK_STATUS(recur_audio_read(tmp_dir, 0, &s, &n, NULL), RECUR_E_IO);

    /* The committed FSDD clips: 8 kHz mono 16-bit, (size - 44) / 2 samples. */
    const char *clip = RECUR_SOURCE_DIR "/data/fsdd/2_theo_34.wav";
    struct stat st;
    CHECK(stat(clip, &st) == 0);
    CHECK_OK(recur_audio_read(clip, 8000, &s, &n, &rate));
    CHECK(rate == 8000 && n == ((size_t)st.st_size - 44) / 2);
    double peak = 0;
    for (size_t i = 0; s && i < n; i++)
        peak = fmax(peak, fabs(s[i]));
    CHECK_MSG(peak > 0.01 && peak <= 1.0, "peak %g", peak);
    recur_free(s);

    /* Resampling directly. */
    float in[100], *out = NULL;
    for (int i = 0; i < 100; i++)
        in[i] = (float)i;
    CHECK_OK(recur_audio_resample(in, 100, 8000, 8000, &out, &n));
    CHECK(n == 100 && out && out[99] == 99.0f);
    recur_free(out);
    CHECK_STATUS(recur_audio_resample(in, 100, 0, 8000, &out, &n), RECUR_E_INVALID);
}

/* ---- names, lists, joining ------------------------------------------------------ */

static void test_lists(void)
{
    int digit = -1, take = -1;
    char speaker[32];
    CHECK_OK(recur_fsdd_parse_name("a/b/7_jackson_32.wav", &digit, speaker, sizeof speaker, &take));
    CHECK(digit == 7 && take == 32 && strcmp(speaker, "jackson") == 0);
    const char *bad[] = {"7_jackson.wav", "x_jackson_1.wav", "7__1.wav", "7_jack son_1.wav",
                         "7_jackson_1.mp3", "17_jackson_1.wav", "7_jackson_1a.wav",
                         "7_jackson_.wav"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK_STATUS(recur_fsdd_parse_name(bad[i], &digit, speaker, sizeof speaker, &take),
                     RECUR_E_FORMAT);
        CHECK_ERROR_MENTIONS(bad[i]);
    }
    CHECK_STATUS(recur_fsdd_parse_name("7_jackson_1.wav", &digit, speaker, 4, &take),
                 RECUR_E_INVALID);

    /* The committed folder: 6 clips, sorted, transcripts from the names. */
    recur_speech_list *list = NULL;
    CHECK_OK(recur_speech_list_read(RECUR_SOURCE_DIR "/data/fsdd", &list));
    CHECK(recur_speech_list_count(list) == 6);
    const recur_speech_entry *e = recur_speech_list_at(list, 0);
    CHECK(e && strstr(e->path, "0_george_31.wav") && strcmp(e->transcript, "0") == 0 &&
          strcmp(e->speaker, "george") == 0 && e->take == 31);
    e = recur_speech_list_at(list, 5);
    CHECK(e && strcmp(e->transcript, "3") == 0 && strcmp(e->speaker, "nicolas") == 0);
    CHECK(recur_speech_list_at(list, 6) == NULL);
    recur_speech_list_free(list);
    recur_speech_list_free(NULL);

    /* A manifest: comments, blank lines, CRLF, relative and absolute paths. */
    char path[256], text[512];
    tmp_path(path, sizeof path, "list.tsv");
    snprintf(text, sizeof text, "# a comment\nclips/one.wav\t12 34\r\n\n%s/x.wav\t7\n",
             tmp_dir);
    write_file(path, text, strlen(text));
    CHECK_OK(recur_speech_list_read(path, &list));
    CHECK(recur_speech_list_count(list) == 2);
    e = recur_speech_list_at(list, 0);
    char want[300];
    snprintf(want, sizeof want, "%s/clips/one.wav", tmp_dir);
    CHECK(e && strcmp(e->path, want) == 0 && strcmp(e->transcript, "12 34") == 0 &&
          e->take == -1 && e->speaker[0] == '\0');
    recur_speech_list_free(list);
    const char *broken[] = {"a.wav\t1\nb.wav 2\n", "a.wav\t\n", "\t12\n", "a.wav\t\xff\n", ""};
    const char *mention[] = {"line 2", "empty transcript", "empty path", "UTF-8", "empty"};
    for (int i = 0; i < 5; i++) {
        write_file(path, broken[i], strlen(broken[i]));
        list = (recur_speech_list *)path;
        int status = recur_speech_list_read(path, &list);
        CHECK(status == RECUR_E_FORMAT || status == RECUR_E_INVALID);
        CHECK_ERROR_MENTIONS(mention[i]);
        CHECK(list == NULL);
    }
    /* A folder with a .wav that is not FSDD-named. */
    char folder[256];
    tmp_path(folder, sizeof folder, "clips");
    mkdir(folder, 0777);
    tmp_path(path, sizeof path, "clips/hello.wav");
    write_file(path, "x", 1);
    CHECK_STATUS(recur_speech_list_read(folder, &list), RECUR_E_FORMAT);
    CHECK_ERROR_MENTIONS("hello.wav");
    unlink(path);
    CHECK_STATUS(recur_speech_list_read(folder, &list), RECUR_E_FORMAT);
    CHECK_ERROR_MENTIONS("no .wav");
    rmdir(folder);
    CHECK_STATUS(recur_speech_list_read(folder, &list), RECUR_E_NOT_FOUND);

    /* Joining: clips in order, pauses and edges within their ranges. */
    float a[300], b[200];
    for (int i = 0; i < 300; i++)
        a[i] = 0.5f + (float)i / 1000.0f;
    for (int i = 0; i < 200; i++)
        b[i] = -0.5f - (float)i / 1000.0f;
    const float *clips[3] = {a, b, a};
    const size_t lengths[3] = {300, 200, 300};
    recur_speech_join_config jc = recur_speech_join_config_default();
    jc.snr_db = INFINITY;
    recur_rng rng, rng2;
    recur_rng_seed(&rng, 3);
    float *out = NULL;
    size_t n = 0;
    CHECK_OK(recur_speech_join(clips, lengths, 3, &jc, &rng, &out, &n));
    /* Find the clips: the first non-zero sample starts a. */
    size_t at = 0;
    while (out && at < n && out[at] == 0.0f)
        at++;
    CHECK_MSG(at <= 0.15 * 8000 + 1, "leading silence %zu samples", at);
    CHECK(out && memcmp(out + at, a, sizeof a) == 0);
    size_t pause = 0;
    at += 300;
    while (out && at < n && out[at] == 0.0f)
        at++, pause++;
    CHECK_MSG(pause >= 400 && pause <= 2400, "pause of %zu samples", pause);
    CHECK(out && at + 200 <= n && memcmp(out + at, b, sizeof b) == 0);
    CHECK(n >= 800 + 800 && n <= 800 + 2 * 2400 + 2 * 1200 + 2);
    recur_free(out);
    /* Noise at 20 dB SNR: the silence's power is signal power / 100. */
    jc.snr_db = 20.0;
    jc.pause_min_s = jc.pause_max_s = 1.0;
    recur_rng_seed(&rng, 4);
    CHECK_OK(recur_speech_join(clips, lengths, 3, &jc, &rng, &out, &n));
    double signal = 0;
    for (int i = 0; i < 300; i++)
        signal += 2.0 * a[i] * a[i];
    for (int i = 0; i < 200; i++)
        signal += b[i] * b[i];
    signal /= 800.0;
    /* the pauses are 8000 samples of pure noise after each clip */
    double noise = 0;
    size_t count = 0;
    for (size_t i = 0; out && i < n; i++)
        if (fabsf(out[i]) < 0.3f)
            noise += (double)out[i] * out[i], count++;
    CHECK_NEAR(noise / (double)count / signal, 0.01, 0.001);
    float *again = NULL;
    size_t n2 = 0;
    recur_rng_seed(&rng2, 4);
    CHECK_OK(recur_speech_join(clips, lengths, 3, &jc, &rng2, &again, &n2));
    CHECK(n2 == n && out && again && memcmp(out, again, n * sizeof *out) == 0);
    recur_free(out);
    recur_free(again);
    CHECK_STATUS(recur_speech_join(clips, lengths, 0, &jc, &rng, &out, &n), RECUR_E_INVALID);

    /* Speed perturbation: a 500 Hz tone played twice as fast is a 1000 Hz
     * tone of half the length (same number of zero crossings). */
    float *sine = tone(1600, 8000, 500.0, 0.5);
    const float *one[1] = {sine};
    const size_t one_len[1] = {1600};
    jc = recur_speech_join_config_default();
    jc.edge_max_s = 0.0;
    jc.snr_db = INFINITY;
    jc.speed_min = jc.speed_max = 2.0;
    CHECK_OK(recur_speech_join(one, one_len, 1, &jc, &rng, &out, &n));
    CHECK_MSG(n >= 798 && n <= 802, "2x speed of 1600 samples gave %zu", n);
    int crossings = 0;
    for (size_t i = 50; out && i + 50 < n; i++)
        crossings += (out[i] < 0) != (out[i + 1] < 0);
    CHECK_MSG(crossings >= 174 && crossings <= 176, "%d zero crossings in 700 samples of a "
              "1000 Hz tone (175 expected)", crossings);
    recur_free(out);
    jc.speed_min = 0.9;
    jc.speed_max = 1.1;
    for (int i = 0; i < 5; i++) {
        CHECK_OK(recur_speech_join(one, one_len, 1, &jc, &rng, &out, &n));
        CHECK_MSG(n >= 1450 && n <= 1780, "speed 0.9..1.1 of 1600 samples gave %zu", n);
        recur_free(out);
    }
    jc.speed_max = 3.0;
    CHECK_STATUS(recur_speech_join(one, one_len, 1, &jc, &rng, &out, &n), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("speed");
    free(sine);
}

/* ---- the model ------------------------------------------------------------------ */

static recur_vocab *alphabet_of(const char *letters)
{
    recur_vocab *v = NULL;
    uint32_t cps[64];
    size_t n = strlen(letters);
    for (size_t i = 0; i < n; i++)
        cps[i] = (unsigned char)letters[i];
    recur_vocab_from_codepoints(cps, n, &v);
    return v;
}

static void gradient_check(recur_cell cell, recur_subsample_mode mode)
{
    recur_speech_config c = recur_speech_config_default();
    c.features.num_mels = 4;
    c.cell = cell;
    c.hidden_size = 3;
    c.num_layers = 2;
    c.bidirectional = 1;
    c.subsample = 2;
    c.subsample_mode = mode;
    recur_vocab *abc = alphabet_of("abc");
    recur_speech *m = NULL;
    CHECK_OK(recur_speech_create(&c, abc, &m));
    recur_vocab_free(abc);
    if (!m)
        return;
    recur_rng rng;
    recur_rng_seed(&rng, 11);
    recur_speech_init(m, &rng);
    enum { T = 9, B = 2, F = 4, S = 3 };
    float x[T * B * F];
    for (int i = 0; i < T * B * F; i++)
        x[i] = (float)recur_rng_normal(&rng);
    const int32_t lengths[B] = {9, 6};
    const int32_t labels[B * S] = {0, 1, 1, 2, 0, 0};
    const int32_t label_lengths[B] = {3, 2};
    recur_speech_batch batch = {T, B, x, lengths, labels, S, label_lengths};
    CHECK(recur_speech_output_frames(m, T) == 5);
    double loss = 0, loss2 = 0;
    recur_speech_zero_grad(m);
    CHECK_OK(recur_speech_train_step(m, &batch, &rng, &loss));
    CHECK_OK(recur_speech_evaluate(m, &batch, &loss2));
    CHECK_NEAR(loss, loss2, 1e-9);
    CHECK(loss > 0 && isfinite(loss));
    float *p = recur_speech_params(m);
    const float *g = recur_speech_grads(m);
    const size_t n = recur_speech_size(m);
    float *grad = malloc(n * sizeof *grad);
    memcpy(grad, g, n * sizeof *grad);
    int bad = 0, checked = 0;
    double nonzero = 0;
    for (int i = 0; i < recur_speech_tensor_count(m); i++) {
        const recur_param_view *v = recur_speech_tensor_at(m, i);
        for (int j = 0; j < 4; j++) {
            size_t k = v->offset + (size_t)recur_rng_below(&rng, v->numel);
            const float saved = p[k];
            const float eps = 1e-2f;
            double lp, lm;
            p[k] = saved + eps;
            recur_speech_evaluate(m, &batch, &lp);
            p[k] = saved - eps;
            recur_speech_evaluate(m, &batch, &lm);
            p[k] = saved;
            const double num = (lp - lm) / (2.0 * eps);
            checked++;
            nonzero += fabs(grad[k]);
            if (fabs(num - grad[k]) > 2e-3 + 2e-2 * fabs(num)) {
                bad++;
                fprintf(stderr, "  %s[%zu]: analytic %.6g numeric %.6g\n", v->name,
                        k - v->offset, grad[k], num);
            }
        }
    }
    CHECK_MSG(bad == 0, "%d of %d gradients differ from central differences (%s, %s)", bad,
              checked, recur_cell_name(cell), recur_subsample_name(mode));
    CHECK(nonzero > 1e-3);
    /* Accumulation: a second step adds the same gradient again. */
    CHECK_OK(recur_speech_train_step(m, &batch, &rng, &loss));
    double worst = 0;
    for (size_t k = 0; k < n; k++)
        worst = fmax(worst, fabs(g[k] - 2.0f * grad[k]));
    CHECK_NEAR(worst, 0.0, 1e-5);

    /* Too short: 3 frames after subsampling cannot hold "b b c" (needs 4). */
    const int32_t short_lengths[B] = {6, 6};
    const int32_t hard[B * S] = {1, 1, 2, 0, 0, 0};
    const int32_t hard_lengths[B] = {3, 1};
    recur_speech_batch sb = {T, B, x, short_lengths, hard, S, hard_lengths};
    CHECK_STATUS(recur_speech_evaluate(m, &sb, &loss), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("utterance 0");
    const int32_t wrong[B * S] = {3, 0, 0, 0, 0, 0};
    recur_speech_batch wb = {T, B, x, lengths, wrong, S, label_lengths};
    CHECK_STATUS(recur_speech_evaluate(m, &wb, &loss), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("alphabet");
    const int32_t too_long[B] = {10, 3};
    recur_speech_batch lb = {T, B, x, too_long, labels, S, label_lengths};
    CHECK_STATUS(recur_speech_train_step(m, &lb, &rng, &loss), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("lengths[0]");
    free(grad);
    recur_speech_free(m);
}

static void test_decode(void)
{
    recur_speech_config c = recur_speech_config_default();
    recur_vocab *digits = alphabet_of("0123456789");
    recur_speech *m = NULL;
    CHECK_OK(recur_speech_create(&c, digits, &m));
    recur_vocab_free(digits);
    if (!m)
        return;
    CHECK(recur_speech_num_classes(m) == 11);
    /* Frames favouring classes 2 2 _ 2 3 3 _ _ 1: "1" "1" "2" "0" -> "1120". */
    enum { T = 9, C = 11 };
    const int path[T] = {2, 2, 0, 2, 3, 3, 0, 0, 1};
    float logits[T * C];
    for (int t = 0; t < T; t++)
        for (int k = 0; k < C; k++)
            logits[t * C + k] = k == path[t] ? 3.0f : 0.0f;
    char *text = NULL;
    CHECK_OK(recur_speech_decode(m, logits, T, C, 1, &text));
    CHECK_MSG(text && strcmp(text, "1120") == 0, "greedy gave '%s'", text ? text : "(null)");
    recur_free(text);
    CHECK_OK(recur_speech_decode(m, logits, T, C, 8, &text));
    CHECK_MSG(text && strcmp(text, "1120") == 0, "beam gave '%s'", text ? text : "(null)");
    recur_free(text);
    /* Where the best path and the most probable labelling differ: two
     * frames of p(blank) = 0.4, p("5") = 0.35, p("6") = 0.25. Greedy reads
     * blank blank -> ""; the beam sums paths: p("5") = 0.35^2 + 2 * 0.35 *
     * 0.4 = 0.4025 > p("6") = 0.2625 > p("") = 0.16. */
    float two[2 * C];
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < C; k++)
            two[t * C + k] = k == 0 ? logf(0.4f) : k == 6 ? logf(0.35f) : k == 7 ? logf(0.25f)
                                                                                 : -INFINITY;
    CHECK_OK(recur_speech_decode(m, two, 2, C, 1, &text));
    CHECK_MSG(text && strcmp(text, "") == 0, "greedy gave '%s'", text ? text : "(null)");
    recur_free(text);
    CHECK_OK(recur_speech_decode(m, two, 2, C, 16, &text));
    CHECK_MSG(text && strcmp(text, "5") == 0, "beam gave '%s'", text ? text : "(null)");
    recur_free(text);
    /* A strided column of a [T, B, C] batch. */
    float batch[T * 2 * C];
    for (int t = 0; t < T; t++) {
        memcpy(batch + (t * 2 + 1) * C, logits + t * C, C * sizeof(float));
        memset(batch + (t * 2) * C, 0, C * sizeof(float));
    }
    CHECK_OK(recur_speech_decode(m, batch + C, T, 2 * C, 1, &text));
    CHECK(text && strcmp(text, "1120") == 0);
    recur_free(text);
    logits[4] = NAN;
    CHECK_STATUS(recur_speech_decode(m, logits, T, C, 1, &text), RECUR_E_NUMERIC);
    CHECK(text == NULL);
    recur_speech_free(m);
}

static void test_checkpoint(void)
{
    recur_speech_config c = recur_speech_config_default();
    c.features.kind = RECUR_FEATURES_MFCC;
    c.features.num_mels = 20;
    c.features.num_ceps = 12;
    c.norm = RECUR_NORM_GLOBAL;
    c.cell = RECUR_CELL_GRU;
    c.hidden_size = 5;
    c.num_layers = 1;
    c.subsample = 3;
    c.subsample_mode = RECUR_SUBSAMPLE_SKIP;
    c.dropout = 0.0f;
    recur_vocab *v = alphabet_of("xyz ");
    recur_speech *m = NULL;
    CHECK_OK(recur_speech_create(&c, v, &m));
    recur_vocab_free(v);
    if (!m)
        return;
    recur_rng rng;
    recur_rng_seed(&rng, 5);
    recur_speech_init(m, &rng);
    float mean[12], std[12];
    for (int i = 0; i < 12; i++)
        mean[i] = 0.1f * (float)i, std[i] = 1.0f + 0.5f * (float)i;
    CHECK_OK(recur_speech_set_norm(m, mean, std));
    std[3] = 0.0f;
    CHECK_STATUS(recur_speech_set_norm(m, mean, std), RECUR_E_INVALID);
    char path[256];
    tmp_path(path, sizeof path, "model.safetensors");
    CHECK_OK(recur_speech_save(m, path));
    recur_speech *back = NULL;
    CHECK_OK(recur_speech_load(path, &back));
    if (!back) {
        recur_speech_free(m);
        return;
    }
    const recur_speech_config *b = recur_speech_get_config(back);
    CHECK(b->features.kind == RECUR_FEATURES_MFCC && b->features.num_ceps == 12 &&
          b->norm == RECUR_NORM_GLOBAL && b->cell == RECUR_CELL_GRU && b->hidden_size == 5 &&
          b->subsample == 3 && b->subsample_mode == RECUR_SUBSAMPLE_SKIP && b->bidirectional);
    CHECK(recur_vocab_size(recur_speech_alphabet(back)) == 4 &&
          recur_vocab_codepoint(recur_speech_alphabet(back), 3) == ' ');
    CHECK(recur_speech_size(back) == recur_speech_size(m) &&
          memcmp(recur_speech_params(back), recur_speech_params(m),
                 recur_speech_size(m) * sizeof(float)) == 0);
    float mean2[12], std2[12];
    recur_speech_get_norm(back, mean2, std2);
    CHECK(memcmp(mean, mean2, sizeof mean) == 0 && std2[11] == 6.5f);
    /* Same transcription machinery: identical logits on a tone. */
    float *x = tone(3000, 8000, 700.0, 0.3), *f1 = NULL, *f2 = NULL;
    int T1 = 0, T2 = 0;
    CHECK_OK(recur_speech_featurize(m, x, 3000, &f1, &T1));
    CHECK_OK(recur_speech_featurize(back, x, 3000, &f2, &T2));
    CHECK(T1 == T2 && T1 == 36 && f1 && f2 && memcmp(f1, f2, (size_t)T1 * 12 * sizeof(float)) == 0);
    char *t1 = NULL, *t2 = NULL;
    CHECK_OK(recur_speech_transcribe(m, x, 3000, 1, &t1));
    CHECK_OK(recur_speech_transcribe(back, x, 3000, 4, &t2));
    CHECK(t1 && t2);
    recur_free(t1);
    recur_free(t2);
    recur_free(f1);
    recur_free(f2);
    free(x);
    recur_speech_free(back);

    /* Corrupt checkpoints, made by replacing the description. */
    const char *cases[][2] = {
        {"{\"format\":99}", "newer"},
        {"[1,2]", "not a JSON object"},
        {"{\"format\":1}", "features"},
    };
    const int64_t extra_shape[1] = {2};
    const float extra[2] = {1, 2}; /* borrowed by the writer until it serializes */
    for (int i = 0; i < 4; i++) {
        recur_st_writer *w = NULL;
        recur_st_writer_create(&w);
        CHECK_OK(recur_speech_write(m, w));
        if (i < 3) {
            recur_st_writer_metadata(w, "recur_speech", cases[i][0]);
        } else {
            recur_st_writer_add(w, "head.extra", RECUR_DTYPE_F32, 1, extra_shape, extra);
        }
        void *bytes = NULL;
        size_t size = 0;
        CHECK_OK(recur_st_writer_serialize(w, &bytes, &size));
        recur_st_writer_free(w);
        recur_st *st = NULL;
        CHECK_OK(recur_st_parse(bytes, size, &st));
        recur_free(bytes);
        recur_speech *bad = (recur_speech *)path;
        int status = recur_speech_read(st, "corrupt.safetensors", &bad);
        CHECK(status == (i == 0 ? RECUR_E_UNSUPPORTED : RECUR_E_FORMAT));
        CHECK(bad == NULL);
        CHECK_ERROR_MENTIONS("corrupt.safetensors");
        CHECK_ERROR_MENTIONS(i < 3 ? cases[i][1] : "head.extra");
        recur_st_free(st);
    }
    /* A field changed so that the shapes no longer match. */
    recur_st *st = NULL;
    CHECK_OK(recur_st_open(path, &st));
    const char *meta = st ? recur_st_metadata(st, "recur_speech") : NULL;
    CHECK(meta && strstr(meta, "\"hidden_size\":5"));
    if (meta) {
        char edited[2048];
        snprintf(edited, sizeof edited, "%s", meta);
        char *at = strstr(edited, "\"hidden_size\":5");
        at[14] = '6';
        recur_st_writer *w = NULL;
        recur_st_writer_create(&w);
        recur_speech_write(m, w);
        recur_st_writer_metadata(w, "recur_speech", edited);
        void *bytes = NULL;
        size_t size = 0;
        recur_st_writer_serialize(w, &bytes, &size);
        recur_st_writer_free(w);
        recur_st *st2 = NULL;
        CHECK_OK(recur_st_parse(bytes, size, &st2));
        recur_free(bytes);
        recur_speech *bad = NULL;
        CHECK_STATUS(recur_speech_read(st2, "edited", &bad), RECUR_E_FORMAT);
        CHECK_ERROR_MENTIONS("rnn.weight_ih_l0");
        recur_st_free(st2);
    }
    recur_st_free(st);
    /* A language-model file or garbage is not a speech model. */
    tmp_path(path, sizeof path, "garbage.safetensors");
    write_file(path, "\x10\x00\x00\x00\x00\x00\x00\x00{}", 10);
    recur_speech *none = NULL;
    CHECK(recur_speech_load(path, &none) == RECUR_E_FORMAT && none == NULL);
    recur_speech_free(m);
}

/* ---- a tiny training that learns ------------------------------------------------- */

/* Letter 'a' is a 600 Hz tone, 'b' a 1800 Hz tone, each 0.12 s with a
 * raised-cosine envelope; utterances of 1-3 letters are joined with pauses
 * and noise at 25 dB. */
static void make_utterance(recur_rng *rng, const float *const letters[2], size_t clip_len,
                           float **samples, size_t *n, int32_t *labels, int32_t *count)
{
    const int k = 1 + (int)recur_rng_below(rng, 3);
    const float *clips[3];
    size_t lengths[3];
    for (int i = 0; i < k; i++) {
        labels[i] = (int32_t)recur_rng_below(rng, 2);
        clips[i] = letters[labels[i]];
        lengths[i] = clip_len;
    }
    *count = k;
    recur_speech_join_config jc = recur_speech_join_config_default();
    jc.pause_min_s = 0.05;
    jc.pause_max_s = 0.15;
    jc.edge_max_s = 0.1;
    jc.snr_db = 25.0;
    recur_speech_join(clips, lengths, k, &jc, rng, samples, n);
}

static void test_training(void)
{
    const size_t clip_len = 960;
    float *letters[2];
    for (int l = 0; l < 2; l++) {
        letters[l] = tone(clip_len, 8000, l == 0 ? 600.0 : 1800.0, 0.3);
        for (size_t i = 0; i < clip_len; i++)
            letters[l][i] *= (float)(0.5 - 0.5 * cos(2 * PI * (double)i / (clip_len - 1)));
    }
    recur_speech_config c = recur_speech_config_default();
    c.features.num_mels = 16;
    c.cell = RECUR_CELL_GRU;
    c.hidden_size = 16;
    c.num_layers = 1;
    c.subsample = 2;
    recur_vocab *ab = alphabet_of("ab");
    recur_speech *m = NULL;
    CHECK_OK(recur_speech_create(&c, ab, &m));
    recur_vocab_free(ab);
    if (!m)
        return;
    recur_rng rng, data;
    recur_rng_seed(&rng, 1);
    recur_rng_seed(&data, 2);
    recur_speech_init(m, &rng);
    recur_optim_config oc = recur_optim_config_default(RECUR_OPTIM_ADAM);
    recur_optim *opt = NULL;
    CHECK_OK(recur_optim_create(&oc, recur_speech_size(m), &opt));
    enum { B = 8, S = 3, MAXT = 120, STEPS = 150 };
    const int F = recur_speech_feature_dim(m);
    float *x = calloc((size_t)MAXT * B * F, sizeof *x);
    int32_t lengths[B], labels[B * S], label_lengths[B];
    double first = 0, last = 0;
    const float *const letter_ptrs[2] = {letters[0], letters[1]};
    for (int step = 0; step < STEPS; step++) {
        int T = 1;
        memset(x, 0, (size_t)MAXT * B * F * sizeof *x);
        for (int b = 0; b < B; b++) {
            float *s = NULL, *feat = NULL;
            size_t n = 0;
            int frames = 0;
            make_utterance(&data, letter_ptrs, clip_len, &s, &n, labels + b * S,
                           &label_lengths[b]);
            recur_speech_featurize(m, s, n, &feat, &frames);
            if (frames > MAXT)
                frames = MAXT;
            lengths[b] = frames;
            T = frames > T ? frames : T;
            for (int t = 0; t < frames; t++)
                memcpy(x + ((size_t)t * B + b) * F, feat + (size_t)t * F, F * sizeof *x);
            recur_free(s);
            recur_free(feat);
        }
        /* x is laid out for MAXT rows of B; the batch uses the first T. */
        recur_speech_batch batch = {T, B, x, lengths, labels, S, label_lengths};
        double loss = 0;
        recur_speech_zero_grad(m);
        int status = recur_speech_train_step(m, &batch, &rng, &loss);
        if (status) {
            CHECK_OK(status);
            break;
        }
        recur_clip_grad_norm(recur_speech_grads(m), recur_speech_size(m), 5.0, NULL);
        recur_optim_step(opt, recur_speech_params(m), recur_speech_grads(m), 0.01f);
        if (step < 10)
            first += loss / 10;
        if (step >= STEPS - 10)
            last += loss / 10;
    }
    CHECK_MSG(last < 0.2 * first, "the CTC loss should fall: first steps %.3f, last %.3f",
              first, last);
    /* Fresh utterances are transcribed. */
    int right = 0;
    for (int i = 0; i < 20; i++) {
        float *s = NULL;
        size_t n = 0;
        int32_t lab[3], k = 0;
        make_utterance(&data, letter_ptrs, clip_len, &s, &n, lab, &k);
        char *text = NULL, want[4] = "";
        for (int j = 0; j < k; j++)
            want[j] = (char)('a' + lab[j]), want[j + 1] = '\0';
        if (recur_speech_transcribe(m, s, n, 1, &text) == RECUR_OK && strcmp(text, want) == 0)
            right++;
        recur_free(text);
        recur_free(s);
    }
    CHECK_MSG(right >= 18, "%d of 20 fresh utterances transcribed right", right);
    free(x);
    recur_optim_free(opt);
    recur_speech_free(m);
    free(letters[0]);
    free(letters[1]);
}

int main(void)
{
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/recur_speech_XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_features();
    test_normalize();
    test_audio();
    test_lists();
    gradient_check(RECUR_CELL_LSTM, RECUR_SUBSAMPLE_STACK);
    gradient_check(RECUR_CELL_GRU, RECUR_SUBSAMPLE_SKIP);
    test_decode();
    test_checkpoint();
    test_training();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp_dir);
    CHECK_DONE();
}
