/* series.c - time series from CSV files: the header, the target, time and
 * covariate columns picked by name, wide layouts (one row holds J
 * consecutive steps), time columns in the usual formats, missing values,
 * and the filling of gaps (linear interpolation in the past, the last
 * observation carried forward beyond a split).
 *
 * Parsing is libcsv's (RFC 4180 quoting, strict mode). The text is fed to
 * it one physical line at a time so that every message can name the line;
 * libcsv keeps its own small field buffer with libc's allocator (the
 * allocation hook has no realloc). Everything else goes through the hook.
 * Dates become days since 1970-01-01 (the proleptic Gregorian calendar of
 * H. Hinnant's days_from_civil); numbers stay as they are.
 * Leaves out: other delimiters, multi-column times (e.g. year + quarter),
 * inserting rows for skipped time steps (rows are consecutive steps). */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <csv.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "recur/data.h"
#include "recur/forecast.h"

struct recur_series {
    char *name, *target_name, *time_name;
    char **covariate_names; /* [C] */
    int C;
    size_t n;
    double *values; /* [n] */
    double *cov;    /* [n, C] */
    double *times;  /* [n] or NULL */
    size_t *lines;  /* [n] */
    size_t missing;
    recur_time_kind time_kind;
    int time_decimals;   /* RECUR_TIME_NUMBER: digits after the point to write */
    int step_months;     /* > 0: the steps are this many calendar months apart */
    int month_end;       /* ... on the last day of each month */
    double step_size;    /* otherwise: days (dates) or units (numbers) between steps */
    int calendar_period;
};

/* ---- dates ------------------------------------------------------------------ */

/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const int64_t doe = z - era * 146097;
    const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int days_in_month(int64_t y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return days[m - 1];
}

static const char *const month_names[12] = {"jan", "feb", "mar", "apr", "may", "jun",
                                            "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const month_titles[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* Reads exactly `count` digits at *p; -1 when they are not there. */
static long digits(const char **p, int count)
{
    long v = 0;
    for (int i = 0; i < count; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += count;
    return v;
}

/* 1 or 2 digits. */
static long short_number(const char **p)
{
    if (!isdigit((unsigned char)**p))
        return -1;
    long v = *(*p)++ - '0';
    if (isdigit((unsigned char)**p))
        v = v * 10 + (*(*p)++ - '0');
    return v;
}

static int valid_date(long y, long m, long d)
{
    return y >= 0 && m >= 1 && m <= 12 && d >= 1 && d <= days_in_month(y, (int)m);
}

/* Parses one time value. On success *kind is its format, *t the value and
 * *decimals the digits after a number's point. */
static int parse_time(const char *s, recur_time_kind *kind, double *t, int *decimals)
{
    const char *p = s;
    *decimals = 0;
    /* YYYY-MM-DD[(T| )HH:MM[:SS]], YYYY/MM/DD, YYYY-MM */
    if (isdigit((unsigned char)p[0]) && strlen(p) >= 7 && (p[4] == '-' || p[4] == '/')) {
        const char sep = p[4];
        long y = digits(&p, 4);
        p++;
        long m = digits(&p, 2);
        if (y < 0 || m < 1 || m > 12)
            return 0;
        if (*p == '\0') {
            *kind = RECUR_TIME_ISO_MONTH;
            *t = (double)days_from_civil(y, (int)m, 1);
            return 1;
        }
        if (*p++ != sep)
            return 0;
        long d = digits(&p, 2);
        if (!valid_date(y, m, d))
            return 0;
        double frac = 0.0;
        if (*p == 'T' || *p == ' ') {
            p++;
            long hh = digits(&p, 2), mm = -1, ss = 0;
            if (*p++ == ':')
                mm = digits(&p, 2);
            if (*p == ':') {
                p++;
                ss = digits(&p, 2);
            }
            if (hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 60)
                return 0;
            frac = (double)(hh * 3600 + mm * 60 + ss) / 86400.0;
        }
        if (*p != '\0')
            return 0;
        *kind = RECUR_TIME_ISO;
        *t = (double)days_from_civil(y, (int)m, (int)d) + frac;
        return 1;
    }
    /* YYYYMMDD: exactly eight digits */
    if (strlen(p) == 8 && strspn(p, "0123456789") == 8) {
        long y = digits(&p, 4), m = digits(&p, 2), d = digits(&p, 2);
        if (!valid_date(y, m, d))
            return 0;
        *kind = RECUR_TIME_YYYYMMDD;
        *t = (double)days_from_civil(y, (int)m, (int)d);
        return 1;
    }
    /* Mon-D-YYYY */
    if (isalpha((unsigned char)p[0])) {
        int m = 0;
        for (int i = 0; i < 12 && !m; i++)
            if (strncasecmp(p, month_names[i], 3) == 0 && p[3] == '-')
                m = i + 1;
        if (!m)
            return 0;
        p += 4;
        long d = short_number(&p);
        if (*p++ != '-')
            return 0;
        long y = digits(&p, 4);
        if (*p != '\0' || !valid_date(y, m, d))
            return 0;
        *kind = RECUR_TIME_MON_D_YYYY;
        *t = (double)days_from_civil(y, m, (int)d);
        return 1;
    }
    /* a plain or decimal number */
    char *end = NULL;
    double v = strtod(p, &end);
    if (end == p || *end != '\0' || !isfinite(v) || strchr(p, 'x') || strchr(p, 'X'))
        return 0;
    const char *point = strchr(p, '.');
    if (point && !strpbrk(p, "eE"))
        *decimals = (int)strspn(point + 1, "0123456789");
    *kind = RECUR_TIME_NUMBER;
    *t = v;
    return 1;
}

static const char *time_kind_example(recur_time_kind kind)
{
    switch (kind) {
    case RECUR_TIME_ISO: return "an ISO date like 2001-12-29";
    case RECUR_TIME_ISO_MONTH: return "a month like 2001-12";
    case RECUR_TIME_YYYYMMDD: return "a date like 20011229";
    case RECUR_TIME_MON_D_YYYY: return "a date like Jan-1-1995";
    case RECUR_TIME_NUMBER: return "a number (e.g. a year)";
    default: return "nothing";
    }
}

/* ---- values ------------------------------------------------------------------ */

static int is_missing(const char *s)
{
    static const char *const words[] = {"", "na", "n/a", "nan", "null", ".", NULL};
    for (int i = 0; words[i]; i++)
        if (strcasecmp(s, words[i]) == 0)
            return 1;
    return 0;
}

/* Trims spaces in place (quoted fields keep theirs in libcsv). */
static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t len = strlen(s);
    while (len && isspace((unsigned char)s[len - 1]))
        s[--len] = '\0';
    return s;
}

/* ---- the CSV walk -------------------------------------------------------------- */

enum { ROLE_NONE = -1, ROLE_TIME = -2 }; /* >= 0: a value slot of the row */

typedef struct reader {
    const char *name;
    const recur_series_spec *spec;
    size_t line;           /* line being fed */
    size_t record_line;    /* line where the current record started */
    int field;             /* fields of the current record so far */
    /* the current record's first fields (at most one per header column),
     * NUL-terminated one after another in `text` */
    char *text;
    size_t text_len, text_cap;
    size_t *offsets;       /* [header_cap] */
    int header_done;
    int header_count;      /* fields of the header */
    char **header;         /* [header_count] */
    size_t header_cap;
    int *role;             /* [header_count] */
    int slots;             /* value slots per row: J (target steps) + C */
    int J;                 /* target steps per row (1 unless wide) */
    double *row;           /* [slots] */
    double last_row_time;
    int status;            /* first error */
    /* output, grown by doubling */
    size_t n, cap;
    double *values, *cov, *times;
    size_t *lines;
    recur_time_kind time_kind;
    int time_decimals;
} reader;

static int fail(reader *r, int status, const char *fmt, ...) RECUR_PRINTF(3, 4);

static int fail(reader *r, int status, const char *fmt, ...)
{
    if (r->status)
        return r->status;
    char message[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    r->status = recur__error(status, "%s", message);
    return r->status;
}

/* Room for one more field offset (the header grows the column count). */
static int grow_offsets(reader *r)
{
    if ((size_t)r->field < r->header_cap)
        return RECUR_OK;
    size_t cap = r->header_cap ? 2 * r->header_cap : 16;
    size_t *offsets = recur__calloc(cap, sizeof *offsets);
    if (!offsets)
        return fail(r, RECUR_E_NOMEM, "out of memory reading %s", r->name);
    if (r->header_cap)
        memcpy(offsets, r->offsets, r->header_cap * sizeof *offsets);
    recur__free(r->offsets);
    r->offsets = offsets;
    r->header_cap = cap;
    return RECUR_OK;
}

static int append_text(reader *r, const char *data, size_t len)
{
    size_t need;
    if (!recur__add_size(r->text_len, len, &need) || !recur__add_size(need, 1, &need))
        return fail(r, RECUR_E_NOMEM, "%s: a field is too long", r->name);
    if (need > r->text_cap) {
        size_t cap = r->text_cap ? r->text_cap : 256;
        while (cap < need)
            cap *= 2;
        char *bigger = recur__malloc(cap);
        if (!bigger)
            return fail(r, RECUR_E_NOMEM, "out of memory reading %s", r->name);
        if (r->text_len)
            memcpy(bigger, r->text, r->text_len);
        recur__free(r->text);
        r->text = bigger;
        r->text_cap = cap;
    }
    if (len)
        memcpy(r->text + r->text_len, data, len);
    r->text[r->text_len + len] = '\0';
    r->text_len += len + 1;
    return RECUR_OK;
}


static int grow_rows(reader *r, size_t need)
{
    if (need <= r->cap)
        return RECUR_OK;
    size_t cap = r->cap ? r->cap : 256;
    while (cap < need)
        if (!recur__mul_size(cap, 2, &cap))
            return fail(r, RECUR_E_NOMEM, "%s: too many rows", r->name);
    const size_t C = (size_t)r->spec->covariate_count;
    double *values = recur__calloc(cap, sizeof *values);
    double *cov = C ? recur__calloc(cap, C * sizeof *cov) : NULL;
    double *times = r->spec->time ? recur__calloc(cap, sizeof *times) : NULL;
    size_t *lines = recur__calloc(cap, sizeof *lines);
    if (!values || !lines || (C && !cov) || (r->spec->time && !times)) {
        recur__free(values), recur__free(cov), recur__free(times), recur__free(lines);
        return fail(r, RECUR_E_NOMEM, "out of memory reading %s", r->name);
    }
    if (r->n) {
        memcpy(values, r->values, r->n * sizeof *values);
        if (C)
            memcpy(cov, r->cov, r->n * C * sizeof *cov);
        if (times)
            memcpy(times, r->times, r->n * sizeof *times);
        memcpy(lines, r->lines, r->n * sizeof *lines);
    }
    recur__free(r->values), recur__free(r->cov), recur__free(r->times), recur__free(r->lines);
    r->values = values, r->cov = cov, r->times = times, r->lines = lines;
    r->cap = cap;
    return RECUR_OK;
}

static int find_column(const reader *r, const char *name)
{
    for (int i = 0; i < r->header_count; i++)
        if (strcmp(r->header[i], name) == 0)
            return i;
    return -1;
}

static void list_header(const reader *r, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < r->header_count && used + 1 < size; i++)
        used += (size_t)snprintf(out + used, size - used, "%s%s", i ? ", " : "", r->header[i]);
}

static int missing_column(reader *r, const char *what, const char *name)
{
    char list[512];
    list_header(r, list, sizeof list);
    return fail(r, RECUR_E_NOT_FOUND, "%s: no %s column '%s' in the header (line %zu: %s)",
                r->name, what, name, r->record_line, list);
}

/* The header is complete: give each column its role. */
static int resolve_columns(reader *r)
{
    const recur_series_spec *spec = r->spec;
    r->role = recur__malloc((size_t)r->header_count * sizeof *r->role);
    if (!r->role)
        return fail(r, RECUR_E_NOMEM, "out of memory reading %s", r->name);
    for (int i = 0; i < r->header_count; i++)
        r->role[i] = ROLE_NONE;
    int first = find_column(r, spec->target), last = first;
    const char *colon = strchr(spec->target, ':');
    if (first < 0 && colon) {
        char left[256];
        size_t len = (size_t)(colon - spec->target);
        if (len >= sizeof left)
            return missing_column(r, "target", spec->target);
        memcpy(left, spec->target, len);
        left[len] = '\0';
        first = find_column(r, left);
        last = find_column(r, colon + 1);
        if (first < 0)
            return missing_column(r, "first target", left);
        if (last < 0)
            return missing_column(r, "last target", colon + 1);
        if (last < first)
            return fail(r, RECUR_E_INVALID, "%s: the wide target %s runs backwards (column %d "
                        "'%s' comes after column %d '%s')", r->name, spec->target, first + 1,
                        left, last + 1, colon + 1);
        if (spec->covariate_count > 0)
            return fail(r, RECUR_E_UNSUPPORTED, "%s: a wide target (%s) takes no covariates",
                        r->name, spec->target);
    } else if (first < 0) {
        return missing_column(r, "target", spec->target);
    }
    r->J = last - first + 1;
    for (int j = 0; j < r->J; j++)
        r->role[first + j] = j;
    for (int c = 0; c < spec->covariate_count; c++) {
        int col = find_column(r, spec->covariates[c]);
        if (col < 0)
            return missing_column(r, "covariate", spec->covariates[c]);
        if (r->role[col] != ROLE_NONE)
            return fail(r, RECUR_E_INVALID, "%s: column '%s' is given twice (as target, time or "
                        "covariate)", r->name, spec->covariates[c]);
        r->role[col] = r->J + c;
    }
    if (spec->time) {
        int col = find_column(r, spec->time);
        if (col < 0)
            return missing_column(r, "time", spec->time);
        if (r->role[col] != ROLE_NONE)
            return fail(r, RECUR_E_INVALID, "%s: the time column '%s' is also the target or a "
                        "covariate", r->name, spec->time);
        r->role[col] = ROLE_TIME;
    }
    r->slots = r->J + spec->covariate_count;
    r->row = recur__malloc((size_t)r->slots * sizeof *r->row);
    if (!r->row)
        return fail(r, RECUR_E_NOMEM, "out of memory reading %s", r->name);
    return RECUR_OK;
}

/* libcsv's field callback: keeps the text (data is NUL-terminated thanks to
 * CSV_APPEND_NULL; NULL for an empty field in some versions). */
static void on_field(void *data, size_t len, void *user)
{
    reader *r = user;
    if (r->status)
        return;
    if (r->field == 0) {
        r->record_line = r->line;
        r->text_len = 0;
    }
    if (r->header_done && r->field >= r->header_count) {
        r->field++; /* counted; the record's end reports it */
        return;
    }
    if (grow_offsets(r))
        return;
    r->offsets[r->field] = r->text_len;
    if (append_text(r, data ? (const char *)data : "", data ? len : 0))
        return;
    r->field++;
}

static int parse_time_field(reader *r, int f, double *t)
{
    char *s = trim(r->text + r->offsets[f]);
    recur_time_kind kind;
    int decimals;
    if (!s[0] || !parse_time(s, &kind, t, &decimals))
        return fail(r, RECUR_E_FORMAT, "%s: line %zu, column %d '%s': '%s' is not a time (an "
                    "ISO date, YYYYMMDD, Mon-D-YYYY or a number)", r->name, r->record_line,
                    f + 1, r->header[f], s);
    if (r->n == 0)
        r->time_kind = kind;
    else if (kind != r->time_kind)
        return fail(r, RECUR_E_FORMAT, "%s: line %zu, column %d '%s': '%s' is written "
                    "differently from the first row's time (%s)", r->name, r->record_line,
                    f + 1, r->header[f], s, time_kind_example(r->time_kind));
    if (decimals > r->time_decimals)
        r->time_decimals = decimals;
    if (r->n > 0 && !(*t > r->last_row_time))
        return fail(r, RECUR_E_FORMAT, "%s: line %zu, column %d '%s': %s does not come after "
                    "the previous row's time (the time column must increase)", r->name,
                    r->record_line, f + 1, r->header[f], s);
    return RECUR_OK;
}

static int parse_value_field(reader *r, int f, double *v)
{
    char *s = trim(r->text + r->offsets[f]);
    if (is_missing(s)) {
        *v = NAN;
        return RECUR_OK;
    }
    char *end = NULL;
    *v = strtod(s, &end);
    if (end == s || *end != '\0' || strpbrk(s, "xX"))
        return fail(r, RECUR_E_FORMAT, "%s: line %zu, column %d '%s': '%s' is not a number",
                    r->name, r->record_line, f + 1, r->header[f], s);
    if (!isfinite(*v))
        return fail(r, RECUR_E_FORMAT, "%s: line %zu, column %d '%s': '%s' is not a finite "
                    "number", r->name, r->record_line, f + 1, r->header[f], s);
    return RECUR_OK;
}

static void on_record(int terminator, void *user)
{
    reader *r = user;
    (void)terminator;
    if (r->status)
        return;
    const int fields = r->field;
    r->field = 0;
    if (fields == 0)
        return;
    /* a line of spaces reads as one empty field: skip it like a blank line */
    if (fields == 1 && trim(r->text)[0] == '\0')
        return;
    if (!r->header_done) {
        r->header = recur__calloc((size_t)fields, sizeof *r->header);
        if (!r->header) {
            fail(r, RECUR_E_NOMEM, "out of memory reading %s", r->name);
            return;
        }
        for (int f = 0; f < fields; f++) {
            if (!(r->header[f] = recur__strdup(trim(r->text + r->offsets[f])))) {
                fail(r, RECUR_E_NOMEM, "out of memory reading %s", r->name);
                return;
            }
            r->header_count = f + 1;
        }
        r->header_done = 1;
        resolve_columns(r);
        return;
    }
    if (fields != r->header_count) {
        fail(r, RECUR_E_FORMAT, "%s: line %zu has %d field%s, the header has %d", r->name,
             r->record_line, fields, fields == 1 ? "" : "s", r->header_count);
        return;
    }
    double row_time = 0.0;
    for (int f = 0; f < fields; f++) {
        const int role = r->role[f];
        if (role == ROLE_TIME ? parse_time_field(r, f, &row_time)
                              : role >= 0 && parse_value_field(r, f, &r->row[role]))
            return;
    }
    const size_t C = (size_t)r->spec->covariate_count;
    if (grow_rows(r, r->n + (size_t)r->J))
        return;
    for (int j = 0; j < r->J; j++) {
        const size_t i = r->n + (size_t)j;
        r->values[i] = r->row[j];
        for (size_t c = 0; c < C; c++)
            r->cov[i * C + c] = r->row[r->J + (int)c];
        r->lines[i] = r->record_line;
        if (r->times) {
            r->times[i] = row_time + (double)j / (double)r->J;
        }
    }
    r->last_row_time = row_time;
    r->n += (size_t)r->J;
}

static void reader_free(reader *r)
{
    for (int i = 0; i < r->header_count; i++)
        recur__free(r->header[i]);
    recur__free(r->header);
    recur__free(r->text);
    recur__free(r->offsets);
    recur__free(r->role);
    recur__free(r->row);
    recur__free(r->values);
    recur__free(r->cov);
    recur__free(r->times);
    recur__free(r->lines);
}

/* ---- the series object ------------------------------------------------------------ */

void recur_series_free(recur_series *s)
{
    if (!s)
        return;
    recur__free(s->name);
    recur__free(s->target_name);
    recur__free(s->time_name);
    for (int c = 0; c < s->C; c++)
        recur__free(s->covariate_names[c]);
    recur__free(s->covariate_names);
    recur__free(s->values);
    recur__free(s->cov);
    recur__free(s->times);
    recur__free(s->lines);
    recur__free(s);
}

/* The calendar step and the period it suggests. */
static void infer_step(recur_series *s)
{
    s->step_months = 0;
    s->step_size = 1.0;
    s->calendar_period = 0;
    if (!s->times || s->n < 2)
        return;
    const size_t n = s->n;
    if (s->time_kind == RECUR_TIME_NUMBER) {
        /* the median spacing; years when it is 1, 1/4, 1/12 */
        double *gaps = recur__malloc((n - 1) * sizeof *gaps);
        if (!gaps)
            return;
        for (size_t i = 0; i + 1 < n; i++)
            gaps[i] = s->times[i + 1] - s->times[i];
        for (size_t i = 1; i < n - 1; i++) /* insertion sort: n is small */
            for (size_t j = i; j > 0 && gaps[j - 1] > gaps[j]; j--) {
                double tmp = gaps[j];
                gaps[j] = gaps[j - 1];
                gaps[j - 1] = tmp;
            }
        s->step_size = gaps[(n - 1) / 2];
        recur__free(gaps);
        const double first = s->times[0];
        if (first >= 1000 && first <= 3000) {
            if (fabs(s->step_size - 1.0) < 1e-9)
                s->calendar_period = 1;
            else if (fabs(s->step_size - 0.25) < 1e-6)
                s->calendar_period = 4;
            else if (fabs(s->step_size - 1.0 / 12.0) < 1e-6)
                s->calendar_period = 12;
        }
        return;
    }
    /* dates: whole months apart, on the same day of the month or on the
     * last day of each month? */
    int months = -1, same = 1, ends = 1;
    for (size_t i = 0; i + 1 < n && (same || ends); i++) {
        int64_t y0, y1;
        int m0, d0, m1, d1;
        civil_from_days((int64_t)floor(s->times[i]), &y0, &m0, &d0);
        civil_from_days((int64_t)floor(s->times[i + 1]), &y1, &m1, &d1);
        int gap = (int)((y1 - y0) * 12 + (m1 - m0));
        if (gap <= 0 || (months >= 0 && gap != months))
            same = ends = 0;
        same = same && d0 == d1;
        ends = ends && d0 == days_in_month(y0, m0) && d1 == days_in_month(y1, m1);
        months = gap;
    }
    if ((same || ends) && months > 0) {
        s->step_months = months;
        s->month_end = !same && ends;
        s->calendar_period = months == 1 ? 12 : months == 3 ? 4 : months == 12 ? 1 : 0;
        return;
    }
    /* else the most common spacing in days */
    double best = s->times[1] - s->times[0];
    size_t best_count = 0;
    for (size_t i = 0; i + 1 < n && i < 64; i++) {
        double gap = s->times[i + 1] - s->times[i];
        size_t count = 0;
        for (size_t j = 0; j + 1 < n; j++)
            count += fabs(s->times[j + 1] - s->times[j] - gap) < 1e-6;
        if (count > best_count) {
            best_count = count;
            best = gap;
        }
    }
    s->step_size = best;
    if (fabs(best - 7.0) < 1e-6)
        s->calendar_period = 52;
    else if (fabs(best - 1.0) < 1e-6)
        s->calendar_period = 7;
}

/* Drops the rows before the first and after the last observed target. */
static void trim_unobserved(recur_series *s)
{
    size_t first = 0, last = s->n;
    while (first < s->n && isnan(s->values[first]))
        first++;
    while (last > first && isnan(s->values[last - 1]))
        last--;
    if (first == 0 && last == s->n)
        return;
    const size_t n = last - first, C = (size_t)s->C;
    memmove(s->values, s->values + first, n * sizeof *s->values);
    if (C)
        memmove(s->cov, s->cov + first * C, n * C * sizeof *s->cov);
    if (s->times)
        memmove(s->times, s->times + first, n * sizeof *s->times);
    memmove(s->lines, s->lines + first, n * sizeof *s->lines);
    s->n = n;
}

static int finish_series(recur_series *s)
{
    trim_unobserved(s);
    size_t observed = 0;
    s->missing = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (isnan(s->values[i]))
            s->missing++;
        else
            observed++;
    }
    if (observed < 2) {
        if (s->n && s->lines[0])
            return recur__error(RECUR_E_INVALID, "%s: column '%s' has %zu observed value%s "
                                "(lines %zu-%zu); a series needs at least 2", s->name,
                                s->target_name, observed, observed == 1 ? "" : "s",
                                s->lines[0], s->lines[s->n - 1]);
        return recur__error(RECUR_E_INVALID, "%s: column '%s' has %zu observed value%s; a "
                            "series needs at least 2", s->name, s->target_name, observed,
                            observed == 1 ? "" : "s");
    }
    infer_step(s);
    return RECUR_OK;
}

static int check_spec(const char *name, const recur_series_spec *spec)
{
    if (!spec || !spec->target || !spec->target[0])
        return recur__error(RECUR_E_INVALID, "%s: no target column given", name);
    if (spec->covariate_count < 0 || spec->covariate_count > RECUR_FORECAST_MAX_COVARIATES)
        return recur__error(RECUR_E_INVALID, "%s: %d covariates (at most %d)", name,
                            spec->covariate_count, RECUR_FORECAST_MAX_COVARIATES);
    if (spec->covariate_count > 0 && !spec->covariates)
        return recur__error(RECUR_E_INVALID, "%s: covariate names are NULL", name);
    for (int c = 0; c < spec->covariate_count; c++)
        if (!spec->covariates[c] || !spec->covariates[c][0])
            return recur__error(RECUR_E_INVALID, "%s: covariate %d has no name", name, c + 1);
    return RECUR_OK;
}

int recur_series_parse_csv(const char *text, size_t len, const char *name,
                           const recur_series_spec *spec, recur_series **out)
{
    if (!out)
        return recur__error(RECUR_E_INVALID, "recur_series_parse_csv: out is NULL");
    *out = NULL;
    if (!name)
        name = "(text)";
    if (!text && len)
        return recur__error(RECUR_E_INVALID, "recur_series_parse_csv: text is NULL");
    int status = check_spec(name, spec);
    if (status)
        return status;
    reader r;
    memset(&r, 0, sizeof r);
    r.name = name;
    r.spec = spec;
    r.J = 1;
    struct csv_parser parser;
    if (csv_init(&parser, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0)
        return recur__error(RECUR_E_NOMEM, "cannot initialise the CSV parser");
    size_t pos = 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        pos = 3;
    r.line = 0;
    while (pos < len && !r.status) {
        const char *newline = memchr(text + pos, '\n', len - pos);
        size_t piece = newline ? (size_t)(newline - (text + pos)) + 1 : len - pos;
        r.line++;
        if (csv_parse(&parser, text + pos, piece, on_field, on_record, &r) != piece && !r.status)
            fail(&r, RECUR_E_FORMAT, "%s: line %zu: %s (a quote inside an unquoted field, or "
                 "text after a closing quote)", name, r.line,
                 csv_strerror(csv_error(&parser)));
        pos += piece;
    }
    if (!r.status && csv_fini(&parser, on_field, on_record, &r) != 0 && !r.status)
        fail(&r, RECUR_E_FORMAT, "%s: line %zu: a quoted field is not closed", name, r.line);
    csv_free(&parser);
    if (!r.status && !r.header_done)
        fail(&r, RECUR_E_FORMAT, "%s: no header line (the file is empty)", name);
    if (!r.status && r.n == 0)
        fail(&r, RECUR_E_INVALID, "%s: no data rows after the header", name);
    if (r.status) {
        status = r.status;
        reader_free(&r);
        return status;
    }
    recur_series *s = recur__calloc(1, sizeof *s);
    if (!s) {
        reader_free(&r);
        return recur__error(RECUR_E_NOMEM, "out of memory reading %s", name);
    }
    const int C = spec->covariate_count;
    s->C = C;
    s->n = r.n;
    s->values = r.values, s->cov = r.cov, s->times = r.times, s->lines = r.lines;
    r.values = r.cov = r.times = NULL;
    r.lines = NULL;
    s->time_kind = spec->time ? r.time_kind : RECUR_TIME_NONE;
    if (s->time_kind == RECUR_TIME_NUMBER && r.J == 12 && s->times) {
        /* a wide file of whole years x 12 months: monthly dates */
        int whole = 1;
        for (size_t i = 0; i < s->n && whole; i += 12)
            whole = s->times[i] == floor(s->times[i]) && fabs(s->times[i]) < 1e7;
        for (size_t i = 0; whole && i < s->n; i++)
            s->times[i] = (double)days_from_civil((int64_t)floor(s->times[i] + 1e-9),
                                                  (int)(i % 12) + 1, 1);
        if (whole)
            s->time_kind = RECUR_TIME_ISO_MONTH;
    }
    s->time_decimals = r.time_decimals;
    if (s->time_kind == RECUR_TIME_NUMBER && r.J > 1)
        s->time_decimals = 4;
    s->name = recur__strdup(name);
    s->target_name = recur__strdup(spec->target);
    s->time_name = spec->time ? recur__strdup(spec->time) : NULL;
    s->covariate_names = C ? recur__calloc((size_t)C, sizeof *s->covariate_names) : NULL;
    int ok = s->name && s->target_name && (!spec->time || s->time_name) &&
             (!C || s->covariate_names);
    for (int c = 0; ok && c < C; c++)
        ok = (s->covariate_names[c] = recur__strdup(spec->covariates[c])) != NULL;
    reader_free(&r);
    if (!ok) {
        recur_series_free(s);
        return recur__error(RECUR_E_NOMEM, "out of memory reading %s", name);
    }
    if ((status = finish_series(s))) {
        recur_series_free(s);
        return status;
    }
    *out = s;
    return RECUR_OK;
}

int recur_series_read_csv(const char *path, const recur_series_spec *spec, recur_series **out)
{
    if (!out)
        return recur__error(RECUR_E_INVALID, "recur_series_read_csv: out is NULL");
    *out = NULL;
    if (!path)
        return recur__error(RECUR_E_INVALID, "recur_series_read_csv: path is NULL");
    char *text = NULL;
    size_t len = 0;
    int status = recur_text_read_file(path, &text, &len);
    if (status)
        return status;
    status = recur_series_parse_csv(text, len, path, spec, out);
    recur_free(text);
    return status;
}

int recur_series_from_values(const double *values, size_t n, const char *name,
                             recur_series **out)
{
    if (!out)
        return recur__error(RECUR_E_INVALID, "recur_series_from_values: out is NULL");
    *out = NULL;
    if (!values && n)
        return recur__error(RECUR_E_INVALID, "recur_series_from_values: values is NULL");
    recur_series *s = recur__calloc(1, sizeof *s);
    if (!s)
        return recur__error(RECUR_E_NOMEM, "out of memory creating a series");
    s->n = n;
    s->name = recur__strdup(name ? name : "(values)");
    s->target_name = recur__strdup("value");
    s->values = recur__calloc(n ? n : 1, sizeof *s->values);
    s->lines = recur__calloc(n ? n : 1, sizeof *s->lines);
    if (!s->name || !s->target_name || !s->values || !s->lines) {
        recur_series_free(s);
        return recur__error(RECUR_E_NOMEM, "out of memory creating a series");
    }
    if (n)
        memcpy(s->values, values, n * sizeof *values);
    int status = finish_series(s);
    if (status) {
        recur_series_free(s);
        return status;
    }
    *out = s;
    return RECUR_OK;
}

size_t recur_series_length(const recur_series *s) { return s ? s->n : 0; }
const double *recur_series_values(const recur_series *s) { return s ? s->values : NULL; }
size_t recur_series_missing(const recur_series *s) { return s ? s->missing : 0; }
int recur_series_covariate_count(const recur_series *s) { return s ? s->C : 0; }
const double *recur_series_covariates(const recur_series *s) { return s && s->C ? s->cov : NULL; }
const char *recur_series_name(const recur_series *s) { return s ? s->name : NULL; }
const char *recur_series_target_name(const recur_series *s) { return s ? s->target_name : NULL; }
const char *recur_series_time_name(const recur_series *s) { return s ? s->time_name : NULL; }
recur_time_kind recur_series_time_kind(const recur_series *s)
{
    return s ? s->time_kind : RECUR_TIME_NONE;
}
const double *recur_series_times(const recur_series *s) { return s ? s->times : NULL; }
int recur_series_calendar_period(const recur_series *s) { return s ? s->calendar_period : 0; }

const char *recur_series_covariate_name(const recur_series *s, int c)
{
    return s && c >= 0 && c < s->C ? s->covariate_names[c] : NULL;
}

size_t recur_series_line(const recur_series *s, size_t i)
{
    return s && i < s->n ? s->lines[i] : 0;
}

/* Adds k calendar months to a day count, clamping the day to the month
 * (or moving to the month's last day when month_end is set). */
static double add_months(double t, long k, int month_end)
{
    int64_t y;
    int m, d;
    const double day = floor(t);
    civil_from_days((int64_t)day, &y, &m, &d);
    int64_t months = y * 12 + (m - 1) + k;
    int64_t ny = months >= 0 ? months / 12 : -((-months + 11) / 12);
    int nm = (int)(months - ny * 12) + 1;
    int dim = days_in_month(ny, nm);
    return (double)days_from_civil(ny, nm, d < dim && !month_end ? d : dim) + (t - day);
}

double recur_series_time_after(const recur_series *s, int k)
{
    if (!s || s->n == 0)
        return NAN;
    if (!s->times)
        return (double)(s->n - 1) + (double)k;
    const double last = s->times[s->n - 1];
    if (s->step_months > 0)
        return add_months(last, (long)s->step_months * k, s->month_end);
    return last + s->step_size * (double)k;
}

void recur_series_format_time(const recur_series *s, double t, char *out, size_t size)
{
    if (!out || size == 0)
        return;
    const recur_time_kind kind = s ? s->time_kind : RECUR_TIME_NONE;
    if (kind == RECUR_TIME_NONE || kind == RECUR_TIME_NUMBER || !isfinite(t)) {
        snprintf(out, size, "%.*f", kind == RECUR_TIME_NUMBER ? s->time_decimals : 0, t);
        return;
    }
    int64_t y;
    int m, d;
    const double day = floor(t);
    civil_from_days((int64_t)day, &y, &m, &d);
    switch (kind) {
    case RECUR_TIME_ISO_MONTH: snprintf(out, size, "%04lld-%02d", (long long)y, m); break;
    case RECUR_TIME_YYYYMMDD: snprintf(out, size, "%04lld%02d%02d", (long long)y, m, d); break;
    case RECUR_TIME_MON_D_YYYY:
        snprintf(out, size, "%s-%d-%04lld", month_titles[m - 1], d, (long long)y);
        break;
    default: {
        const double seconds = (t - day) * 86400.0;
        if (seconds >= 0.5) {
            long sec = lround(seconds);
            snprintf(out, size, "%04lld-%02d-%02dT%02ld:%02ld:%02ld", (long long)y, m, d,
                     sec / 3600, sec / 60 % 60, sec % 60);
        } else {
            snprintf(out, size, "%04lld-%02d-%02d", (long long)y, m, d);
        }
    }
    }
}

int recur_fill_missing(const double *x, size_t n, size_t stride, size_t split, double *out)
{
    if ((!x || !out) && n)
        return recur__error(RECUR_E_INVALID, "recur_fill_missing: NULL array");
    if (stride == 0)
        stride = 1;
    if (split > n)
        split = n;
    size_t first = split;
    for (size_t i = 0; i < split; i++)
        if (!isnan(x[i * stride])) {
            first = i;
            break;
        }
    if (n && first == split)
        return recur__error(RECUR_E_INVALID, "recur_fill_missing: no observed value among the "
                            "first %zu steps", split);
    /* before split: interpolate between observations (copy at the edges) */
    size_t previous = first;
    for (size_t i = 0; i < split; i++) {
        const double v = x[i * stride];
        if (!isnan(v)) {
            out[i * stride] = v;
            previous = i;
            continue;
        }
        if (i < first) {
            out[i * stride] = x[first * stride];
            continue;
        }
        size_t next = i + 1;
        while (next < split && isnan(x[next * stride]))
            next++;
        const double a = x[previous * stride];
        if (next == split) {
            out[i * stride] = a;
            continue;
        }
        const double b = x[next * stride];
        const double w = (double)(i - previous) / (double)(next - previous);
        out[i * stride] = a + w * (b - a);
    }
    /* from split on: the last observation carried forward */
    double last = split ? out[(split - 1) * stride] : NAN;
    for (size_t i = split; i < n; i++) {
        const double v = x[i * stride];
        if (!isnan(v))
            last = v;
        out[i * stride] = last;
    }
    return RECUR_OK;
}
