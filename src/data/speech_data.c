/* speech_data.c - labelled recordings for speech recognition: Free Spoken
 * Digit Dataset file names ("{digit}_{speaker}_{take}.wav"), folders of
 * such files, manifests of "path<TAB>transcript" lines, and connected
 * utterances joined from clips with random pauses, speed perturbation
 * (Ko et al. 2015, "Audio augmentation for speech recognition") and white
 * noise.
 * Reading audio is audio.c's; the lists hold paths and transcripts only. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <samplerate.h>

#include "internal.h"
#include "recur/speech.h"

/* The longest path a list keeps. */
#define MAX_PATH 4096

struct recur_speech_list {
    recur_speech_entry *entries; /* [count]; each string its own allocation */
    size_t count, capacity;
};

/* ---- FSDD names ------------------------------------------------------------ */

int recur_fsdd_parse_name(const char *path, int *digit, char *speaker, size_t speaker_size,
                          int *take)
{
    if (!path || !digit || !speaker || speaker_size == 0 || !take)
        return recur__error(RECUR_E_INVALID, "recur_fsdd_parse_name: NULL argument");
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    const size_t len = strlen(name);
    if (len < 4 || (strcmp(name + len - 4, ".wav") != 0 && strcmp(name + len - 4, ".WAV") != 0))
        return recur__error(RECUR_E_FORMAT, "'%s' is not an FSDD file name "
                            "(digit_speaker_take.wav): no .wav extension", name);
    const size_t stem = len - 4;
    /* digit '_' */
    if (stem < 5 || name[0] < '0' || name[0] > '9' || name[1] != '_')
        return recur__error(RECUR_E_FORMAT, "'%s' is not an FSDD file name "
                            "(digit_speaker_take.wav): it must start with a digit and '_'", name);
    const char *sp = name + 2;
    const char *under = memchr(sp, '_', stem - 2);
    if (!under || under == sp)
        return recur__error(RECUR_E_FORMAT, "'%s' is not an FSDD file name "
                            "(digit_speaker_take.wav): no speaker", name);
    for (const char *p = sp; p < under; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-'))
            return recur__error(RECUR_E_FORMAT, "'%s' is not an FSDD file name: the speaker "
                                "may hold only letters, digits and '-'", name);
    const char *tk = under + 1, *end = name + stem;
    if (tk == end || end - tk > 9)
        return recur__error(RECUR_E_FORMAT, "'%s' is not an FSDD file name: the take must be "
                            "a number of 1 to 9 digits", name);
    int value = 0;
    for (const char *p = tk; p < end; p++) {
        if (*p < '0' || *p > '9')
            return recur__error(RECUR_E_FORMAT, "'%s' is not an FSDD file name: the take must "
                                "be a number", name);
        value = value * 10 + (*p - '0');
    }
    const size_t speaker_len = (size_t)(under - sp);
    if (speaker_len + 1 > speaker_size)
        return recur__error(RECUR_E_INVALID, "'%s': the speaker name needs %zu bytes, %zu given",
                            name, speaker_len + 1, speaker_size);
    memcpy(speaker, sp, speaker_len);
    speaker[speaker_len] = '\0';
    *digit = name[0] - '0';
    *take = value;
    return RECUR_OK;
}

/* ---- lists ---------------------------------------------------------------- */

void recur_speech_list_free(recur_speech_list *list)
{
    if (!list)
        return;
    for (size_t i = 0; i < list->count; i++) {
        recur__free((char *)list->entries[i].path);
        recur__free((char *)list->entries[i].transcript);
        recur__free((char *)list->entries[i].speaker);
    }
    recur__free(list->entries);
    recur__free(list);
}

size_t recur_speech_list_count(const recur_speech_list *list) { return list ? list->count : 0; }

const recur_speech_entry *recur_speech_list_at(const recur_speech_list *list, size_t index)
{
    return list && index < list->count ? &list->entries[index] : NULL;
}

/* Appends an entry (strings copied); speaker and take come from the FSDD
 * name when it is one. */
static int list_add(recur_speech_list *list, const char *path, const char *transcript)
{
    if (list->count == list->capacity) {
        size_t cap = list->capacity ? 2 * list->capacity : 64;
        recur_speech_entry *grown = recur__calloc(cap, sizeof *grown);
        if (!grown)
            return recur__error(RECUR_E_NOMEM, "out of memory listing recordings");
        if (list->count)
            memcpy(grown, list->entries, list->count * sizeof *grown);
        recur__free(list->entries);
        list->entries = grown;
        list->capacity = cap;
    }
    int digit = 0, take = -1;
    char speaker[256] = "";
    if (recur_fsdd_parse_name(path, &digit, speaker, sizeof speaker, &take) != RECUR_OK) {
        speaker[0] = '\0';
        take = -1;
    }
    recur_speech_entry *e = &list->entries[list->count];
    e->path = recur__strdup(path);
    e->transcript = recur__strdup(transcript);
    e->speaker = recur__strdup(speaker);
    e->take = take;
    if (!e->path || !e->transcript || !e->speaker) {
        recur__free((char *)e->path);
        recur__free((char *)e->transcript);
        recur__free((char *)e->speaker);
        memset(e, 0, sizeof *e);
        return recur__error(RECUR_E_NOMEM, "out of memory listing recordings");
    }
    list->count++;
    return RECUR_OK;
}

static int by_path(const void *a, const void *b)
{
    return strcmp(((const recur_speech_entry *)a)->path, ((const recur_speech_entry *)b)->path);
}

static int has_wav_suffix(const char *name)
{
    size_t len = strlen(name);
    return len > 4 && (strcmp(name + len - 4, ".wav") == 0 || strcmp(name + len - 4, ".WAV") == 0);
}

/* Adds every .wav file of folder `dir` (FSDD names required); *found
 * receives how many. */
static int list_folder(recur_speech_list *list, const char *dir, size_t *found)
{
    *found = 0;
    DIR *d = opendir(dir);
    if (!d)
        return recur__error(errno == ENOENT ? RECUR_E_NOT_FOUND : RECUR_E_IO, "%s: %s", dir,
                            strerror(errno));
    int status = RECUR_OK;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (!has_wav_suffix(ent->d_name))
            continue;
        char path[MAX_PATH];
        if (snprintf(path, sizeof path, "%s/%s", dir, ent->d_name) >= (int)sizeof path) {
            status = recur__error(RECUR_E_INVALID, "%s/%s: path too long", dir, ent->d_name);
            break;
        }
        int digit, take;
        char speaker[256];
        if (recur_fsdd_parse_name(path, &digit, speaker, sizeof speaker, &take) != RECUR_OK) {
            char message[768];
            snprintf(message, sizeof message, "%s", recur_last_error());
            status = recur__error(RECUR_E_FORMAT, "%s: %s; a folder must hold FSDD-named files "
                                  "(or use a manifest of path<TAB>transcript lines)", dir,
                                  message);
            break;
        }
        const char text[2] = {(char)('0' + digit), '\0'};
        if ((status = list_add(list, path, text)))
            break;
        (*found)++;
    }
    closedir(d);
    return status;
}

static int read_manifest(recur_speech_list *list, const char *path)
{
    char *text = NULL;
    size_t len = 0;
    int status = recur_text_read_file(path, &text, &len);
    if (status)
        return status;
    size_t codepoints = 0;
    if ((status = recur_utf8_decode(text, len, NULL, &codepoints))) {
        char message[768];
        snprintf(message, sizeof message, "%s", recur_last_error());
        recur_free(text);
        return recur__error(RECUR_E_FORMAT, "%s: %s", path, message);
    }
    /* The folder of the manifest, for relative paths. */
    char base[MAX_PATH] = "";
    const char *slash = strrchr(path, '/');
    if (slash) {
        size_t n = (size_t)(slash - path) + 1;
        if (n >= sizeof base) {
            recur_free(text);
            return recur__error(RECUR_E_INVALID, "%s: path too long", path);
        }
        memcpy(base, path, n);
        base[n] = '\0';
    }
    size_t line_no = 0;
    char *p = text, *end = text + len;
    while (p < end && status == RECUR_OK) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *line_end = nl ? nl : end;
        line_no++;
        char *next = nl ? nl + 1 : end;
        if (line_end > p && line_end[-1] == '\r')
            line_end--;
        *line_end = '\0';
        if (p == line_end || p[0] == '#') {
            p = next;
            continue;
        }
        if (memchr(p, '\0', (size_t)(line_end - p)) != NULL) {
            status = recur__error(RECUR_E_FORMAT, "%s: line %zu holds a NUL byte", path, line_no);
            break;
        }
        char *tab = strchr(p, '\t');
        if (!tab) {
            status = recur__error(RECUR_E_FORMAT, "%s: line %zu has no tab; each line is "
                                  "path<TAB>transcript", path, line_no);
            break;
        }
        *tab = '\0';
        const char *transcript = tab + 1;
        if (p[0] == '\0' || transcript[0] == '\0') {
            status = recur__error(RECUR_E_FORMAT, "%s: line %zu: empty %s", path, line_no,
                                  p[0] == '\0' ? "path" : "transcript");
            break;
        }
        char full[MAX_PATH];
        if (snprintf(full, sizeof full, "%s%s", p[0] == '/' ? "" : base, p) >= (int)sizeof full) {
            status = recur__error(RECUR_E_INVALID, "%s: line %zu: path too long", path, line_no);
            break;
        }
        status = list_add(list, full, transcript);
        p = next;
    }
    recur_free(text);
    return status;
}

int recur_speech_list_read(const char *path, recur_speech_list **out)
{
    if (!out)
        return recur__error(RECUR_E_INVALID, "recur_speech_list_read: out is NULL");
    *out = NULL;
    if (!path)
        return recur__error(RECUR_E_INVALID, "recur_speech_list_read: path is NULL");
    struct stat st;
    if (stat(path, &st) != 0)
        return recur__error(errno == ENOENT ? RECUR_E_NOT_FOUND : RECUR_E_IO, "%s: %s", path,
                            strerror(errno));
    recur_speech_list *list = recur__calloc(1, sizeof *list);
    if (!list)
        return recur__error(RECUR_E_NOMEM, "out of memory listing recordings");
    int status;
    if (S_ISDIR(st.st_mode)) {
        size_t found = 0;
        status = list_folder(list, path, &found);
        if (status == RECUR_OK && found == 0) {
            char sub[MAX_PATH];
            struct stat sst;
            if (snprintf(sub, sizeof sub, "%s/recordings", path) < (int)sizeof sub &&
                stat(sub, &sst) == 0 && S_ISDIR(sst.st_mode))
                status = list_folder(list, sub, &found);
        }
        if (status == RECUR_OK && list->count > 1)
            qsort(list->entries, list->count, sizeof *list->entries, by_path);
        if (status == RECUR_OK && list->count == 0)
            status = recur__error(RECUR_E_FORMAT, "%s: no .wav file in the folder (nor in its "
                                  "recordings/ subfolder)", path);
    } else {
        status = read_manifest(list, path);
        if (status == RECUR_OK && list->count == 0)
            status = recur__error(RECUR_E_FORMAT, "%s: the manifest lists no recording", path);
    }
    if (status) {
        recur_speech_list_free(list);
        return status;
    }
    *out = list;
    return RECUR_OK;
}

/* ---- connected utterances ------------------------------------------------- */

recur_speech_join_config recur_speech_join_config_default(void)
{
    recur_speech_join_config c;
    c.sample_rate = 8000;
    c.pause_min_s = 0.05;
    c.pause_max_s = 0.30;
    c.edge_max_s = 0.15;
    c.snr_db = 30.0;
    c.speed_min = 1.0;
    c.speed_max = 1.0;
    return c;
}

static size_t seconds_to_samples(double s, int rate) { return (size_t)llround(s * rate); }

/* Speed perturbation of one clip: played `factor` times faster (tempo and
 * pitch together, as a tape would), i.e. resampled by 1 / factor with
 * libsamplerate's fastest band-limited sinc converter. */
static int change_speed(const float *in, size_t n, double factor, float **out, size_t *out_n)
{
    const size_t cap = (size_t)ceil((double)n / factor) + 64;
    float *buf = recur__calloc(cap, sizeof *buf);
    if (!buf)
        return recur__error(RECUR_E_NOMEM, "out of memory changing the speed of %zu samples", n);
    SRC_DATA data;
    memset(&data, 0, sizeof data);
    data.data_in = in;
    data.input_frames = (long)n;
    data.data_out = buf;
    data.output_frames = (long)cap;
    data.end_of_input = 1;
    data.src_ratio = 1.0 / factor;
    int err = src_simple(&data, SRC_SINC_FASTEST, 1);
    if (err || data.output_frames_gen <= 0) {
        recur__free(buf);
        return recur__error(RECUR_E_INVALID, "recur_speech_join: changing the speed of a clip "
                            "of %zu samples by %g failed: %s", n, factor,
                            err ? src_strerror(err) : "no output");
    }
    *out = buf;
    *out_n = (size_t)data.output_frames_gen;
    return RECUR_OK;
}

int recur_speech_join(const float *const *clips, const size_t *lengths, int count,
                      const recur_speech_join_config *c, recur_rng *rng, float **out,
                      size_t *out_count)
{
    if (!out || !out_count)
        return recur__error(RECUR_E_INVALID, "recur_speech_join: NULL output");
    *out = NULL;
    *out_count = 0;
    if (!clips || !lengths || !c || !rng || count < 1)
        return recur__error(RECUR_E_INVALID, "recur_speech_join: needs clips, lengths, a config, "
                            "an RNG and count >= 1 (got %d)", count);
    if (c->sample_rate < 1 || !(c->pause_min_s >= 0.0) || !(c->pause_max_s >= c->pause_min_s) ||
        !(c->pause_max_s <= 60.0) || !(c->edge_max_s >= 0.0 && c->edge_max_s <= 60.0) ||
        isnan(c->snr_db) || !(c->speed_min >= 0.5) || !(c->speed_max >= c->speed_min) ||
        !(c->speed_max <= 2.0))
        return recur__error(RECUR_E_INVALID, "recur_speech_join: bad config (rate %d, pauses "
                            "%g..%g s, edges %g s, snr %g dB, speed %g..%g)", c->sample_rate,
                            c->pause_min_s, c->pause_max_s, c->edge_max_s, c->snr_db,
                            c->speed_min, c->speed_max);
    for (int i = 0; i < count; i++)
        if (!clips[i] || lengths[i] == 0)
            return recur__error(RECUR_E_INVALID, "recur_speech_join: clip %d is empty", i);
    /* gaps[0] before clip 0, gaps[i] before clip i, gaps[count] after the
     * last; parts[i] is clip i, or its speed-changed copy (owned[i]). */
    size_t *gaps = recur__calloc((size_t)count + 1, sizeof *gaps);
    size_t *part_len = recur__calloc((size_t)count, sizeof *part_len);
    const float **parts = recur__calloc((size_t)count, sizeof *parts);
    float **owned = recur__calloc((size_t)count, sizeof *owned);
    float *buf = NULL;
    int status = gaps && part_len && parts && owned
                     ? RECUR_OK
                     : recur__error(RECUR_E_NOMEM, "out of memory joining %d clips", count);
    size_t total = 0, speech = 0;
    for (int i = 0; status == RECUR_OK && i <= count; i++) {
        double s;
        if (i == 0 || i == count)
            s = c->edge_max_s * recur_rng_uniform_double(rng);
        else
            s = c->pause_min_s + (c->pause_max_s - c->pause_min_s) * recur_rng_uniform_double(rng);
        gaps[i] = seconds_to_samples(s, c->sample_rate);
        if (!recur__add_size(total, gaps[i], &total))
            status = recur__error(RECUR_E_NOMEM, "recur_speech_join: size overflow");
    }
    for (int i = 0; status == RECUR_OK && i < count; i++) {
        parts[i] = clips[i];
        part_len[i] = lengths[i];
        if (c->speed_max > c->speed_min || c->speed_min != 1.0) {
            const double f = c->speed_min +
                             (c->speed_max - c->speed_min) * recur_rng_uniform_double(rng);
            if (f != 1.0) {
                status = change_speed(clips[i], lengths[i], f, &owned[i], &part_len[i]);
                parts[i] = owned[i];
            }
        }
        if (status == RECUR_OK &&
            (!recur__add_size(total, part_len[i], &total) ||
             !recur__add_size(speech, part_len[i], &speech)))
            status = recur__error(RECUR_E_NOMEM, "recur_speech_join: size overflow");
    }
    if (status == RECUR_OK && !(buf = recur__calloc(total, sizeof *buf)))
        status = recur__error(RECUR_E_NOMEM, "out of memory joining %zu samples", total);
    if (status == RECUR_OK) {
        double power = 0.0;
        size_t at = 0;
        for (int i = 0; i < count; i++) {
            at += gaps[i];
            memcpy(buf + at, parts[i], part_len[i] * sizeof *buf);
            for (size_t j = 0; j < part_len[i]; j++)
                power += (double)parts[i][j] * parts[i][j];
            at += part_len[i];
        }
        power /= (double)speech;
        if (isfinite(c->snr_db) && power > 0.0) {
            const double sigma = sqrt(power / pow(10.0, c->snr_db / 10.0));
            for (size_t j = 0; j < total; j++)
                buf[j] += (float)(sigma * recur_rng_normal(rng));
        }
        *out = buf;
        *out_count = total;
    }
    for (int i = 0; owned && i < count; i++)
        recur__free(owned[i]);
    recur__free(owned);
    recur__free(parts);
    recur__free(part_len);
    recur__free(gaps);
    return status;
}
