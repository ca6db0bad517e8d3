/* memory.c - a translation memory and its fuzzy matches (recur/memory.h).
 *
 * Every distinct token of the memory's sources gets an id (an open-addressing
 * table over the token bytes); each source is kept as its token ids, and
 * each id has the list of sources holding it (CSR, ascending, once a source).
 * A match ranks the sources that share a word with the sentence by summed
 * inverse document frequency, then computes the token edit distance to the
 * RECUR_MEMORY_CANDIDATES best ranked only. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "recur/ctc.h"
#include "recur/data.h"
#include "recur/memory.h"

struct recur_memory {
    size_t n;
    char **src, **tgt;
    uint64_t *src_hash;       /* FNV-1a of each source, to skip the sentence itself */
    size_t *tok_off;          /* [n + 1] each source's tokens in toks */
    int32_t *toks;
    size_t vocab;             /* distinct tokens */
    size_t *post_off;         /* [vocab + 1] each token's sources in post */
    uint32_t *post;
    /* the token table: slot -> token id + 1 (0: empty); token bytes in text */
    size_t cap;
    int32_t *slot;
    size_t *text_off;         /* [vocab + 1] */
    char *text;
};

/* ---- characters ------------------------------------------------------------------ */

/* The code point at s[*pos] (*pos < n), *pos moved past it; a byte outside
 * well-formed UTF-8 is 0x110000 + the byte, one byte long. */
static uint32_t next_char(const char *s, size_t n, size_t *pos)
{
    uint32_t c;
    if (recur_utf8_next(s, n, pos, &c) == RECUR_OK)
        return c;
    return 0x110000u + (unsigned char)s[(*pos)++];
}

static int is_space(uint32_t c)
{
    return c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F) || c == 0x85 ||
           c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
           c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

static int is_word(uint32_t c)
{
    if (c < 0x80)
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               c == '_';
    if (c < 0xC0 || c == 0xD7 || c == 0xF7 || c >= 0x110000)
        return 0;
    return !((c >= 0x2000 && c <= 0x2BFF) || (c >= 0x2E00 && c <= 0x2E7F) ||
             (c >= 0x3000 && c <= 0x303F) || (c >= 0xFE30 && c <= 0xFE4F) ||
             (c >= 0xFF00 && c <= 0xFF20) || (c >= 0x1F000 && c <= 0x1FAFF));
}

/* Lower case for the capitals of ASCII, Latin-1, Greek and Cyrillic; each
 * keeps its UTF-8 length. */
static uint32_t lower(uint32_t c)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 0xC0 && c <= 0xDE && c != 0xD7) ||
        (c >= 0x391 && c <= 0x3AB && c != 0x3A2) || (c >= 0x410 && c <= 0x42F))
        return c + 0x20;
    if (c >= 0x400 && c <= 0x40F)
        return c + 0x50;
    /* the accented Greek capitals: Ά, Έ Ή Ί, Ό, Ύ Ώ */
    if (c == 0x386)
        return 0x3AC;
    if (c >= 0x388 && c <= 0x38A)
        return c + 0x25;
    if (c == 0x38C)
        return 0x3CC;
    if (c == 0x38E || c == 0x38F)
        return c + 0x3F;
    return c;
}

/* A sentence's tokens: the lower-cased bytes in buf, token k at
 * buf[start[k] .. start[k + 1]) (start has count + 1 entries). */
typedef struct tokens {
    unsigned char *buf;
    size_t *start;
    size_t count;
} tokens;

static void tokens_free(tokens *t)
{
    recur__free(t->buf);
    recur__free(t->start);
    memset(t, 0, sizeof *t);
}

static int tokenize(const char *text, tokens *t)
{
    memset(t, 0, sizeof *t);
    const size_t n = strlen(text);
    size_t cap;
    /* lower() keeps lengths and a bad byte stays one byte; a token is at least one byte */
    if (!recur__add_size(n, 1, &cap) || !(t->buf = recur__malloc(cap)) ||
        !(t->start = recur__calloc(cap, sizeof *t->start))) {
        tokens_free(t);
        return recur__error(RECUR_E_NOMEM, "translation memory: cannot tokenize %zu bytes", n);
    }
    size_t at = 0, i = 0;
    int in_word = 0;
    while (i < n) {
        const uint32_t c = next_char(text, n, &i);
        if (is_space(c)) {
            in_word = 0;
        } else if (c >= 0x110000) {
            t->start[t->count++] = at;
            t->buf[at++] = (unsigned char)(c - 0x110000);
            in_word = 0;
        } else {
            const int word = is_word(c);
            if (!word || !in_word)
                t->start[t->count++] = at;
            at += (size_t)recur_utf8_encode(lower(c), (char *)t->buf + at);
            in_word = word;
        }
    }
    t->start[t->count] = at;
    return RECUR_OK;
}

/* ---- the token table ------------------------------------------------------------- */

static uint64_t fnv(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* A power of two of at least twice `entries` (open addressing stays short). */
static size_t table_size(size_t entries)
{
    size_t cap = 16;
    while (cap < 2 * entries)
        cap *= 2;
    return cap;
}

/* The id of the token p[0..n), or -1 when the memory has none such. */
static int32_t token_id(const recur_memory *m, const unsigned char *p, size_t n)
{
    if (!m->cap)
        return -1;
    for (size_t j = fnv(p, n) & (m->cap - 1);; j = (j + 1) & (m->cap - 1)) {
        const int32_t id = m->slot[j] - 1;
        if (id < 0)
            return -1;
        const size_t len = m->text_off[id + 1] - m->text_off[id];
        if (len == n && memcmp(m->text + m->text_off[id], p, n) == 0)
            return id;
    }
}

/* ---- building -------------------------------------------------------------------- */

void recur_memory_free(recur_memory *m)
{
    if (!m)
        return;
    for (size_t i = 0; m->src && i < m->n; i++)
        recur__free(m->src[i]);
    for (size_t i = 0; m->tgt && i < m->n; i++)
        recur__free(m->tgt[i]);
    recur__free(m->src);
    recur__free(m->tgt);
    recur__free(m->src_hash);
    recur__free(m->tok_off);
    recur__free(m->toks);
    recur__free(m->post_off);
    recur__free(m->post);
    recur__free(m->slot);
    recur__free(m->text_off);
    recur__free(m->text);
    recur__free(m);
}

static int nomem(recur_memory *m)
{
    recur_memory_free(m);
    return recur__error(RECUR_E_NOMEM, "recur_memory_new: out of memory");
}

/* Interns the tokens of every source: m->toks, tok_off, the table. */
static int intern_all(recur_memory *m)
{
    tokens *all = recur__calloc(m->n ? m->n : 1, sizeof *all);
    if (!all)
        return RECUR_E_NOMEM;
    size_t total = 0, bytes = 0;
    int rc = RECUR_OK;
    for (size_t i = 0; i < m->n && rc == RECUR_OK; i++) {
        if ((rc = tokenize(m->src[i], &all[i])) == RECUR_OK) {
            total += all[i].count;
            bytes += all[i].start[all[i].count];
        }
        /* token ids are int32_t and edit distances take int lengths */
        if (rc == RECUR_OK && total > INT32_MAX)
            rc = recur__error(RECUR_E_INVALID, "recur_memory_new: the sources hold more than "
                              "%d tokens", INT32_MAX);
    }
    m->cap = table_size(total + 1);
    if (rc == RECUR_OK &&
        (!(m->tok_off = recur__calloc(m->n + 1, sizeof *m->tok_off)) ||
         !(m->toks = recur__calloc(total ? total : 1, sizeof *m->toks)) ||
         !(m->slot = recur__calloc(m->cap, sizeof *m->slot)) ||
         !(m->text_off = recur__calloc(total + 1, sizeof *m->text_off)) ||
         !(m->text = recur__malloc(bytes ? bytes : 1))))
        rc = RECUR_E_NOMEM;
    size_t at = 0;
    for (size_t i = 0; i < m->n && rc == RECUR_OK; i++) {
        m->tok_off[i] = at;
        for (size_t k = 0; k < all[i].count; k++) {
            const unsigned char *p = all[i].buf + all[i].start[k];
            const size_t len = all[i].start[k + 1] - all[i].start[k];
            size_t j = fnv(p, len) & (m->cap - 1);
            int32_t id;
            for (;; j = (j + 1) & (m->cap - 1)) {
                id = m->slot[j] - 1;
                if (id < 0 || (m->text_off[id + 1] - m->text_off[id] == len &&
                               memcmp(m->text + m->text_off[id], p, len) == 0))
                    break;
            }
            if (id < 0) {
                id = (int32_t)m->vocab++;
                m->slot[j] = id + 1;
                memcpy(m->text + m->text_off[id], p, len);
                m->text_off[id + 1] = m->text_off[id] + len;
            }
            m->toks[at++] = id;
        }
    }
    if (rc == RECUR_OK)
        m->tok_off[m->n] = at;
    for (size_t i = 0; i < m->n; i++)
        tokens_free(&all[i]);
    recur__free(all);
    return rc;
}

/* The sources holding each token, each source once, ascending. */
static int index_all(recur_memory *m)
{
    size_t *last = NULL; /* the last source counted for each token, + 1 */
    if (!(m->post_off = recur__calloc(m->vocab + 1, sizeof *m->post_off)) ||
        !(last = recur__calloc(m->vocab ? m->vocab : 1, sizeof *last))) {
        recur__free(last);
        return RECUR_E_NOMEM;
    }
    size_t total = 0;
    for (size_t i = 0; i < m->n; i++)
        for (size_t k = m->tok_off[i]; k < m->tok_off[i + 1]; k++)
            if (last[m->toks[k]] != i + 1) {
                last[m->toks[k]] = i + 1;
                m->post_off[m->toks[k] + 1]++;
                total++;
            }
    for (size_t v = 0; v < m->vocab; v++)
        m->post_off[v + 1] += m->post_off[v];
    recur__free(last);
    /* fill[v]: the sources listed for token v so far; the last listed is the latest */
    size_t *fill = recur__calloc(m->vocab ? m->vocab : 1, sizeof *fill);
    if (!fill || !(m->post = recur__calloc(total ? total : 1, sizeof *m->post))) {
        recur__free(fill);
        return RECUR_E_NOMEM;
    }
    for (size_t i = 0; i < m->n; i++)
        for (size_t k = m->tok_off[i]; k < m->tok_off[i + 1]; k++) {
            const int32_t v = m->toks[k];
            uint32_t *list = m->post + m->post_off[v];
            if (fill[v] == 0 || list[fill[v] - 1] != i)
                list[fill[v]++] = (uint32_t)i;
        }
    recur__free(fill);
    return RECUR_OK;
}

int recur_memory_new(const char *const *source, const char *const *target, size_t n,
                     recur_memory **out)
{
    if (!out || (n && (!source || !target)))
        return recur__error(RECUR_E_INVALID, "recur_memory_new: NULL argument");
    *out = NULL;
    if (n > UINT32_MAX)
        return recur__error(RECUR_E_INVALID, "recur_memory_new: %zu pairs, more than %u", n,
                            UINT32_MAX);
    for (size_t i = 0; i < n; i++)
        if (!source[i] || !target[i])
            return recur__error(RECUR_E_INVALID, "recur_memory_new: pair %zu has a NULL %s", i,
                                source[i] ? "target" : "source");
    recur_memory *m = recur__calloc(1, sizeof *m);
    if (!m)
        return recur__error(RECUR_E_NOMEM, "recur_memory_new: out of memory");
    m->n = n;
    if (!(m->src = recur__calloc(n ? n : 1, sizeof *m->src)) ||
        !(m->tgt = recur__calloc(n ? n : 1, sizeof *m->tgt)) ||
        !(m->src_hash = recur__calloc(n ? n : 1, sizeof *m->src_hash)))
        return nomem(m);
    for (size_t i = 0; i < n; i++) {
        if (!(m->src[i] = recur__strdup(source[i])) || !(m->tgt[i] = recur__strdup(target[i])))
            return nomem(m);
        m->src_hash[i] = fnv((const unsigned char *)source[i], strlen(source[i]));
    }
    int rc = intern_all(m);
    if (rc == RECUR_E_NOMEM || (rc == RECUR_OK && index_all(m)))
        return nomem(m);
    if (rc) {
        recur_memory_free(m);
        return rc;
    }
    *out = m;
    return RECUR_OK;
}

size_t recur_memory_size(const recur_memory *m) { return m ? m->n : 0; }

const char *recur_memory_source(const recur_memory *m, size_t i)
{
    return m && i < m->n ? m->src[i] : NULL;
}

const char *recur_memory_target(const recur_memory *m, size_t i)
{
    return m && i < m->n ? m->tgt[i] : NULL;
}

/* ---- similarity ------------------------------------------------------------------ */

/* 1 - edit distance / max(na, nb) of two id sequences (recur_edit_distance,
 * recur/ctc.h) into *out; RECUR_E_NOMEM. */
static int similarity_ids(const int32_t *a, size_t na, const int32_t *b, size_t nb, double *out)
{
    if (na == 0 && nb == 0) {
        *out = 1.0;
        return RECUR_OK;
    }
    const int d = recur_edit_distance(a, (int)na, b, (int)nb);
    if (d < 0)
        return d;
    *out = 1.0 - (double)d / (double)(na > nb ? na : nb);
    return RECUR_OK;
}

int recur_memory_similarity(const char *a, const char *b, double *out)
{
    if (!a || !b || !out)
        return recur__error(RECUR_E_INVALID, "recur_memory_similarity: NULL argument");
    /* a memory of the two sentences gives both their token ids */
    const char *src[2] = {a, b}, *tgt[2] = {"", ""};
    recur_memory *m = NULL;
    int rc = recur_memory_new(src, tgt, 2, &m);
    if (rc)
        return rc;
    rc = similarity_ids(m->toks, m->tok_off[1], m->toks + m->tok_off[1],
                        m->tok_off[2] - m->tok_off[1], out);
    recur_memory_free(m);
    return rc;
}

/* ---- matching -------------------------------------------------------------------- */

typedef struct cand {
    double rank;
    uint32_t index;
} cand;

static int cand_order(const void *x, const void *y)
{
    const cand *a = x, *b = y;
    if (a->rank != b->rank)
        return a->rank > b->rank ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index;
}

/* The query's distinct known tokens of at most RECUR_MEMORY_COMMON sources,
 * in the order of their first occurrence, into keep[0..*count); *postings
 * receives the sum of their source counts. */
static int distinct_tokens(const recur_memory *m, const int32_t *ids, size_t n, int32_t *keep,
                           size_t *count, size_t *postings)
{
    const size_t cap = table_size(n);
    int32_t *seen = recur__calloc(cap, sizeof *seen); /* id + 1, 0: empty */
    if (!seen)
        return RECUR_E_NOMEM;
    *count = *postings = 0;
    for (size_t k = 0; k < n; k++) {
        const int32_t v = ids[k];
        if (v < 0)
            continue;
        size_t j = (size_t)v * 0x9E3779B97F4A7C15ull & (cap - 1);
        while (seen[j] && seen[j] != v + 1)
            j = (j + 1) & (cap - 1);
        if (seen[j])
            continue;
        seen[j] = v + 1;
        const size_t df = m->post_off[v + 1] - m->post_off[v];
        if (df <= RECUR_MEMORY_COMMON) {
            keep[(*count)++] = v;
            *postings += df;
        }
    }
    recur__free(seen);
    return RECUR_OK;
}

int recur_memory_match(const recur_memory *m, const char *source, size_t *index,
                       double *similarity)
{
    if (!m || !source || !index || !similarity)
        return recur__error(RECUR_E_INVALID, "recur_memory_match: NULL argument");
    *index = RECUR_MEMORY_NONE;
    *similarity = 0.0;
    tokens t;
    int rc = tokenize(source, &t);
    if (rc)
        return rc;
    if (t.count > INT32_MAX) {
        tokens_free(&t);
        return recur__error(RECUR_E_INVALID, "recur_memory_match: the sentence holds more than "
                            "%d tokens", INT32_MAX);
    }
    /* Only the sources sharing a kept token are touched: each gets a slot of
     * c (found through an open-addressing table of source index -> slot + 1),
     * so a match costs the postings it reads, not the memory's size. */
    int32_t *ids = recur__calloc(t.count ? t.count : 1, sizeof *ids);
    int32_t *keep = recur__calloc(t.count ? t.count : 1, sizeof *keep);
    uint32_t *where = NULL;
    cand *c = NULL;
    size_t nkeep = 0, postings = 0, cap = 0;
    if (ids && keep) {
        for (size_t k = 0; k < t.count; k++)
            ids[k] = token_id(m, t.buf + t.start[k], t.start[k + 1] - t.start[k]);
        if ((rc = distinct_tokens(m, ids, t.count, keep, &nkeep, &postings)) == RECUR_OK) {
            cap = table_size(postings);
            where = recur__calloc(cap, sizeof *where);
            c = recur__calloc(postings ? postings : 1, sizeof *c);
        }
    }
    if (!ids || !keep || !where || !c) {
        rc = recur__error(RECUR_E_NOMEM, "recur_memory_match: out of memory");
        goto done;
    }
    const uint64_t h = fnv((const unsigned char *)source, strlen(source));
    size_t nc = 0;
    for (size_t k = 0; k < nkeep; k++) {
        const int32_t v = keep[k];
        const double w = 1.0 / log(1.0 + (double)(m->post_off[v + 1] - m->post_off[v]));
        for (size_t p = m->post_off[v]; p < m->post_off[v + 1]; p++) {
            const uint32_t i = m->post[p];
            if (m->src_hash[i] == h && strcmp(m->src[i], source) == 0)
                continue;
            size_t j = (size_t)i * 0x9E3779B97F4A7C15ull & (cap - 1);
            while (where[j] && c[where[j] - 1].index != i)
                j = (j + 1) & (cap - 1);
            if (!where[j]) {
                where[j] = (uint32_t)(nc + 1);
                c[nc].index = i;
                c[nc++].rank = 0.0;
            }
            c[where[j] - 1].rank += w;
        }
    }
    qsort(c, nc, sizeof *c, cand_order);
    if (nc > RECUR_MEMORY_CANDIDATES)
        nc = RECUR_MEMORY_CANDIDATES;
    for (size_t q = 0; q < nc; q++) {
        const size_t i = c[q].index;
        double s;
        if ((rc = similarity_ids(ids, t.count, m->toks + m->tok_off[i],
                                 m->tok_off[i + 1] - m->tok_off[i], &s))) {
            *index = RECUR_MEMORY_NONE;
            *similarity = 0.0;
            goto done;
        }
        if (*index == RECUR_MEMORY_NONE || s > *similarity) {
            *index = i;
            *similarity = s;
        }
    }
done:
    recur__free(c);
    recur__free(where);
    recur__free(keep);
    recur__free(ids);
    tokens_free(&t);
    return rc;
}

static size_t code_points(const char *s)
{
    size_t count = 0;
    for (size_t i = 0, n = strlen(s); i < n; count++)
        next_char(s, n, &i);
    return count;
}

int recur_memory_augment(const recur_memory *m, const char *source, double threshold,
                         size_t max_chars, char **out, double *similarity)
{
    if (!out)
        return recur__error(RECUR_E_INVALID, "recur_memory_augment: NULL argument");
    *out = NULL;
    if (similarity)
        *similarity = 0.0;
    if (isnan(threshold))
        return recur__error(RECUR_E_INVALID, "recur_memory_augment: the threshold is NaN");
    size_t i;
    double s;
    int rc = recur_memory_match(m, source, &i, &s);
    if (rc)
        return rc;
    const char *tgt = i != RECUR_MEMORY_NONE && s >= threshold ? m->tgt[i] : NULL;
    if (tgt && max_chars && code_points(source) + code_points(tgt) > max_chars)
        tgt = NULL;
    const size_t ns = strlen(source), nsep = strlen(RECUR_MEMORY_SEPARATOR);
    const size_t nt = tgt ? strlen(tgt) : 0;
    char *text = recur__malloc(ns + (tgt ? nsep + nt : 0) + 1);
    if (!text)
        return recur__error(RECUR_E_NOMEM, "recur_memory_augment: out of memory");
    memcpy(text, source, ns);
    if (tgt) {
        memcpy(text + ns, RECUR_MEMORY_SEPARATOR, nsep);
        memcpy(text + ns + nsep, tgt, nt);
        if (similarity)
            *similarity = s;
    }
    text[ns + (tgt ? nsep + nt : 0)] = '\0';
    *out = text;
    return RECUR_OK;
}

/* ---- JSON ------------------------------------------------------------------------ */

int recur_memory_to_json(const recur_memory *m, char **json)
{
    if (!m || !json)
        return recur__error(RECUR_E_INVALID, "recur_memory_to_json: NULL argument");
    *json = NULL;
    /* JSON strings are UTF-8: name the first pair that is not */
    for (size_t i = 0; i < m->n; i++)
        for (int side = 0; side < 2; side++) {
            const char *text = side ? m->tgt[i] : m->src[i];
            size_t count;
            if (recur_utf8_decode(text, strlen(text), NULL, &count) != RECUR_OK)
                return recur__error(RECUR_E_INVALID, "recur_memory_to_json: the %s of pair %zu "
                                    "is not valid UTF-8", side ? "target" : "source", i);
        }
    json_t *root = json_object(), *src = json_array(), *tgt = json_array();
    int bad = !root || !src || !tgt;
    for (size_t i = 0; i < m->n && !bad; i++)
        bad = json_array_append_new(src, json_string(m->src[i])) ||
              json_array_append_new(tgt, json_string(m->tgt[i]));
    bad = bad || json_object_set(root, "sources", src) || json_object_set(root, "targets", tgt);
    char *text = bad ? NULL : json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(src);
    json_decref(tgt);
    json_decref(root);
    if (!text)
        return recur__error(RECUR_E_NOMEM, "recur_memory_to_json: out of memory");
    *json = recur__strdup(text);
    free(text);
    if (!*json)
        return recur__error(RECUR_E_NOMEM, "recur_memory_to_json: out of memory");
    return RECUR_OK;
}

int recur_memory_from_json(const char *json, size_t len, recur_memory **out)
{
    if (!json || !out)
        return recur__error(RECUR_E_INVALID, "recur_memory_from_json: NULL argument");
    *out = NULL;
    json_error_t error;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &error);
    if (!root && json_error_code(&error) == json_error_out_of_memory)
        return recur__error(RECUR_E_NOMEM, "translation memory JSON: out of memory");
    if (!root)
        return recur__error(RECUR_E_FORMAT, "translation memory JSON: %s (line %d, column %d)",
                            error.text, error.line, error.column);
    int rc = RECUR_OK;
    const char **src = NULL, **tgt = NULL;
    const json_t *s = json_object_get(root, "sources"), *t = json_object_get(root, "targets");
    const char *key;
    json_t *value;
    if (!json_is_object(root)) {
        rc = recur__error(RECUR_E_FORMAT, "translation memory JSON is not an object "
                          "{\"sources\": [...], \"targets\": [...]}");
        goto done;
    }
    json_object_foreach(root, key, value)
    {
        if (strcmp(key, "sources") != 0 && strcmp(key, "targets") != 0) {
            rc = recur__error(RECUR_E_FORMAT, "translation memory JSON: unexpected key \"%s\"",
                              key);
            goto done;
        }
    }
    if (!json_is_array(s) || !json_is_array(t)) {
        const char *which = !json_is_array(s) ? "sources" : "targets";
        rc = recur__error(RECUR_E_FORMAT, "translation memory JSON: \"%s\" is %s", which,
                          json_object_get(root, which) ? "not an array" : "missing");
        goto done;
    }
    const size_t n = json_array_size(s);
    if (json_array_size(t) != n) {
        rc = recur__error(RECUR_E_FORMAT, "translation memory JSON: %zu sources but %zu targets",
                          n, json_array_size(t));
        goto done;
    }
    src = recur__calloc(n ? n : 1, sizeof *src);
    tgt = recur__calloc(n ? n : 1, sizeof *tgt);
    if (!src || !tgt) {
        rc = recur__error(RECUR_E_NOMEM, "translation memory JSON: out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        src[i] = json_string_value(json_array_get(s, i));
        tgt[i] = json_string_value(json_array_get(t, i));
        if (!src[i] || !tgt[i]) {
            rc = recur__error(RECUR_E_FORMAT, "translation memory JSON: %s %zu is not a string",
                              src[i] ? "target" : "source", i);
            goto done;
        }
    }
    rc = recur_memory_new(src, tgt, n, out);
done:
    recur__free(src);
    recur__free(tgt);
    json_decref(root);
    return rc;
}
