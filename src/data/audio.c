/* audio.c - audio input for speech: any file libsndfile reads, mixed down
 * to mono (the mean of the channels) and resampled with libsamplerate's
 * band-limited sinc converter when the caller asks for another rate.
 *
 * libsndfile accepts a WAV file cut short without complaint: it shrinks the
 * data chunk to what the file holds and records "data : N (should be M)" in
 * its parse log. Such a file is almost always a failed copy or download, so
 * the reader refuses it: it reads the log, and also checks that every frame
 * the header announces can be read. Samples come as floats in [-1, 1]
 * (libsndfile normalises integer PCM by 2^(bits-1)). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <samplerate.h>
#include <sndfile.h>

#include "internal.h"
#include "recur/speech.h"

/* Frames read per sf_readf_float call. */
#define READ_BLOCK 4096

/* Looks in libsndfile's parse log for a WAV data chunk that declares more
 * bytes than the file holds ("data : 9454 (should be 8956)"). A declared
 * size of 0 or 0xffffffff is how streaming writers mark "unknown" and is
 * not a truncation. Returns 1 and the two sizes when the file is cut. */
static int wav_truncated(SNDFILE *file, long long *declared, long long *present)
{
    char log[8192];
    log[0] = '\0';
    sf_command(file, SFC_GET_LOG_INFO, log, sizeof log);
    for (const char *p = log; (p = strstr(p, "data : ")) != NULL; p += 7) {
        if (p != log && p[-1] != '\n')
            continue;
        char *end;
        long long d = strtoll(p + 7, &end, 10);
        if (end == p + 7 || strncmp(end, " (should be ", 12) != 0)
            return 0;
        long long s = strtoll(end + 12, NULL, 10);
        if (d == 0 || d == 0xffffffffLL || s >= d)
            return 0;
        *declared = d;
        *present = s;
        return 1;
    }
    return 0;
}

int recur_audio_resample(const float *in, size_t n, int from, int to, float **out,
                         size_t *out_count)
{
    if (!out || !out_count)
        return recur__error(RECUR_E_INVALID, "recur_audio_resample: NULL output");
    *out = NULL;
    *out_count = 0;
    if (!in || n == 0)
        return recur__error(RECUR_E_INVALID, "recur_audio_resample: no samples");
    if (from <= 0 || to <= 0)
        return recur__error(RECUR_E_INVALID, "recur_audio_resample: rates must be positive "
                            "(from %d Hz to %d Hz)", from, to);
    const double ratio = (double)to / (double)from;
    if (!src_is_valid_ratio(ratio))
        return recur__error(RECUR_E_UNSUPPORTED, "cannot resample from %d Hz to %d Hz: the "
                            "ratio %g is outside libsamplerate's 1/256 .. 256", from, to, ratio);
    if (n > (size_t)(RECUR_AUDIO_MAX_SECONDS) * (size_t)from + 1)
        return recur__error(RECUR_E_UNSUPPORTED, "cannot resample %zu samples: longer than "
                            "%d s at %d Hz", n, RECUR_AUDIO_MAX_SECONDS, from);
    if (from == to) {
        float *copy = recur__calloc(n, sizeof *copy);
        if (!copy)
            return recur__error(RECUR_E_NOMEM, "out of memory copying %zu samples", n);
        memcpy(copy, in, n * sizeof *copy);
        *out = copy;
        *out_count = n;
        return RECUR_OK;
    }
    /* Room for ceil(n * ratio) frames plus the filter's tail. */
    const size_t cap = (size_t)ceil((double)n * ratio) + 64;
    float *buf = recur__calloc(cap, sizeof *buf);
    if (!buf)
        return recur__error(RECUR_E_NOMEM, "out of memory resampling %zu samples", n);
    SRC_DATA data;
    memset(&data, 0, sizeof data);
    data.data_in = in;
    data.input_frames = (long)n;
    data.data_out = buf;
    data.output_frames = (long)cap;
    data.end_of_input = 1;
    data.src_ratio = ratio;
    int err = src_simple(&data, SRC_SINC_MEDIUM_QUALITY, 1);
    if (err) {
        recur__free(buf);
        return recur__error(RECUR_E_INVALID, "resampling from %d Hz to %d Hz failed: %s", from,
                            to, src_strerror(err));
    }
    if (data.output_frames_gen <= 0) {
        recur__free(buf);
        return recur__error(RECUR_E_INVALID, "resampling %zu samples from %d Hz to %d Hz gave "
                            "no output (too short)", n, from, to);
    }
    *out = buf;
    *out_count = (size_t)data.output_frames_gen;
    return RECUR_OK;
}

int recur_audio_read(const char *path, int sample_rate, float **samples, size_t *count,
                     int *file_rate)
{
    if (!samples || !count)
        return recur__error(RECUR_E_INVALID, "recur_audio_read: NULL output");
    *samples = NULL;
    *count = 0;
    if (!path)
        return recur__error(RECUR_E_INVALID, "recur_audio_read: path is NULL");
    if (sample_rate < 0)
        return recur__error(RECUR_E_INVALID, "recur_audio_read: sample_rate %d < 0", sample_rate);
    struct stat st;
    if (stat(path, &st) != 0)
        return recur__error(errno == ENOENT ? RECUR_E_NOT_FOUND : RECUR_E_IO, "%s: %s", path,
                            strerror(errno));
    if (S_ISDIR(st.st_mode))
        return recur__error(RECUR_E_IO, "%s: is a folder, not an audio file", path);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return recur__error(errno == ENOENT ? RECUR_E_NOT_FOUND : RECUR_E_IO, "%s: %s", path,
                            strerror(errno));
    SF_INFO info;
    memset(&info, 0, sizeof info);
    SNDFILE *file = sf_open_fd(fileno(fp), SFM_READ, &info, 0);
    if (!file) {
        int status = recur__error(RECUR_E_FORMAT, "%s: not an audio file libsndfile can read "
                                  "(%s)", path, sf_strerror(NULL));
        fclose(fp);
        return status;
    }
    int status = RECUR_OK;
    float *mono = NULL, *block = NULL;
    const int channels = info.channels;
    long long declared = 0, present = 0;
    if (channels < 1 || info.samplerate < 1) {
        status = recur__error(RECUR_E_FORMAT, "%s: %d channels at %d Hz", path, channels,
                              info.samplerate);
        goto done;
    }
    if (wav_truncated(file, &declared, &present)) {
        status = recur__error(RECUR_E_FORMAT, "%s: truncated: the data chunk declares %lld "
                              "bytes of audio but the file holds only %lld", path, declared,
                              present);
        goto done;
    }
    if (info.frames <= 0) {
        status = recur__error(RECUR_E_FORMAT, "%s: the file holds no audio samples", path);
        goto done;
    }
    if (info.frames > (sf_count_t)RECUR_AUDIO_MAX_SECONDS * info.samplerate) {
        status = recur__error(RECUR_E_UNSUPPORTED, "%s: %lld frames at %d Hz is longer than "
                              "%d s", path, (long long)info.frames, info.samplerate,
                              RECUR_AUDIO_MAX_SECONDS);
        goto done;
    }
    const size_t frames = (size_t)info.frames;
    mono = recur__calloc(frames, sizeof *mono);
    block = recur__calloc((size_t)READ_BLOCK * (size_t)channels, sizeof *block);
    if (!mono || !block) {
        status = recur__error(RECUR_E_NOMEM, "%s: out of memory for %zu frames", path, frames);
        goto done;
    }
    size_t got = 0;
    while (got < frames) {
        sf_count_t want = (sf_count_t)(frames - got < READ_BLOCK ? frames - got : READ_BLOCK);
        sf_count_t n = sf_readf_float(file, block, want);
        if (n <= 0)
            break;
        for (sf_count_t i = 0; i < n; i++) {
            double sum = 0.0;
            for (int c = 0; c < channels; c++)
                sum += block[(size_t)i * (size_t)channels + (size_t)c];
            float v = (float)(sum / channels);
            if (!isfinite(v)) {
                status = recur__error(RECUR_E_FORMAT, "%s: sample %zu is not finite", path,
                                      got + (size_t)i);
                goto done;
            }
            mono[got + (size_t)i] = v;
        }
        got += (size_t)n;
    }
    if (got < frames) {
        const char *why = sf_error(file) ? sf_strerror(file) : "end of file";
        status = recur__error(RECUR_E_FORMAT, "%s: truncated: the header announces %zu frames "
                              "but only %zu could be read (%s)", path, frames, got, why);
        goto done;
    }
    if (file_rate)
        *file_rate = info.samplerate;
    if (sample_rate > 0 && sample_rate != info.samplerate) {
        float *resampled = NULL;
        size_t n_out = 0;
        status = recur_audio_resample(mono, frames, info.samplerate, sample_rate, &resampled,
                                      &n_out);
        if (status) {
            char message[768];
            snprintf(message, sizeof message, "%s", recur_last_error());
            status = recur__error(status, "%s: %s", path, message);
            goto done;
        }
        recur__free(mono);
        mono = resampled;
        *count = n_out;
    } else {
        *count = frames;
    }
    *samples = mono;
    mono = NULL;
done:
    recur__free(block);
    recur__free(mono);
    sf_close(file);
    fclose(fp);
    return status;
}
