/* classify_data.c - the data side of sequence classification: tables of
 * labelled text (TSV/CSV with a header), the word/character tokenizer and
 * its vocabulary with a JSON form, labelled sequence sets (token ids or
 * feature vectors with variable lengths), the UEA/UCR .ts reader, stratified
 * folds and per-feature statistics (include/recur/classify.h).
 *
 * Every message about a file names the file and the 1-based line. Token
 * strings are kept in one hash table (open addressing, FNV-1a) so that
 * building and encoding are linear in the text. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "internal.h"
#include "recur/classify.h"
#include "recur/data.h"

#define UNKNOWN_TEXT "<unk>"
/* Hostile-input caps. */
#define MAX_CLASSES 100000
#define MAX_CHANNELS 100000

/* ---- small helpers ------------------------------------------------------------ */

/* Records "<prefix><the current message>" with status (the message is
 * copied first: recur__error writes over it). */
static int with_context(int status, const char *fmt, ...) RECUR_PRINTF(2, 3);
static int with_context(int status, const char *fmt, ...)
{
    char prefix[512], message[768];
    snprintf(message, sizeof message, "%s", recur_last_error());
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    return recur__error(status, "%s%s", prefix, message);
}


static char *dup_range(const char *s, size_t n)
{
    char *out = recur__malloc(n + 1);
    if (out) {
        memcpy(out, s, n);
        out[n] = '\0';
    }
    return out;
}

static uint64_t fnv(const char *s, size_t n)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* A growable array of pointers / values. */
typedef struct vec {
    void *data;
    size_t count, cap, elem;
} vec;

static int vec_push(vec *v, const void *item)
{
    if (v->count == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 64, bytes;
        if (!recur__mul_size(cap, v->elem, &bytes))
            return recur__error(RECUR_E_NOMEM, "array too large");
        void *grown = recur__malloc(bytes);
        if (!grown)
            return recur__error(RECUR_E_NOMEM, "out of memory");
        if (v->count)
            memcpy(grown, v->data, v->count * v->elem);
        recur__free(v->data);
        v->data = grown;
        v->cap = cap;
    }
    memcpy((char *)v->data + v->count * v->elem, item, v->elem);
    v->count++;
    return RECUR_OK;
}

/* ---- string -> index hash table ----------------------------------------------- */

typedef struct strmap {
    char **keys;     /* [cap] owned copies, NULL for empty slots */
    int64_t *values; /* [cap] */
    size_t cap, count;
} strmap;

static void strmap_free(strmap *m)
{
    for (size_t i = 0; m->keys && i < m->cap; i++)
        recur__free(m->keys[i]);
    recur__free(m->keys);
    recur__free(m->values);
    memset(m, 0, sizeof *m);
}

static int strmap_grow(strmap *m)
{
    size_t cap = m->cap ? 2 * m->cap : 1024;
    char **keys = recur__calloc(cap, sizeof *keys);
    int64_t *values = recur__calloc(cap, sizeof *values);
    if (!keys || !values) {
        recur__free(keys);
        recur__free(values);
        return recur__error(RECUR_E_NOMEM, "out of memory for the token table");
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i])
            continue;
        size_t j = fnv(m->keys[i], strlen(m->keys[i])) & (cap - 1);
        while (keys[j])
            j = (j + 1) & (cap - 1);
        keys[j] = m->keys[i];
        values[j] = m->values[i];
    }
    recur__free(m->keys);
    recur__free(m->values);
    m->keys = keys;
    m->values = values;
    m->cap = cap;
    return RECUR_OK;
}

/* The slot of key[0..n) (its value is valid when keys[slot] is set). */
static size_t strmap_slot(const strmap *m, const char *key, size_t n)
{
    size_t j = fnv(key, n) & (m->cap - 1);
    while (m->keys[j] && !(strlen(m->keys[j]) == n && memcmp(m->keys[j], key, n) == 0))
        j = (j + 1) & (m->cap - 1);
    return j;
}

static int64_t strmap_get(const strmap *m, const char *key, size_t n)
{
    if (!m->cap)
        return -1;
    size_t j = strmap_slot(m, key, n);
    return m->keys[j] ? m->values[j] : -1;
}

/* Adds `add` to key's value (inserting it with value `add`); *value_out
 * (optional) receives the new value; *inserted (optional) whether it was new. */
static int strmap_add(strmap *m, const char *key, size_t n, int64_t add, int *inserted)
{
    if (2 * (m->count + 1) > m->cap) {
        int status = strmap_grow(m);
        if (status)
            return status;
    }
    size_t j = strmap_slot(m, key, n);
    if (inserted)
        *inserted = m->keys[j] == NULL;
    if (m->keys[j]) {
        m->values[j] += add;
        return RECUR_OK;
    }
    m->keys[j] = dup_range(key, n);
    if (!m->keys[j])
        return recur__error(RECUR_E_NOMEM, "out of memory for the token table");
    m->values[j] = add;
    m->count++;
    return RECUR_OK;
}

/* ---- tables of text ------------------------------------------------------------- */

void recur_text_rows_free(recur_text_rows *rows)
{
    if (!rows)
        return;
    for (size_t i = 0; i < rows->count; i++) {
        recur__free(rows->text ? rows->text[i] : NULL);
        recur__free(rows->label ? rows->label[i] : NULL);
    }
    recur__free(rows->text);
    recur__free(rows->label);
    recur__free(rows->line);
    recur__free(rows);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    if (n < m)
        return 0;
    for (size_t i = 0; i < m; i++)
        if (tolower((unsigned char)s[n - m + i]) != suffix[i])
            return 0;
    return 1;
}

/* One record of the file: fields as (owned) strings. */
typedef struct record {
    char **fields;
    size_t count, cap;
} record;

static void record_clear(record *r)
{
    for (size_t i = 0; i < r->count; i++)
        recur__free(r->fields[i]);
    r->count = 0;
}

static int record_add(record *r, const char *s, size_t n)
{
    if (r->count == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 8;
        char **grown = recur__calloc(cap, sizeof *grown);
        if (!grown)
            return recur__error(RECUR_E_NOMEM, "out of memory");
        if (r->count)
            memcpy(grown, r->fields, r->count * sizeof *grown);
        recur__free(r->fields);
        r->fields = grown;
        r->cap = cap;
    }
    r->fields[r->count] = dup_range(s, n);
    if (!r->fields[r->count])
        return recur__error(RECUR_E_NOMEM, "out of memory");
    r->count++;
    return RECUR_OK;
}

/* Reads the record starting at *pos (a line, or several for a quoted CSV
 * field spanning lines) and advances *pos and *line. `quotes`: CSV quoting. */
static int read_record(const char *path, const char *buf, size_t len, size_t *pos, int64_t *line,
                       char delim, int quotes, record *r, char **scratch, size_t *scratch_cap)
{
    record_clear(r);
    const int64_t first_line = *line;
    size_t i = *pos;
    for (;;) {
        size_t n = 0;
        int quoted = quotes && i < len && buf[i] == '"';
        if (quoted) {
            i++;
            for (;;) {
                if (i >= len)
                    return recur__error(RECUR_E_FORMAT, "%s:%lld: unterminated quoted field",
                                        path, (long long)first_line);
                if (buf[i] == '"') {
                    if (i + 1 < len && buf[i + 1] == '"') {
                        i++;
                    } else {
                        i++;
                        break;
                    }
                }
                if (buf[i] == '\n')
                    (*line)++;
                if (n + 1 >= *scratch_cap) {
                    size_t cap = *scratch_cap ? 2 * *scratch_cap : 256;
                    char *grown = recur__malloc(cap);
                    if (!grown)
                        return recur__error(RECUR_E_NOMEM, "out of memory");
                    if (n)
                        memcpy(grown, *scratch, n);
                    recur__free(*scratch);
                    *scratch = grown;
                    *scratch_cap = cap;
                }
                (*scratch)[n++] = buf[i++];
            }
            if (i < len && buf[i] != delim && buf[i] != '\n' && buf[i] != '\r')
                return recur__error(RECUR_E_FORMAT, "%s:%lld: text after a closing quote",
                                    path, (long long)*line);
            int status = record_add(r, *scratch, n);
            if (status)
                return status;
        } else {
            size_t start = i;
            while (i < len && buf[i] != delim && buf[i] != '\n')
                i++;
            size_t end = i;
            if (end > start && buf[end - 1] == '\r' && (i >= len || buf[i] == '\n'))
                end--;
            int status = record_add(r, buf + start, end - start);
            if (status)
                return status;
        }
        if (i < len && buf[i] == '\r')
            i++;
        if (i >= len || buf[i] == '\n') {
            if (i < len)
                i++;
            (*line)++;
            break;
        }
        i++; /* the delimiter */
    }
    *pos = i;
    return RECUR_OK;
}

static int blank(const char *s)
{
    for (; *s; s++)
        if (!isspace((unsigned char)*s))
            return 0;
    return 1;
}

static int check_utf8(const char *path, int64_t line, const char *s)
{
    size_t count = 0;
    if (recur_utf8_decode(s, strlen(s), NULL, &count))
        return with_context(RECUR_E_FORMAT, "%s:%lld: ", path, (long long)line);
    return RECUR_OK;
}

int recur_text_rows_read(const char *path, const char *label_col, const char *text_col,
                         int need_label, int allow_plain, recur_text_rows **out)
{
    if (out)
        *out = NULL;
    if (!path || !label_col || !text_col || !out)
        return recur__error(RECUR_E_INVALID, "recur_text_rows_read: an argument is NULL");
    char *buf = NULL;
    size_t len = 0;
    int status = recur_text_read_file(path, &buf, &len);
    if (status)
        return status;
    char delim;
    if (ends_with(path, ".tsv"))
        delim = '\t';
    else if (ends_with(path, ".csv"))
        delim = ',';
    else {
        const char *nl = memchr(buf, '\n', len);
        delim = memchr(buf, '\t', nl ? (size_t)(nl - buf) : len) ? '\t' : ',';
    }
    const int quotes = delim == ',';
    recur_text_rows *rows = recur__calloc(1, sizeof *rows);
    record r = {0};
    char *scratch = NULL;
    size_t scratch_cap = 0, pos = 0;
    int64_t line = 1;
    vec texts = {NULL, 0, 0, sizeof(char *)}, labels = {NULL, 0, 0, sizeof(char *)},
        lines = {NULL, 0, 0, sizeof(int64_t)};
    long text_at = -1, label_at = -1;
    int plain = 0;
    if (!rows) {
        status = recur__error(RECUR_E_NOMEM, "out of memory");
        goto done;
    }
    /* header, after a UTF-8 byte order mark (spreadsheets write one) */
    if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
        pos = 3;
    while (pos < len && (buf[pos] == '\n' || buf[pos] == '\r')) {
        if (buf[pos] == '\n')
            line++;
        pos++;
    }
    const size_t header_pos = pos;
    const int64_t header_line = line;
    if ((status = read_record(path, buf, len, &pos, &line, delim, quotes, &r, &scratch,
                              &scratch_cap)))
        goto done;
    for (size_t i = 0; i < r.count; i++) {
        if (strcmp(r.fields[i], text_col) == 0 && text_at < 0)
            text_at = (long)i;
        if (strcmp(r.fields[i], label_col) == 0 && label_at < 0)
            label_at = (long)i;
    }
    if ((text_at < 0 && !allow_plain) || (text_at >= 0 && label_at < 0 && need_label)) {
        char names[512] = "";
        size_t used = 0;
        for (size_t i = 0; i < r.count && used + 8 < sizeof names; i++)
            used += (size_t)snprintf(names + used, sizeof names - used, "%s'%.60s'",
                                     i ? ", " : "", r.fields[i]);
        status = recur__error(RECUR_E_FORMAT, "%s:%lld: the header has no column '%s' (its "
                              "columns: %s)", path, (long long)header_line,
                              text_at < 0 ? text_col : label_col, names);
        goto done;
    }
    if (text_at < 0) {
        plain = 1;
        pos = header_pos;
        line = header_line;
        label_at = -1;
    }
    while (pos < len) {
        const int64_t row_line = line;
        char *text = NULL, *label = NULL;
        if (plain) {
            size_t start = pos;
            while (pos < len && buf[pos] != '\n')
                pos++;
            size_t end = pos;
            if (end > start && buf[end - 1] == '\r')
                end--;
            if (pos < len)
                pos++;
            line++;
            text = dup_range(buf + start, end - start);
            if (!text) {
                status = recur__error(RECUR_E_NOMEM, "out of memory");
                goto done;
            }
            if (blank(text)) {
                recur__free(text);
                continue;
            }
        } else {
            if ((status = read_record(path, buf, len, &pos, &line, delim, quotes, &r, &scratch,
                                      &scratch_cap)))
                goto done;
            if (r.count == 1 && blank(r.fields[0]))
                continue;
            const size_t need = (size_t)(text_at > label_at ? text_at : label_at) + 1;
            if (r.count < need) {
                status = recur__error(RECUR_E_FORMAT, "%s:%lld: %zu field%s, the header needs "
                                      "%zu (is the delimiter '%s'?)", path, (long long)row_line,
                                      r.count, r.count == 1 ? "" : "s", need,
                                      delim == '\t' ? "\\t" : ",");
                goto done;
            }
            text = r.fields[text_at];
            r.fields[text_at] = recur__strdup("");
            if (label_at >= 0) {
                label = r.fields[label_at];
                r.fields[label_at] = recur__strdup("");
            }
            if (blank(text)) {
                recur__free(text);
                recur__free(label);
                status = recur__error(RECUR_E_FORMAT, "%s:%lld: column '%s' is empty", path,
                                      (long long)row_line, text_col);
                goto done;
            }
            if (label && blank(label)) {
                recur__free(text);
                recur__free(label);
                status = recur__error(RECUR_E_FORMAT, "%s:%lld: column '%s' is empty", path,
                                      (long long)row_line, label_col);
                goto done;
            }
        }
        if ((status = check_utf8(path, row_line, text)) ||
            (label && (status = check_utf8(path, row_line, label))) ||
            (status = vec_push(&texts, &text)) ||
            (label_at >= 0 && (status = vec_push(&labels, &label))) ||
            (status = vec_push(&lines, &row_line))) {
            if (texts.count == 0 || ((char **)texts.data)[texts.count - 1] != text)
                recur__free(text);
            if (labels.count == 0 || ((char **)labels.data)[labels.count - 1] != label)
                recur__free(label);
            goto done;
        }
    }
    if (texts.count == 0) {
        status = recur__error(RECUR_E_FORMAT, "%s: no rows", path);
        goto done;
    }
    rows->count = texts.count;
    rows->text = texts.data;
    rows->label = label_at >= 0 ? labels.data : NULL;
    rows->line = lines.data;
    texts.data = labels.data = lines.data = NULL;
    *out = rows;
    rows = NULL;
done:
    for (size_t i = 0; i < texts.count && texts.data; i++)
        recur__free(((char **)texts.data)[i]);
    for (size_t i = 0; i < labels.count && labels.data; i++)
        recur__free(((char **)labels.data)[i]);
    recur__free(texts.data);
    recur__free(labels.data);
    recur__free(lines.data);
    record_clear(&r);
    recur__free(r.fields);
    recur__free(scratch);
    recur__free(rows);
    recur_free(buf);
    return status;
}

/* ---- tokenizer ------------------------------------------------------------------- */

struct recur_tokenizer {
    recur_tokenizer_config config;
    char **tokens; /* [V] */
    int32_t size;
    strmap map;    /* token -> id */
};

recur_tokenizer_config recur_tokenizer_config_default(recur_token_level level)
{
    recur_tokenizer_config c = {level, level == RECUR_TOKENS_WORDS, 1, 0};
    return c;
}

static int check_config(const recur_tokenizer_config *c)
{
    if (c->level != RECUR_TOKENS_WORDS && c->level != RECUR_TOKENS_CHARS)
        return recur__error(RECUR_E_INVALID, "tokenizer: unknown level %d", (int)c->level);
    if (c->min_count < 1 || c->max_vocab < 0)
        return recur__error(RECUR_E_INVALID, "tokenizer: min_count %d must be >= 1 and "
                            "max_vocab %d >= 0", c->min_count, c->max_vocab);
    return RECUR_OK;
}

static int word_byte(unsigned char ch)
{
    return isalnum(ch) || ch == '_' || ch >= 0x80;
}

static int space_byte(unsigned char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

typedef struct span {
    size_t start, len; /* in the (lower-cased) text */
} span;

/* Token spans of text (already lower-cased as configured). White-space runs
 * of the character level are spans of length 0, meaning " ". */
static int split(const recur_tokenizer_config *c, const char *s, size_t n, vec *spans)
{
    size_t i = 0;
    while (i < n) {
        const unsigned char ch = (unsigned char)s[i];
        span sp = {i, 0};
        if (c->level == RECUR_TOKENS_CHARS) {
            if (space_byte(ch)) {
                while (i < n && space_byte((unsigned char)s[i]))
                    i++;
                sp.len = 0;
            } else {
                size_t next = i;
                uint32_t cp;
                int status = recur_utf8_next(s, n, &next, &cp);
                if (status)
                    return status;
                sp.len = next - i;
                i = next;
            }
        } else if (space_byte(ch)) {
            i++;
            continue;
        } else if (word_byte(ch)) {
            while (i < n && (word_byte((unsigned char)s[i]) ||
                             (s[i] == '\'' && i + 1 < n && word_byte((unsigned char)s[i + 1]))))
                i++;
            sp.len = i - sp.start;
        } else {
            i++;
            sp.len = 1;
        }
        int status = vec_push(spans, &sp);
        if (status)
            return status;
    }
    return RECUR_OK;
}

/* The text as the tokenizer sees it: validated, lower-cased if configured. */
static int prepare(const recur_tokenizer_config *c, const char *text, char **out, size_t *n)
{
    size_t len = strlen(text), count = 0;
    int status = recur_utf8_decode(text, len, NULL, &count);
    if (status)
        return status;
    char *copy = dup_range(text, len);
    if (!copy)
        return recur__error(RECUR_E_NOMEM, "out of memory");
    if (c->lowercase)
        for (size_t i = 0; i < len; i++)
            if (copy[i] >= 'A' && copy[i] <= 'Z')
                copy[i] = (char)(copy[i] - 'A' + 'a');
    *out = copy;
    *n = len;
    return RECUR_OK;
}

static int spans_of(const recur_tokenizer_config *c, const char *text, char **prepared,
                    vec *spans)
{
    size_t n = 0;
    int status = prepare(c, text, prepared, &n);
    if (status)
        return status;
    spans->elem = sizeof(span);
    status = split(c, *prepared, n, spans);
    if (status) {
        recur__free(*prepared);
        *prepared = NULL;
        recur__free(spans->data);
        spans->data = NULL;
    }
    return status;
}

static const char *span_text(const char *s, const span *sp, size_t *len)
{
    if (sp->len == 0) {
        *len = 1;
        return " ";
    }
    *len = sp->len;
    return s + sp->start;
}

int recur_tokenize(const recur_tokenizer_config *config, const char *text, char ***tokens,
                   size_t *count)
{
    if (tokens)
        *tokens = NULL;
    if (count)
        *count = 0;
    if (!config || !text || !tokens || !count)
        return recur__error(RECUR_E_INVALID, "recur_tokenize: an argument is NULL");
    int status = check_config(config);
    if (status)
        return status;
    char *s = NULL;
    vec spans = {NULL, 0, 0, sizeof(span)};
    if ((status = spans_of(config, text, &s, &spans)))
        return status;
    const span *sp = spans.data;
    size_t bytes = (spans.count + 1) * sizeof(char *), len;
    for (size_t i = 0; i < spans.count; i++) {
        span_text(s, &sp[i], &len);
        bytes += len + 1;
    }
    char **out = recur__malloc(bytes);
    if (!out) {
        recur__free(s);
        recur__free(spans.data);
        return recur__error(RECUR_E_NOMEM, "out of memory for %zu tokens", spans.count);
    }
    char *cursor = (char *)(out + spans.count + 1);
    for (size_t i = 0; i < spans.count; i++) {
        const char *t = span_text(s, &sp[i], &len);
        memcpy(cursor, t, len);
        cursor[len] = '\0';
        out[i] = cursor;
        cursor += len + 1;
    }
    out[spans.count] = NULL;
    *tokens = out;
    *count = spans.count;
    recur__free(s);
    recur__free(spans.data);
    return RECUR_OK;
}

void recur_tokenizer_free(recur_tokenizer *t)
{
    if (!t)
        return;
    for (int32_t i = 0; t->tokens && i < t->size; i++)
        recur__free(t->tokens[i]);
    recur__free(t->tokens);
    strmap_free(&t->map);
    recur__free(t);
}

/* A tokenizer of "<unk>" followed by tokens[0..n). */
static int make_tokenizer(const recur_tokenizer_config *config, const char *const *tokens,
                          size_t n, recur_tokenizer **out)
{
    *out = NULL;
    if (n > (size_t)INT32_MAX - 1)
        return recur__error(RECUR_E_INVALID, "tokenizer: %zu tokens are too many", n);
    recur_tokenizer *t = recur__calloc(1, sizeof *t);
    if (!t)
        return recur__error(RECUR_E_NOMEM, "out of memory");
    t->config = *config;
    t->tokens = recur__calloc(n + 1, sizeof *t->tokens);
    int status = t->tokens ? RECUR_OK : recur__error(RECUR_E_NOMEM, "out of memory");
    for (size_t i = 0; !status && i <= n; i++) {
        const char *text = i == 0 ? UNKNOWN_TEXT : tokens[i - 1];
        if (!text || !text[0]) {
            status = recur__error(RECUR_E_INVALID, "tokenizer: token %zu is empty", i);
            break;
        }
        int inserted = 0;
        if ((status = strmap_add(&t->map, text, strlen(text), (int64_t)i, &inserted)))
            break;
        if (!inserted) {
            status = recur__error(RECUR_E_INVALID, "tokenizer: token %zu '%.40s' appears twice",
                                  i, text);
            break;
        }
        t->tokens[i] = recur__strdup(text);
        if (!t->tokens[i])
            status = recur__error(RECUR_E_NOMEM, "out of memory");
        t->size = (int32_t)i + 1;
    }
    if (status) {
        recur_tokenizer_free(t);
        return status;
    }
    *out = t;
    return RECUR_OK;
}

int recur_tokenizer_from_tokens(const recur_tokenizer_config *config, const char *const *tokens,
                                size_t n, recur_tokenizer **out)
{
    if (out)
        *out = NULL;
    if (!config || (!tokens && n) || !out)
        return recur__error(RECUR_E_INVALID, "recur_tokenizer_from_tokens: an argument is NULL");
    int status = check_config(config);
    return status ? status : make_tokenizer(config, tokens, n, out);
}

typedef struct counted {
    const char *text;
    int64_t count;
} counted;

static int by_count(const void *a, const void *b)
{
    const counted *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return strcmp(x->text, y->text);
}

int recur_tokenizer_build(const recur_tokenizer_config *config, const char *const *texts,
                          size_t n, recur_tokenizer **out)
{
    if (out)
        *out = NULL;
    if (!config || (!texts && n) || !out)
        return recur__error(RECUR_E_INVALID, "recur_tokenizer_build: an argument is NULL");
    int status = check_config(config);
    if (status)
        return status;
    strmap counts = {0};
    for (size_t k = 0; k < n && !status; k++) {
        char *s = NULL;
        vec spans = {NULL, 0, 0, sizeof(span)};
        if ((status = spans_of(config, texts[k], &s, &spans)))
            break;
        const span *sp = spans.data;
        for (size_t i = 0; i < spans.count && !status; i++) {
            size_t len;
            const char *t = span_text(s, &sp[i], &len);
            if (!(len == strlen(UNKNOWN_TEXT) && memcmp(t, UNKNOWN_TEXT, len) == 0))
                status = strmap_add(&counts, t, len, 1, NULL);
        }
        recur__free(s);
        recur__free(spans.data);
    }
    counted *list = NULL;
    const char **kept = NULL;
    size_t m = 0;
    if (!status && counts.count) {
        list = recur__calloc(counts.count, sizeof *list);
        kept = recur__calloc(counts.count, sizeof *kept);
        if (!list || !kept)
            status = recur__error(RECUR_E_NOMEM, "out of memory");
        for (size_t i = 0; !status && i < counts.cap; i++)
            if (counts.keys[i] && counts.values[i] >= config->min_count)
                list[m++] = (counted){counts.keys[i], counts.values[i]};
        if (!status) {
            qsort(list, m, sizeof *list, by_count);
            if (config->max_vocab > 0 && m > (size_t)config->max_vocab)
                m = (size_t)config->max_vocab;
            for (size_t i = 0; i < m; i++)
                kept[i] = list[i].text;
        }
    }
    if (!status)
        status = make_tokenizer(config, kept, m, out);
    recur__free(list);
    recur__free(kept);
    strmap_free(&counts);
    return status;
}

const recur_tokenizer_config *recur_tokenizer_get_config(const recur_tokenizer *t)
{
    return t ? &t->config : NULL;
}

int32_t recur_tokenizer_size(const recur_tokenizer *t) { return t ? t->size : 0; }

const char *recur_tokenizer_token(const recur_tokenizer *t, int32_t id)
{
    return t && id >= 0 && id < t->size ? t->tokens[id] : NULL;
}

int32_t recur_tokenizer_lookup(const recur_tokenizer *t, const char *token)
{
    if (!t || !token)
        return RECUR_TOKEN_UNKNOWN;
    int64_t id = strmap_get(&t->map, token, strlen(token));
    return id < 0 ? RECUR_TOKEN_UNKNOWN : (int32_t)id;
}

int recur_tokenizer_encode(const recur_tokenizer *t, const char *text, int32_t **ids,
                           size_t *count, size_t *unknown)
{
    if (ids)
        *ids = NULL;
    if (count)
        *count = 0;
    if (!t || !text || !ids || !count)
        return recur__error(RECUR_E_INVALID, "recur_tokenizer_encode: an argument is NULL");
    char *s = NULL;
    vec spans = {NULL, 0, 0, sizeof(span)};
    int status = spans_of(&t->config, text, &s, &spans);
    if (status)
        return status;
    int32_t *out = recur__malloc((spans.count ? spans.count : 1) * sizeof *out);
    if (!out) {
        recur__free(s);
        recur__free(spans.data);
        return recur__error(RECUR_E_NOMEM, "out of memory");
    }
    size_t missing = 0;
    const span *sp = spans.data;
    for (size_t i = 0; i < spans.count; i++) {
        size_t len;
        const char *tok = span_text(s, &sp[i], &len);
        int64_t id = strmap_get(&t->map, tok, len);
        if (id <= 0) {
            id = RECUR_TOKEN_UNKNOWN;
            missing++;
        }
        out[i] = (int32_t)id;
    }
    *ids = out;
    *count = spans.count;
    if (unknown)
        *unknown = missing;
    recur__free(s);
    recur__free(spans.data);
    return RECUR_OK;
}

int recur_tokenizer_to_json(const recur_tokenizer *t, char **json)
{
    if (json)
        *json = NULL;
    if (!t || !json)
        return recur__error(RECUR_E_INVALID, "recur_tokenizer_to_json: an argument is NULL");
    json_t *obj = json_object(), *list = json_array();
    int ok = obj && list;
    for (int32_t i = 0; ok && i < t->size; i++)
        ok = json_array_append_new(list, json_string(t->tokens[i])) == 0;
    ok = ok &&
         json_object_set_new(obj, "level", json_string(t->config.level == RECUR_TOKENS_WORDS
                                                           ? "word"
                                                           : "char")) == 0 &&
         json_object_set_new(obj, "lowercase", json_boolean(t->config.lowercase)) == 0 &&
         json_object_set_new(obj, "min_count", json_integer(t->config.min_count)) == 0 &&
         json_object_set_new(obj, "max_vocab", json_integer(t->config.max_vocab)) == 0;
    if (ok) {
        ok = json_object_set_new(obj, "tokens", list) == 0;
        list = NULL;
    }
    char *text = ok ? json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(obj);
    json_decref(list);
    if (!text)
        return recur__error(RECUR_E_NOMEM, "out of memory writing the tokenizer");
    *json = recur__strdup(text);
    free(text);
    return *json ? RECUR_OK : recur__error(RECUR_E_NOMEM, "out of memory");
}

int recur_tokenizer_from_json(const char *json, recur_tokenizer **out)
{
    if (out)
        *out = NULL;
    if (!json || !out)
        return recur__error(RECUR_E_INVALID, "recur_tokenizer_from_json: an argument is NULL");
    json_error_t jerr;
    json_t *obj = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
    int status = RECUR_OK;
    const char **list = NULL;
    if (!obj || !json_is_object(obj)) {
        status = recur__error(RECUR_E_FORMAT, "tokenizer: not a JSON object%s%s",
                              obj ? "" : ": ", obj ? "" : jerr.text);
        goto done;
    }
    json_t *level = json_object_get(obj, "level"), *lower = json_object_get(obj, "lowercase");
    json_t *minc = json_object_get(obj, "min_count"), *maxv = json_object_get(obj, "max_vocab");
    json_t *tokens = json_object_get(obj, "tokens");
    recur_tokenizer_config c = recur_tokenizer_config_default(RECUR_TOKENS_WORDS);
    if (!json_is_string(level) || (strcmp(json_string_value(level), "word") != 0 &&
                                   strcmp(json_string_value(level), "char") != 0)) {
        status = recur__error(RECUR_E_FORMAT, "tokenizer: \"level\" must be \"word\" or \"char\"");
        goto done;
    }
    c.level = strcmp(json_string_value(level), "word") == 0 ? RECUR_TOKENS_WORDS
                                                            : RECUR_TOKENS_CHARS;
    if (!json_is_boolean(lower) || !json_is_integer(minc) || !json_is_integer(maxv) ||
        json_integer_value(minc) < 1 || json_integer_value(minc) > INT32_MAX ||
        json_integer_value(maxv) < 0 || json_integer_value(maxv) > INT32_MAX) {
        status = recur__error(RECUR_E_FORMAT, "tokenizer: \"lowercase\" must be true or false, "
                              "\"min_count\" an integer >= 1 and \"max_vocab\" one >= 0");
        goto done;
    }
    c.lowercase = json_is_true(lower);
    c.min_count = (int)json_integer_value(minc);
    c.max_vocab = (int)json_integer_value(maxv);
    if (!json_is_array(tokens) || json_array_size(tokens) < 1 ||
        json_array_size(tokens) > (size_t)INT32_MAX) {
        status = recur__error(RECUR_E_FORMAT, "tokenizer: \"tokens\" must be a non-empty array");
        goto done;
    }
    const size_t n = json_array_size(tokens);
    list = recur__calloc(n, sizeof *list);
    if (!list) {
        status = recur__error(RECUR_E_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(tokens, i);
        if (!json_is_string(v) || (i == 0 && strcmp(json_string_value(v), UNKNOWN_TEXT) != 0)) {
            status = recur__error(RECUR_E_FORMAT, "tokenizer: token %zu must be a string%s", i,
                                  i == 0 ? " and be \"<unk>\"" : "");
            goto done;
        }
        list[i] = json_string_value(v);
    }
    if ((status = make_tokenizer(&c, list + 1, n - 1, out)))
        status = with_context(RECUR_E_FORMAT, "%s", "");
done:
    recur__free(list);
    json_decref(obj);
    return status;
}

/* ---- labelled sequence sets ---------------------------------------------------- */

static void free_names(char **names, int n)
{
    for (int i = 0; names && i < n; i++)
        recur__free(names[i]);
    recur__free(names);
}

void recur_seqset_free(recur_seqset *set)
{
    if (!set)
        return;
    recur__free(set->offsets);
    recur__free(set->tokens);
    recur__free(set->features);
    recur__free(set->labels);
    recur__free(set->lines);
    recur__free(set->sources);
    free_names(set->class_names, set->class_count);
    free_names(set->source_names, set->source_count);
    recur__free(set);
}

size_t recur_seqset_length(const recur_seqset *set, size_t i)
{
    return set && i < set->count ? set->offsets[i + 1] - set->offsets[i] : 0;
}

static char **copy_names(const char *const *names, int n)
{
    char **out = recur__calloc(n > 0 ? (size_t)n : 1, sizeof *out);
    for (int i = 0; out && i < n; i++) {
        out[i] = recur__strdup(names[i]);
        if (!out[i]) {
            free_names(out, i);
            return NULL;
        }
    }
    return out;
}

/* Integer labels sort numerically, others by bytes. */
static int all_integers;

static int is_integer(const char *s)
{
    char *end;
    errno = 0;
    (void)strtoll(s, &end, 10);
    return end != s && *end == '\0' && errno == 0;
}

static int by_label(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    if (all_integers) {
        long long u = strtoll(x, NULL, 10), v = strtoll(y, NULL, 10);
        return u < v ? -1 : u > v;
    }
    return strcmp(x, y);
}

int recur_labels_sorted(const char *const *labels, size_t n, char ***names, int *count)
{
    if (names)
        *names = NULL;
    if (count)
        *count = 0;
    if ((!labels && n) || !names || !count)
        return recur__error(RECUR_E_INVALID, "recur_labels_sorted: an argument is NULL");
    strmap seen = {0};
    const char **distinct = recur__calloc(n ? n : 1, sizeof *distinct);
    int status = distinct ? RECUR_OK : recur__error(RECUR_E_NOMEM, "out of memory");
    size_t m = 0, bytes = 0;
    all_integers = 1;
    for (size_t i = 0; i < n && !status; i++) {
        int inserted = 0;
        if (!labels[i]) {
            status = recur__error(RECUR_E_INVALID, "recur_labels_sorted: label %zu is NULL", i);
            break;
        }
        status = strmap_add(&seen, labels[i], strlen(labels[i]), 0, &inserted);
        if (!status && inserted) {
            distinct[m++] = labels[i];
            bytes += strlen(labels[i]) + 1;
            all_integers = all_integers && is_integer(labels[i]);
        }
    }
    if (!status && m > MAX_CLASSES)
        status = recur__error(RECUR_E_FORMAT, "more than %d distinct labels", MAX_CLASSES);
    char **out = NULL;
    if (!status) {
        qsort(distinct, m, sizeof *distinct, by_label);
        out = recur__malloc((m + 1) * sizeof *out + bytes);
        if (!out)
            status = recur__error(RECUR_E_NOMEM, "out of memory");
    }
    if (!status) {
        char *cursor = (char *)(out + m + 1);
        for (size_t k = 0; k < m; k++) {
            const size_t len = strlen(distinct[k]) + 1;
            memcpy(cursor, distinct[k], len);
            out[k] = cursor;
            cursor += len;
        }
        out[m] = NULL;
        *names = out;
        *count = (int)m;
    }
    recur__free(distinct);
    strmap_free(&seen);
    return status;
}

int recur_seqset_from_rows(const recur_text_rows *rows, const recur_tokenizer *t,
                           const char *const *class_names, int class_count, const char *source,
                           recur_seqset **out)
{
    if (out)
        *out = NULL;
    if (!rows || !t || !out || (!class_names && !rows->label))
        return recur__error(RECUR_E_INVALID, "recur_seqset_from_rows: %s",
                            (!rows || !t || !out) ? "an argument is NULL"
                                                  : "rows without labels need class names");
    recur_seqset *set = recur__calloc(1, sizeof *set);
    if (!set)
        return recur__error(RECUR_E_NOMEM, "out of memory");
    const size_t n = rows->count;
    int status = RECUR_OK;
    strmap classes = {0};
    vec ids = {NULL, 0, 0, sizeof(int32_t)};
    set->kind = RECUR_SEQ_TOKENS;
    set->count = n;
    set->offsets = recur__calloc(n + 1, sizeof *set->offsets);
    set->labels = recur__calloc(n ? n : 1, sizeof *set->labels);
    set->lines = recur__calloc(n ? n : 1, sizeof *set->lines);
    set->sources = recur__calloc(n ? n : 1, sizeof *set->sources);
    set->source_count = 1;
    set->source_names = copy_names((const char *const[]){source ? source : ""}, 1);
    if (!set->offsets || !set->labels || !set->lines || !set->sources || !set->source_names) {
        status = recur__error(RECUR_E_NOMEM, "out of memory");
        goto done;
    }
    /* the classes */
    if (class_names) {
        if (class_count < 1 || class_count > MAX_CLASSES) {
            status = recur__error(RECUR_E_INVALID, "recur_seqset_from_rows: %d classes",
                                  class_count);
            goto done;
        }
        for (int k = 0; k < class_count && !status; k++)
            status = strmap_add(&classes, class_names[k], strlen(class_names[k]), k, NULL);
        set->class_names = copy_names(class_names, class_count);
        set->class_count = class_count;
    } else {
        char **sorted = NULL;
        int distinct = 0;
        status = recur_labels_sorted((const char *const *)rows->label, n, &sorted, &distinct);
        for (int k = 0; k < distinct && !status; k++)
            status = strmap_add(&classes, sorted[k], strlen(sorted[k]), k, NULL);
        if (!status) {
            set->class_names = copy_names((const char *const *)sorted, distinct);
            set->class_count = distinct;
        }
        recur__free(sorted);
    }
    if (!status && !set->class_names)
        status = recur__error(RECUR_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n && !status; i++) {
        set->lines[i] = rows->line[i];
        set->labels[i] = -1;
        if (rows->label) {
            int64_t k = strmap_get(&classes, rows->label[i], strlen(rows->label[i]));
            if (k < 0) {
                status = recur__error(RECUR_E_NOT_FOUND, "%s:%lld: unknown label '%.60s' (the "
                                      "model's classes: %s%s%s%s)", source,
                                      (long long)rows->line[i], rows->label[i],
                                      set->class_names[0], set->class_count > 1 ? ", " : "",
                                      set->class_count > 1 ? set->class_names[1] : "",
                                      set->class_count > 2 ? ", ..." : "");
                break;
            }
            set->labels[i] = (int32_t)k;
        }
        int32_t *encoded = NULL;
        size_t count = 0;
        if ((status = recur_tokenizer_encode(t, rows->text[i], &encoded, &count, NULL))) {
            status = with_context(status, "%s:%lld: ", source, (long long)rows->line[i]);
            break;
        }
        if (count == 0)
            status = recur__error(RECUR_E_FORMAT, "%s:%lld: the text has no tokens", source,
                                  (long long)rows->line[i]);
        for (size_t j = 0; j < count && !status; j++)
            status = vec_push(&ids, &encoded[j]);
        recur_free(encoded);
        set->offsets[i + 1] = ids.count;
    }
    if (!status) {
        set->tokens = ids.data ? ids.data : recur__calloc(1, sizeof(int32_t));
        ids.data = NULL;
        if (!set->tokens)
            status = recur__error(RECUR_E_NOMEM, "out of memory");
    }
done:
    recur__free(ids.data);
    strmap_free(&classes);
    if (status) {
        recur_seqset_free(set);
        return status;
    }
    *out = set;
    return RECUR_OK;
}

/* Grows *p (of `have` elements of `size` bytes) to `want` elements. */
static int grow(void **p, size_t have, size_t want, size_t size)
{
    size_t bytes;
    if (!recur__mul_size(want ? want : 1, size, &bytes))
        return recur__error(RECUR_E_NOMEM, "set too large");
    void *q = recur__malloc(bytes);
    if (!q)
        return recur__error(RECUR_E_NOMEM, "out of memory");
    if (have && *p)
        memcpy(q, *p, have * size);
    recur__free(*p);
    *p = q;
    return RECUR_OK;
}

int recur_seqset_append(recur_seqset *a, const recur_seqset *b)
{
    if (!a || !b)
        return recur__error(RECUR_E_INVALID, "recur_seqset_append: a set is NULL");
    if (a->kind != b->kind || a->feature_size != b->feature_size ||
        a->class_count != b->class_count)
        return recur__error(RECUR_E_INVALID, "recur_seqset_append: the sets differ in kind, "
                            "feature size or classes");
    for (int k = 0; k < a->class_count; k++)
        if (strcmp(a->class_names[k], b->class_names[k]) != 0)
            return recur__error(RECUR_E_INVALID, "recur_seqset_append: class %d is '%s' in one "
                                "set and '%s' in the other", k, a->class_names[k],
                                b->class_names[k]);
    const size_t n = a->count + b->count, steps_a = a->offsets[a->count],
                 steps = steps_a + b->offsets[b->count];
    const size_t C = a->kind == RECUR_SEQ_FEATURES ? (size_t)a->feature_size : 1;
    int status;
    if ((status = grow((void **)&a->offsets, a->count + 1, n + 1, sizeof *a->offsets)) ||
        (status = grow((void **)&a->labels, a->count, n, sizeof *a->labels)) ||
        (status = grow((void **)&a->lines, a->count, n, sizeof *a->lines)) ||
        (status = grow((void **)&a->sources, a->count, n, sizeof *a->sources)) ||
        (a->kind == RECUR_SEQ_TOKENS &&
         (status = grow((void **)&a->tokens, steps_a, steps, sizeof *a->tokens))) ||
        (a->kind == RECUR_SEQ_FEATURES &&
         (status = grow((void **)&a->features, steps_a * C, steps * C, sizeof *a->features))) ||
        (status = grow((void **)&a->source_names, (size_t)a->source_count,
                       (size_t)(a->source_count + b->source_count), sizeof *a->source_names)))
        return status;
    for (int s = 0; s < b->source_count; s++) {
        a->source_names[a->source_count] = recur__strdup(b->source_names[s]);
        if (!a->source_names[a->source_count])
            return recur__error(RECUR_E_NOMEM, "out of memory");
        a->source_count++;
    }
    for (size_t i = 0; i < b->count; i++) {
        a->offsets[a->count + i + 1] = steps_a + b->offsets[i + 1];
        a->labels[a->count + i] = b->labels[i];
        a->lines[a->count + i] = b->lines[i];
        a->sources[a->count + i] = b->sources[i] + a->source_count - b->source_count;
    }
    if (a->kind == RECUR_SEQ_TOKENS)
        memcpy(a->tokens + steps_a, b->tokens, b->offsets[b->count] * sizeof *a->tokens);
    else
        memcpy(a->features + steps_a * C, b->features,
               b->offsets[b->count] * C * sizeof *a->features);
    a->count = n;
    return RECUR_OK;
}

int recur_seqset_folds(const recur_seqset *set, int k, recur_rng *rng, int *fold)
{
    if (!set || !rng || !fold || k < 2 || (size_t)k > set->count)
        return recur__error(RECUR_E_INVALID, "recur_seqset_folds: need 2 <= k <= %zu (got %d)",
                            set ? set->count : 0, k);
    size_t *order = recur__malloc((set->count ? set->count : 1) * sizeof *order);
    if (!order)
        return recur__error(RECUR_E_NOMEM, "out of memory");
    for (size_t i = 0; i < set->count; i++)
        order[i] = i;
    for (size_t i = set->count; i > 1; i--) {
        size_t j = (size_t)recur_rng_below(rng, i);
        size_t tmp = order[i - 1];
        order[i - 1] = order[j];
        order[j] = tmp;
    }
    /* classes one after another (stable), dealt round-robin */
    size_t dealt = 0;
    for (int c = -1; c < set->class_count; c++)
        for (size_t i = 0; i < set->count; i++)
            if (set->labels[order[i]] == c)
                fold[order[i]] = (int)(dealt++ % (size_t)k);
    recur__free(order);
    return RECUR_OK;
}

int recur_seqset_feature_stats(const recur_seqset *set, const size_t *index, size_t n,
                               float *mean, float *std)
{
    if (!set || set->kind != RECUR_SEQ_FEATURES || (!index && n) || !mean || !std)
        return recur__error(RECUR_E_INVALID, "recur_seqset_feature_stats: a feature set, "
                            "indices and outputs are needed");
    const int C = set->feature_size;
    double *sum = recur__calloc(2 * (size_t)C, sizeof *sum);
    if (!sum)
        return recur__error(RECUR_E_NOMEM, "out of memory");
    double steps = 0;
    for (size_t k = 0; k < n; k++) {
        const size_t i = index[k];
        for (size_t t = set->offsets[i]; t < set->offsets[i + 1]; t++) {
            const float *x = set->features + t * (size_t)C;
            for (int c = 0; c < C; c++) {
                sum[c] += x[c];
                sum[C + c] += (double)x[c] * x[c];
            }
            steps++;
        }
    }
    for (int c = 0; c < C; c++) {
        double m = steps > 0 ? sum[c] / steps : 0.0;
        double var = steps > 0 ? sum[C + c] / steps - m * m : 0.0;
        mean[c] = (float)m;
        std[c] = var > 1e-12 ? (float)sqrt(var) : 1.0f;
    }
    recur__free(sum);
    return RECUR_OK;
}

/* ---- the .ts format ------------------------------------------------------------- */

static int strncasecmp_ascii(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int x = tolower((unsigned char)a[i]), y = tolower((unsigned char)b[i]);
        if (x != y)
            return x - y;
        if (!x)
            return 0;
    }
    return 0;
}

/* Whether line starts with the header key (case-insensitive) followed by
 * white space or its end; *rest: the value after the white space. */
static int header_is(const char *line, const char *key, const char **rest)
{
    size_t n = strlen(key);
    if (strncasecmp_ascii(line, key, n) != 0)
        return 0;
    if (line[n] && !isspace((unsigned char)line[n]))
        return 0;
    *rest = line + n;
    while (**rest && isspace((unsigned char)**rest))
        (*rest)++;
    return 1;
}

/* Parses one channel "v1,v2,...,vn" of [begin, end) into values. */
static int parse_channel(const char *path, int64_t line, int channel, const char *begin,
                         const char *end, vec *values)
{
    const char *p = begin;
    values->count = 0;
    while (p < end) {
        while (p < end && isspace((unsigned char)*p))
            p++;
        const char *field = p;
        while (p < end && *p != ',')
            p++;
        const char *field_end = p;
        while (field_end > field && isspace((unsigned char)field_end[-1]))
            field_end--;
        char text[64];
        size_t n = (size_t)(field_end - field);
        if (n == 0 || n >= sizeof text)
            return recur__error(RECUR_E_FORMAT, "%s:%lld: channel %d: %s value %zu", path,
                                (long long)line, channel + 1, n ? "overlong" : "empty",
                                values->count + 1);
        memcpy(text, field, n);
        text[n] = '\0';
        char *stop;
        double x = strtod(text, &stop);
        if (*stop != '\0')
            return recur__error(RECUR_E_FORMAT, "%s:%lld: channel %d: value %zu '%s' is not a "
                                "number", path, (long long)line, channel + 1, values->count + 1,
                                text);
        if (!isfinite(x) || fabs(x) > 3e38)
            return recur__error(RECUR_E_FORMAT, "%s:%lld: channel %d: value %zu '%s' is missing "
                                "or not finite (missing values are not supported)", path,
                                (long long)line, channel + 1, values->count + 1, text);
        float f = (float)x;
        int status = vec_push(values, &f);
        if (status)
            return status;
        if (p < end)
            p++; /* the comma */
    }
    return RECUR_OK;
}

int recur_ts_read(const char *path, recur_seqset **out)
{
    if (out)
        *out = NULL;
    if (!path || !out)
        return recur__error(RECUR_E_INVALID, "recur_ts_read: an argument is NULL");
    char *buf = NULL;
    size_t len = 0;
    int status = recur_text_read_file(path, &buf, &len);
    if (status)
        return status;
    recur_seqset *set = recur__calloc(1, sizeof *set);
    strmap classes = {0};
    vec names = {NULL, 0, 0, sizeof(char *)};
    vec offsets = {NULL, 0, 0, sizeof(size_t)}, labels = {NULL, 0, 0, sizeof(int32_t)};
    vec lines = {NULL, 0, 0, sizeof(int64_t)}, feats = {NULL, 0, 0, sizeof(float)};
    vec channel = {NULL, 0, 0, sizeof(float)};
    float *steps = NULL;
    size_t steps_cap = 0;
    int dims = 0, in_data = 0, have_labels = 0;
    int64_t line = 0;
    const size_t zero = 0;
    if (!set || (status = vec_push(&offsets, &zero))) {
        status = status ? status : recur__error(RECUR_E_NOMEM, "out of memory");
        goto done;
    }
    for (size_t pos = 0; pos < len;) {
        char *begin = buf + pos;
        char *nl = memchr(begin, '\n', len - pos);
        char *end = nl ? nl : buf + len;
        pos = (size_t)(end - buf) + 1;
        line++;
        *end = '\0';
        if (end > begin && end[-1] == '\r')
            *--end = '\0';
        while (begin < end && isspace((unsigned char)*begin))
            begin++;
        if (begin == end || *begin == '#')
            continue;
        if (!in_data) {
            const char *rest;
            if (*begin != '@') {
                status = recur__error(RECUR_E_FORMAT, "%s:%lld: expected a '@' header line or "
                                      "@data before the data", path, (long long)line);
                goto done;
            }
            if (header_is(begin, "@data", &rest)) {
                in_data = 1;
            } else if (header_is(begin, "@dimensions", &rest)) {
                char *stop;
                long d = strtol(rest, &stop, 10);
                if (stop == rest || d < 1 || d > MAX_CHANNELS) {
                    status = recur__error(RECUR_E_FORMAT, "%s:%lld: bad @dimensions '%s'", path,
                                          (long long)line, rest);
                    goto done;
                }
                dims = (int)d;
            } else if (header_is(begin, "@timestamps", &rest)) {
                if (strncasecmp_ascii(rest, "true", 4) == 0) {
                    status = recur__error(RECUR_E_UNSUPPORTED, "%s:%lld: series with time "
                                          "stamps are not supported", path, (long long)line);
                    goto done;
                }
            } else if (header_is(begin, "@targetlabel", &rest)) {
                if (strncasecmp_ascii(rest, "true", 4) == 0) {
                    status = recur__error(RECUR_E_UNSUPPORTED, "%s:%lld: regression targets "
                                          "(@targetLabel) are not supported: recur classify "
                                          "needs class labels", path, (long long)line);
                    goto done;
                }
            } else if (header_is(begin, "@classlabel", &rest)) {
                if (strncasecmp_ascii(rest, "true", 4) != 0 ||
                    (rest[4] && !isspace((unsigned char)rest[4]))) {
                    status = recur__error(RECUR_E_FORMAT, "%s:%lld: @classLabel must be 'true' "
                                          "followed by the labels", path, (long long)line);
                    goto done;
                }
                const char *p = rest + 4;
                while (*p) {
                    while (*p && isspace((unsigned char)*p))
                        p++;
                    const char *w = p;
                    while (*p && !isspace((unsigned char)*p))
                        p++;
                    if (p == w)
                        break;
                    int inserted = 0;
                    if ((status = strmap_add(&classes, w, (size_t)(p - w), (int64_t)names.count,
                                             &inserted)))
                        goto done;
                    if (!inserted) {
                        status = recur__error(RECUR_E_FORMAT, "%s:%lld: label '%.*s' listed twice",
                                              path, (long long)line, (int)(p - w), w);
                        goto done;
                    }
                    char *name = dup_range(w, (size_t)(p - w));
                    if (!name || (status = vec_push(&names, &name))) {
                        recur__free(name);
                        status = status ? status : recur__error(RECUR_E_NOMEM, "out of memory");
                        goto done;
                    }
                }
                if (names.count < 1) {
                    status = recur__error(RECUR_E_FORMAT, "%s:%lld: @classLabel lists no labels",
                                          path, (long long)line);
                    goto done;
                }
                have_labels = 1;
            }
            /* other headers (@problemName, @univariate, @equalLength,
             * @seriesLength, @missing) are informative */
            continue;
        }
        if (!have_labels) {
            status = recur__error(RECUR_E_FORMAT, "%s:%lld: no '@classLabel true ...' header "
                                  "before the data: recur classify needs labelled sequences",
                                  path, (long long)line);
            goto done;
        }
        /* channels separated by ':', the last field is the label */
        char *label = strrchr(begin, ':');
        if (!label) {
            status = recur__error(RECUR_E_FORMAT, "%s:%lld: no ':' before the label", path,
                                  (long long)line);
            goto done;
        }
        *label++ = '\0';
        while (*label && isspace((unsigned char)*label))
            label++;
        size_t label_len = strlen(label);
        while (label_len && isspace((unsigned char)label[label_len - 1]))
            label_len--;
        int64_t k = strmap_get(&classes, label, label_len);
        if (k < 0) {
            status = recur__error(RECUR_E_FORMAT, "%s:%lld: label '%.*s' is not one of "
                                  "@classLabel's", path, (long long)line, (int)label_len, label);
            goto done;
        }
        int count = 1;
        for (const char *p = begin; *p; p++)
            count += *p == ':';
        if (dims == 0)
            dims = count;
        if (count != dims) {
            status = recur__error(RECUR_E_FORMAT, "%s:%lld: %d channel%s, expected %d", path,
                                  (long long)line, count, count == 1 ? "" : "s", dims);
            goto done;
        }
        size_t T = 0;
        const char *p = begin;
        for (int c = 0; c < dims; c++) {
            const char *q = strchr(p, ':');
            const char *stop = q ? q : p + strlen(p);
            if ((status = parse_channel(path, line, c, p, stop, &channel)))
                goto done;
            if (c == 0) {
                T = channel.count;
                if (T == 0) {
                    status = recur__error(RECUR_E_FORMAT, "%s:%lld: empty sequence", path,
                                          (long long)line);
                    goto done;
                }
                size_t want;
                if (!recur__mul_size(T, (size_t)dims, &want)) {
                    status = recur__error(RECUR_E_NOMEM, "sequence too long");
                    goto done;
                }
                if (want > steps_cap) {
                    recur__free(steps);
                    steps = recur__malloc(want * sizeof *steps);
                    steps_cap = steps ? want : 0;
                    if (!steps) {
                        status = recur__error(RECUR_E_NOMEM, "out of memory");
                        goto done;
                    }
                }
            } else if (channel.count != T) {
                status = recur__error(RECUR_E_FORMAT, "%s:%lld: channel %d has %zu values, "
                                      "channel 1 has %zu", path, (long long)line, c + 1,
                                      channel.count, T);
                goto done;
            }
            for (size_t t = 0; t < T; t++) /* [T, C] from channel-major */
                steps[t * (size_t)dims + (size_t)c] = ((float *)channel.data)[t];
            p = q ? q + 1 : stop;
        }
        for (size_t i = 0; i < T * (size_t)dims; i++)
            if ((status = vec_push(&feats, &steps[i])))
                goto done;
        const size_t total = feats.count / (size_t)dims;
        const int32_t label_id = (int32_t)k;
        if ((status = vec_push(&offsets, &total)) || (status = vec_push(&labels, &label_id)) ||
            (status = vec_push(&lines, &line)))
            goto done;
    }
    if (!in_data || labels.count == 0) {
        status = recur__error(RECUR_E_FORMAT, "%s: %s", path,
                              in_data ? "no sequences after @data" : "no @data line");
        goto done;
    }
    set->kind = RECUR_SEQ_FEATURES;
    set->count = labels.count;
    set->feature_size = dims;
    set->offsets = offsets.data;
    set->features = feats.data;
    set->labels = labels.data;
    set->lines = lines.data;
    offsets.data = feats.data = labels.data = lines.data = NULL;
    set->sources = recur__calloc(set->count, sizeof *set->sources);
    set->source_names = copy_names((const char *const[]){path}, 1);
    set->source_count = 1;
    set->class_count = (int)names.count;
    set->class_names = names.data;
    names.data = NULL;
    names.count = 0;
    if (!set->sources || !set->source_names)
        status = recur__error(RECUR_E_NOMEM, "out of memory");
done:
    free_names(names.data, (int)names.count);
    recur__free(offsets.data);
    recur__free(labels.data);
    recur__free(lines.data);
    recur__free(feats.data);
    recur__free(channel.data);
    recur__free(steps);
    strmap_free(&classes);
    recur_free(buf);
    if (status) {
        recur_seqset_free(set);
        return status;
    }
    *out = set;
    return RECUR_OK;
}
