/* vocab.c - vocabularies of a character language model: code points
 * (RECUR_VOCAB_CHARS) or the 256 byte values (RECUR_VOCAB_BYTES), the
 * mapping text <-> int32 ids, and the JSON array of token strings kept in
 * checkpoints (docs/data.md).
 *
 * Lookup of a code point is a direct table below U+0100 (all of ASCII and
 * Latin-1, so the common case in encoding and sampling costs one load) and
 * a binary search over the sorted code points above. A byte vocabulary maps
 * id b <-> byte b; in JSON byte b is written as the character U+00bb.
 * Leaves out: multi-character tokens (no BPE or words). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "internal.h"
#include "recur/data.h"

#define UNICODE_LIMIT 0x110000u /* one past U+10FFFF */
#define DIRECT_TABLE 256

struct recur_vocab {
    recur_vocab_kind kind;
    int32_t size;                       /* V */
    uint32_t *codepoints;               /* [V] id -> code point (byte value) */
    char (*tokens)[RECUR_UTF8_MAX + 1]; /* [V] NUL-terminated token text */
    uint8_t *token_len;                 /* [V] bytes of tokens[id] */
    uint32_t *sorted;                   /* [V] code points ascending */
    int32_t *sorted_ids;                /* [V] id of sorted[k] */
    int32_t direct[DIRECT_TABLE];       /* code point < 256 -> id or -1 */
};

typedef struct cp_entry {
    uint32_t codepoint;
    int32_t id;
} cp_entry;

static int compare_entries(const void *a, const void *b)
{
    const cp_entry *x = a, *y = b;
    if (x->codepoint != y->codepoint)
        return x->codepoint < y->codepoint ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static int is_scalar_value(uint32_t cp)
{
    return cp < UNICODE_LIMIT && !(cp >= 0xd800 && cp <= 0xdfff);
}

/* Names a character for messages: "'a' (U+0061)", or "U+000A" for one that
 * does not print (C0/C1 controls, DEL, and anything that is not a scalar
 * value). */
static void describe_char(uint32_t cp, char out[24])
{
    int printable = is_scalar_value(cp) && cp >= 0x20 && cp != 0x7f && !(cp >= 0x80 && cp < 0xa0);
    if (!printable) {
        snprintf(out, 24, "U+%04X", (unsigned)cp);
        return;
    }
    char utf8[RECUR_UTF8_MAX];
    int n = recur_utf8_encode(cp, utf8);
    snprintf(out, 24, "'%.*s' (U+%04X)", n, utf8, (unsigned)cp);
}

const char *recur_vocab_kind_name(recur_vocab_kind kind)
{
    return kind == RECUR_VOCAB_BYTES ? "byte" : "char";
}

int recur_vocab_kind_parse(const char *name, recur_vocab_kind *out)
{
    if (!name || !out)
        return recur__error(RECUR_E_INVALID, "recur_vocab_kind_parse: NULL argument");
    if (strcmp(name, "char") == 0)
        *out = RECUR_VOCAB_CHARS;
    else if (strcmp(name, "byte") == 0)
        *out = RECUR_VOCAB_BYTES;
    else
        return recur__error(RECUR_E_INVALID,
                            "unknown vocabulary kind \"%s\" (expected \"char\" or \"byte\")", name);
    return RECUR_OK;
}

void recur_vocab_free(recur_vocab *vocab)
{
    if (!vocab)
        return;
    recur__free(vocab->codepoints);
    recur__free(vocab->tokens);
    recur__free(vocab->token_len);
    recur__free(vocab->sorted);
    recur__free(vocab->sorted_ids);
    recur__free(vocab);
}

/* Makes a vocabulary whose id i is codepoints[i]. Entries that are not
 * scalar values or repeat an earlier entry fail with `bad_status` and a
 * message naming "<entry_name> <index>". */
static int vocab_assemble(recur_vocab_kind kind, const uint32_t *codepoints, size_t count,
                          int bad_status, const char *entry_name, recur_vocab **out)
{
    char name[24];
    for (size_t i = 0; i < count; i++)
        if (!is_scalar_value(codepoints[i])) {
            describe_char(codepoints[i], name);
            return recur__error(
                bad_status,
                "%s %zu: %s is not a Unicode scalar value (surrogate or above U+10FFFF)",
                entry_name, i, name);
        }
    cp_entry *entries = recur__calloc(count, sizeof *entries);
    recur_vocab *v = recur__calloc(1, sizeof *v);
    if (!entries || !v) {
        recur__free(entries);
        recur__free(v);
        return recur__error(RECUR_E_NOMEM, "cannot allocate a vocabulary of %zu tokens", count);
    }
    for (size_t i = 0; i < count; i++)
        entries[i] = (cp_entry){codepoints[i], (int32_t)i};
    qsort(entries, count, sizeof *entries, compare_entries);
    for (size_t k = 1; k < count; k++)
        if (entries[k].codepoint == entries[k - 1].codepoint) {
            /* Sorted by (code point, id): entry k repeats entry k - 1. */
            int later = (int)entries[k].id, earlier = (int)entries[k - 1].id;
            describe_char(entries[k].codepoint, name);
            recur__free(entries);
            recur__free(v);
            return recur__error(bad_status, "%s %d duplicates %s %d (%s)", entry_name, later,
                                entry_name, earlier, name);
        }

    v->kind = kind;
    v->size = (int32_t)count;
    v->codepoints = recur__calloc(count, sizeof *v->codepoints);
    v->tokens = recur__calloc(count, sizeof *v->tokens);
    v->token_len = recur__calloc(count, sizeof *v->token_len);
    v->sorted = recur__calloc(count, sizeof *v->sorted);
    v->sorted_ids = recur__calloc(count, sizeof *v->sorted_ids);
    if (!v->codepoints || !v->tokens || !v->token_len || !v->sorted || !v->sorted_ids) {
        recur__free(entries);
        recur_vocab_free(v);
        return recur__error(RECUR_E_NOMEM, "cannot allocate a vocabulary of %zu tokens", count);
    }
    for (int c = 0; c < DIRECT_TABLE; c++)
        v->direct[c] = -1;
    for (size_t i = 0; i < count; i++) {
        uint32_t cp = codepoints[i];
        v->codepoints[i] = cp;
        if (kind == RECUR_VOCAB_BYTES) {
            v->tokens[i][0] = (char)(unsigned char)cp;
            v->token_len[i] = 1;
        } else {
            v->token_len[i] = (uint8_t)recur_utf8_encode(cp, v->tokens[i]);
        }
    }
    for (size_t k = 0; k < count; k++) {
        v->sorted[k] = entries[k].codepoint;
        v->sorted_ids[k] = entries[k].id;
        if (entries[k].codepoint < DIRECT_TABLE)
            v->direct[entries[k].codepoint] = entries[k].id;
    }
    recur__free(entries);
    *out = v;
    return RECUR_OK;
}

static int byte_vocab(recur_vocab **out)
{
    uint32_t bytes[256];
    for (uint32_t b = 0; b < 256; b++)
        bytes[b] = b;
    return vocab_assemble(RECUR_VOCAB_BYTES, bytes, 256, RECUR_E_INVALID, "byte", out);
}

int recur_vocab_build(const char *text, size_t len, recur_vocab_kind kind, recur_vocab **out)
{
    if (!out || (!text && len))
        return recur__error(RECUR_E_INVALID, "recur_vocab_build: NULL argument");
    if (kind == RECUR_VOCAB_BYTES)
        return byte_vocab(out);
    if (kind != RECUR_VOCAB_CHARS)
        return recur__error(RECUR_E_INVALID, "recur_vocab_build: unknown vocabulary kind %d",
                            (int)kind);
    if (len == 0)
        return recur__error(RECUR_E_INVALID, "cannot build a character vocabulary from empty text");

    /* One bit per possible code point (136 KiB), then read out in order:
     * the ids are the ranks of the distinct code points. */
    uint64_t *seen = recur__calloc(UNICODE_LIMIT / 64, sizeof *seen);
    if (!seen)
        return recur__error(RECUR_E_NOMEM, "recur_vocab_build: cannot allocate the code point set");
    size_t distinct = 0;
    for (size_t pos = 0; pos < len;) {
        uint32_t cp;
        int rc = recur_utf8_next(text, len, &pos, &cp);
        if (rc) {
            recur__free(seen);
            return rc;
        }
        uint64_t bit = (uint64_t)1 << (cp % 64);
        if (!(seen[cp / 64] & bit)) {
            seen[cp / 64] |= bit;
            distinct++;
        }
    }
    uint32_t *codepoints = recur__calloc(distinct, sizeof *codepoints);
    if (!codepoints) {
        recur__free(seen);
        return recur__error(RECUR_E_NOMEM, "recur_vocab_build: cannot allocate %zu code points",
                            distinct);
    }
    size_t n = 0;
    for (uint32_t cp = 0; cp < UNICODE_LIMIT; cp++)
        if (seen[cp / 64] & ((uint64_t)1 << (cp % 64)))
            codepoints[n++] = cp;
    recur__free(seen);
    int rc =
        vocab_assemble(RECUR_VOCAB_CHARS, codepoints, distinct, RECUR_E_INVALID, "code point", out);
    recur__free(codepoints);
    return rc;
}

int recur_vocab_from_codepoints(const uint32_t *codepoints, size_t count, recur_vocab **out)
{
    if (!codepoints || !out)
        return recur__error(RECUR_E_INVALID, "recur_vocab_from_codepoints: NULL argument");
    if (count == 0)
        return recur__error(RECUR_E_INVALID, "a vocabulary needs at least one code point");
    if (count > UNICODE_LIMIT)
        return recur__error(RECUR_E_INVALID,
                            "%zu code points: more than Unicode has, so some repeat", count);
    return vocab_assemble(RECUR_VOCAB_CHARS, codepoints, count, RECUR_E_INVALID, "code point", out);
}

recur_vocab_kind recur_vocab_get_kind(const recur_vocab *vocab)
{
    return vocab->kind;
}

int32_t recur_vocab_size(const recur_vocab *vocab)
{
    return vocab->size;
}

int recur_vocab_equal(const recur_vocab *a, const recur_vocab *b)
{
    if (!a || !b || a->kind != b->kind || a->size != b->size)
        return 0;
    return memcmp(a->codepoints, b->codepoints, (size_t)a->size * sizeof *a->codepoints) == 0;
}

const char *recur_vocab_token(const recur_vocab *vocab, int32_t id, size_t *len)
{
    if (id < 0 || id >= vocab->size)
        return NULL;
    if (len)
        *len = vocab->token_len[id];
    return vocab->tokens[id];
}

uint32_t recur_vocab_codepoint(const recur_vocab *vocab, int32_t id)
{
    if (id < 0 || id >= vocab->size)
        return UINT32_MAX;
    return vocab->codepoints[id];
}

int32_t recur_vocab_lookup(const recur_vocab *vocab, uint32_t codepoint)
{
    if (codepoint < DIRECT_TABLE)
        return vocab->direct[codepoint];
    if (vocab->kind == RECUR_VOCAB_BYTES)
        return -1;
    size_t lo = 0, hi = (size_t)vocab->size;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (vocab->sorted[mid] < codepoint)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < (size_t)vocab->size && vocab->sorted[lo] == codepoint ? vocab->sorted_ids[lo] : -1;
}

int recur_vocab_encode(const recur_vocab *vocab, const char *text, size_t len, int32_t **ids,
                       size_t *count)
{
    if (!vocab || (!text && len) || !ids || !count)
        return recur__error(RECUR_E_INVALID, "recur_vocab_encode: NULL argument");
    size_t n = len;
    if (vocab->kind == RECUR_VOCAB_CHARS) {
        int rc = recur_utf8_decode(text, len, NULL, &n);
        if (rc)
            return rc;
    }
    int32_t *out = recur__calloc(n ? n : 1, sizeof *out);
    if (!out)
        return recur__error(RECUR_E_NOMEM, "recur_vocab_encode: cannot allocate %zu token ids", n);
    if (vocab->kind == RECUR_VOCAB_BYTES) {
        for (size_t i = 0; i < n; i++)
            out[i] = (unsigned char)text[i];
    } else {
        size_t pos = 0;
        for (size_t i = 0; i < n; i++) {
            size_t at = pos;
            uint32_t cp;
            recur_utf8_next(text, len, &pos, &cp); /* validated above */
            out[i] = recur_vocab_lookup(vocab, cp);
            if (out[i] < 0) {
                char name[24];
                describe_char(cp, name);
                recur__free(out);
                return recur__error(RECUR_E_NOT_FOUND,
                                    "character %s at character %zu (byte %zu) is not in the "
                                    "vocabulary of %d characters",
                                    name, i, at, (int)vocab->size);
            }
        }
    }
    *ids = out;
    *count = n;
    return RECUR_OK;
}

int recur_vocab_decode(const recur_vocab *vocab, const int32_t *ids, size_t count, char **text,
                       size_t *len)
{
    if (!vocab || (!ids && count) || !text || !len)
        return recur__error(RECUR_E_INVALID, "recur_vocab_decode: NULL argument");
    size_t bytes = 0;
    for (size_t i = 0; i < count; i++) {
        if (ids[i] < 0 || ids[i] >= vocab->size)
            return recur__error(RECUR_E_INVALID,
                                "token id %d at position %zu is outside the vocabulary [0, %d)",
                                (int)ids[i], i, (int)vocab->size);
        if (!recur__add_size(bytes, vocab->token_len[ids[i]], &bytes))
            return recur__error(RECUR_E_NOMEM, "recur_vocab_decode: text size overflows");
    }
    size_t total;
    char *out = recur__add_size(bytes, 1, &total) ? recur__malloc(total) : NULL;
    if (!out)
        return recur__error(RECUR_E_NOMEM, "recur_vocab_decode: cannot allocate %zu bytes", bytes);
    size_t pos = 0;
    for (size_t i = 0; i < count; i++) {
        memcpy(out + pos, vocab->tokens[ids[i]], vocab->token_len[ids[i]]);
        pos += vocab->token_len[ids[i]];
    }
    out[pos] = '\0';
    *text = out;
    *len = bytes;
    return RECUR_OK;
}

int recur_vocab_to_json(const recur_vocab *vocab, char **json)
{
    if (!vocab || !json)
        return recur__error(RECUR_E_INVALID, "recur_vocab_to_json: NULL argument");
    json_t *array = json_array();
    if (!array)
        return recur__error(RECUR_E_NOMEM, "recur_vocab_to_json: cannot allocate a JSON array");
    for (int32_t id = 0; id < vocab->size; id++) {
        char latin1[RECUR_UTF8_MAX];
        const char *s = vocab->tokens[id];
        size_t n = vocab->token_len[id];
        if (vocab->kind == RECUR_VOCAB_BYTES) {
            n = (size_t)recur_utf8_encode(vocab->codepoints[id], latin1);
            s = latin1;
        }
        if (json_array_append_new(array, json_stringn(s, n)) != 0) {
            json_decref(array);
            return recur__error(RECUR_E_NOMEM, "recur_vocab_to_json: cannot add token %d", (int)id);
        }
    }
    size_t need = json_dumpb(array, NULL, 0, JSON_COMPACT);
    size_t total;
    char *out = need && recur__add_size(need, 1, &total) ? recur__malloc(total) : NULL;
    if (!out || json_dumpb(array, out, need, JSON_COMPACT) != need) {
        recur__free(out);
        json_decref(array);
        return recur__error(RECUR_E_NOMEM, "recur_vocab_to_json: cannot write %zu bytes of JSON",
                            need);
    }
    out[need] = '\0';
    json_decref(array);
    *json = out;
    return RECUR_OK;
}

static const char *json_type_name(const json_t *value)
{
    switch (json_typeof(value)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
        return "true";
    case JSON_FALSE:
        return "false";
    default:
        return "null";
    }
}

/* Reads entry i of a parsed vocab array as exactly one code point. */
static int json_entry_codepoint(const json_t *entry, size_t i, uint32_t *cp)
{
    if (!json_is_string(entry))
        return recur__error(RECUR_E_FORMAT, "vocab entry %zu is %s, not a string", i,
                            json_type_name(entry));
    const char *s = json_string_value(entry);
    size_t n = json_string_length(entry);
    if (n == 0)
        return recur__error(RECUR_E_FORMAT, "vocab entry %zu is an empty string, not one character",
                            i);
    size_t pos = 0;
    if (recur_utf8_next(s, n, &pos, cp)) {
        char reason[256];
        snprintf(reason, sizeof reason, "%s", recur_last_error());
        return recur__error(RECUR_E_FORMAT, "vocab entry %zu: %s", i, reason);
    }
    if (pos != n) {
        size_t chars = 0;
        if (recur_utf8_decode(s, n, NULL, &chars))
            chars = 0;
        return recur__error(RECUR_E_FORMAT, "vocab entry %zu \"%.*s\" is %zu characters, not one",
                            i, n > 32 ? 32 : (int)n, s, chars);
    }
    return RECUR_OK;
}

int recur_vocab_from_json(const char *json, size_t len, recur_vocab_kind kind, recur_vocab **out)
{
    if (!json || !out)
        return recur__error(RECUR_E_INVALID, "recur_vocab_from_json: NULL argument");
    if (kind != RECUR_VOCAB_CHARS && kind != RECUR_VOCAB_BYTES)
        return recur__error(RECUR_E_INVALID, "recur_vocab_from_json: unknown vocabulary kind %d",
                            (int)kind);
    json_error_t error;
    json_t *root = json_loadb(json, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
    if (!root)
        return recur__error(RECUR_E_FORMAT, "vocab JSON: %s (line %d, column %d)", error.text,
                            error.line, error.column);
    int rc = RECUR_OK;
    uint32_t *codepoints = NULL;
    size_t count = json_is_array(root) ? json_array_size(root) : 0;
    if (!json_is_array(root)) {
        rc = recur__error(RECUR_E_FORMAT, "vocab JSON is %s, not an array of strings",
                          json_type_name(root));
        goto done;
    }
    if (count == 0) {
        rc = recur__error(RECUR_E_FORMAT, "vocab JSON is an empty array");
        goto done;
    }
    if (kind == RECUR_VOCAB_BYTES && count != 256) {
        rc = recur__error(RECUR_E_FORMAT, "byte vocab JSON has %zu entries, expected 256", count);
        goto done;
    }
    codepoints = recur__calloc(count, sizeof *codepoints);
    if (!codepoints) {
        rc = recur__error(RECUR_E_NOMEM, "recur_vocab_from_json: cannot allocate %zu code points",
                          count);
        goto done;
    }
    for (size_t i = 0; i < count; i++) {
        rc = json_entry_codepoint(json_array_get(root, i), i, &codepoints[i]);
        if (rc)
            goto done;
        if (kind == RECUR_VOCAB_BYTES && codepoints[i] != i) {
            char name[24];
            describe_char(codepoints[i], name);
            rc = recur__error(RECUR_E_FORMAT, "byte vocab entry %zu is %s, expected U+%04X", i,
                              name, (unsigned)i);
            goto done;
        }
    }
    if (kind == RECUR_VOCAB_BYTES)
        rc = byte_vocab(out);
    else
        rc = vocab_assemble(RECUR_VOCAB_CHARS, codepoints, count, RECUR_E_FORMAT, "vocab entry",
                            out);
done:
    recur__free(codepoints);
    json_decref(root);
    return rc;
}
