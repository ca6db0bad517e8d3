/* bpe.c - byte-level byte-pair encoding (Sennrich et al. 2016, over bytes
 * as in GPT-2): learning merges from texts, encoding, decoding, and the JSON
 * form kept in checkpoints (docs/translate-tokens.md).
 *
 * Ids: 0 <pad>, 1 <s>, 2 </s>, 3 + b for the byte b, 259 + i for merge i.
 * Texts are first cut into pieces (piece_end); merges never cross a piece.
 *
 * Learning counts the distinct pieces once ("words", with frequencies),
 * then keeps for every adjacent pair of tokens its count over all words
 * (weighted by word frequency) and the list of words where it occurs.
 * Merging a pair rewrites only the words on its list and updates only the
 * counts of the pairs next to each merged occurrence. The best pair comes from a max-heap with lazy deletion:
 * after each merge every pair whose count changed gets a fresh entry, and an
 * entry whose count differs from its pair's current count is dropped when it
 * surfaces. This is exact because a pair's count never grows after the merge
 * that created the newer of its two tokens (a merge replaces a b by c, so it
 * never makes two older tokens adjacent): a stale entry always overstates.
 *
 * Encoding applies the merges within each piece by rank (the earliest learned
 * first), every occurrence left to right (a min-heap of (rank, position) over a linked list
 * of symbols, so a long piece costs O(n log n)). This reproduces learning's
 * segmentation of every training piece. Encoded pieces are cached (piece
 * bytes -> ids) in the recur_bpe, behind a mutex, so that encoding a corpus
 * costs about one hash lookup per piece. BPE-dropout (training) skips each
 * merge with probability p as it surfaces from the heap, and bypasses the
 * cache.
 *
 * Leaves out: pre-tokenization by Unicode category (every byte
 * >= 0x80 counts as a letter), merges across pieces. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <threads.h>

#include <jansson.h>

#include "internal.h"
#include "recur/bpe.h"

#define BPE_MAX_VOCAB (1 << 20)
#define BPE_MAX_TOKEN_BYTES ((size_t)1 << 30) /* all tokens' bytes together */
#define CACHE_MAX_PIECE 256                   /* longer pieces are not cached */
#define CACHE_MAX_ENTRIES (1u << 18)          /* the cache starts over when full */
#define EMPTY_KEY UINT64_MAX

static const char *const special_names[RECUR_BPE_FIRST_BYTE] = {"<pad>", "<s>", "</s>"};

/* ---- small helpers ------------------------------------------------------------------ */

/* A buffer of at least `need` (>= 1) elements of `size` bytes holding the
 * first *cap elements of buf; buf is freed when a new one is made. NULL on
 * failure (buf untouched). */
static void *grow_array(void *buf, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return buf;
    size_t new_cap = *cap ? *cap : 16;
    while (new_cap < need) {
        if (new_cap > SIZE_MAX / 2)
            return NULL;
        new_cap *= 2;
    }
    size_t bytes;
    if (!recur__mul_size(new_cap, size, &bytes))
        return NULL;
    void *p = recur__malloc(bytes);
    if (!p)
        return NULL;
    if (*cap)
        memcpy(p, buf, *cap * size);
    recur__free(buf);
    *cap = new_cap;
    return p;
}

/* The murmur3 finalizer: spreads every input bit over the whole word. */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* FNV-1a over the bytes, then mixed so that the low bits index well. */
static uint64_t hash_bytes(const unsigned char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ull;
    }
    return mix64(h);
}

static uint64_t pair_key(int32_t first, int32_t second)
{
    return (uint64_t)(uint32_t)first << 32 | (uint32_t)second;
}

/* ---- pair map: (first << 32 | second) -> int32, open addressing ------------------- */

typedef struct pair_map {
    uint64_t *keys;  /* [capacity], EMPTY_KEY where free */
    int32_t *values; /* [capacity] */
    size_t capacity; /* a power of two, > 2 * count */
    size_t count;
} pair_map;

static void pair_map_free(pair_map *m)
{
    recur__free(m->keys);
    recur__free(m->values);
    memset(m, 0, sizeof *m);
}

static int pair_map_resize(pair_map *m, size_t capacity)
{
    uint64_t *keys = recur__calloc(capacity, sizeof *keys);
    int32_t *values = recur__calloc(capacity, sizeof *values);
    if (!keys || !values) {
        recur__free(keys);
        recur__free(values);
        return RECUR_E_NOMEM;
    }
    for (size_t i = 0; i < capacity; i++)
        keys[i] = EMPTY_KEY;
    for (size_t i = 0; i < m->capacity; i++) {
        if (m->keys[i] == EMPTY_KEY)
            continue;
        size_t at = (size_t)mix64(m->keys[i]) & (capacity - 1);
        while (keys[at] != EMPTY_KEY)
            at = (at + 1) & (capacity - 1);
        keys[at] = m->keys[i];
        values[at] = m->values[i];
    }
    recur__free(m->keys);
    recur__free(m->values);
    m->keys = keys;
    m->values = values;
    m->capacity = capacity;
    return RECUR_OK;
}

/* The value stored for key, or NULL. */
static int32_t *pair_map_find(const pair_map *m, uint64_t key)
{
    if (m->capacity == 0)
        return NULL;
    size_t at = (size_t)mix64(key) & (m->capacity - 1);
    while (m->keys[at] != EMPTY_KEY) {
        if (m->keys[at] == key)
            return &m->values[at];
        at = (at + 1) & (m->capacity - 1);
    }
    return NULL;
}

/* The slot of key, inserted with value `fresh` when absent (*added = 1).
 * NULL when out of memory. The pointer is valid until the next insertion. */
static int32_t *pair_map_add(pair_map *m, uint64_t key, int32_t fresh, int *added)
{
    *added = 0;
    if (2 * (m->count + 1) >= m->capacity) {
        if (m->capacity > SIZE_MAX / 4 ||
            pair_map_resize(m, m->capacity ? 2 * m->capacity : 1024))
            return NULL;
    }
    size_t at = (size_t)mix64(key) & (m->capacity - 1);
    while (m->keys[at] != EMPTY_KEY) {
        if (m->keys[at] == key)
            return &m->values[at];
        at = (at + 1) & (m->capacity - 1);
    }
    m->keys[at] = key;
    m->values[at] = fresh;
    m->count++;
    *added = 1;
    return &m->values[at];
}

/* ---- pieces ------------------------------------------------------------------------ */

enum { CLASS_SPACE, CLASS_WORD, CLASS_OTHER };

/* Letters and digits (ASCII), and every byte of a multi-byte UTF-8
 * character, are one class; the space byte is another; the rest (ASCII
 * punctuation, tabs, newlines, other controls) the third. */
static int byte_class(unsigned char c)
{
    if (c == ' ')
        return CLASS_SPACE;
    if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c >= 0x80)
        return CLASS_WORD;
    return CLASS_OTHER;
}

/* End of the piece that starts at `at` < n: a run of one class with at most
 * one space before it, or a run of spaces (all of them at the end of the
 * text; all but the last, which joins the next piece, elsewhere). */
static size_t piece_end(const unsigned char *s, size_t n, size_t at)
{
    size_t i = at;
    if (s[i] == ' ') {
        size_t j = i + 1;
        while (j < n && s[j] == ' ')
            j++;
        if (j == n)
            return n;
        if (j - i > 1)
            return j - 1;
        i = j;
    }
    const int cls = byte_class(s[i]);
    size_t j = i + 1;
    while (j < n && byte_class(s[j]) == cls)
        j++;
    return j;
}

/* ---- the vocabulary object ---------------------------------------------------------- */

/* Encoded pieces: piece bytes -> ids, an open-addressing table over entries
 * whose keys and ids live in two arenas. */
typedef struct cache_entry {
    uint64_t hash;
    size_t key_at;   /* into keys */
    size_t ids_at;   /* into ids */
    uint32_t key_len;
    uint32_t ids_len;
} cache_entry;

typedef struct piece_cache {
    int32_t *slots; /* [slot_cap] entry index + 1, 0 where free */
    size_t slot_cap;
    cache_entry *entries;
    size_t entry_n, entry_cap;
    unsigned char *keys;
    size_t keys_n, keys_cap;
    int32_t *ids;
    size_t ids_n, ids_cap;
} piece_cache;

struct recur_bpe {
    int32_t size;         /* V = RECUR_BPE_BASE + M */
    int32_t (*merges)[2]; /* [M] merge i joins merges[i][0] and merges[i][1] into 259 + i */
    char *bytes;          /* every token's bytes, each followed by a NUL */
    size_t *offsets;      /* [V + 1] token id is bytes[offsets[id] .. offsets[id + 1] - 1) */
    pair_map ranks;       /* (first << 32 | second) -> merge index */
    mtx_t lock;           /* guards cache */
    piece_cache cache;
};

static void cache_free(piece_cache *c)
{
    recur__free(c->slots);
    recur__free(c->entries);
    recur__free(c->keys);
    recur__free(c->ids);
    memset(c, 0, sizeof *c);
}

void recur_bpe_free(recur_bpe *bpe)
{
    if (!bpe)
        return;
    mtx_destroy(&bpe->lock);
    cache_free(&bpe->cache);
    pair_map_free(&bpe->ranks);
    recur__free(bpe->merges);
    recur__free(bpe->bytes);
    recur__free(bpe->offsets);
    recur__free(bpe);
}

/* A vocabulary from merges[0..M). Each merge must join two defined non-special
 * ids and no pair may repeat (learning never breaks this; JSON may):
 * RECUR_E_FORMAT with `who` and the merge's index in the message. */
static int bpe_create(const int32_t (*merges)[2], size_t M, const char *who, recur_bpe **out)
{
    *out = NULL;
    if (M > (size_t)(BPE_MAX_VOCAB - RECUR_BPE_BASE))
        return recur__error(RECUR_E_FORMAT, "%s: %zu merges, more than the %d a vocabulary of "
                            "%d tokens allows", who, M, BPE_MAX_VOCAB - RECUR_BPE_BASE,
                            BPE_MAX_VOCAB);
    const size_t V = RECUR_BPE_BASE + M;
    for (size_t i = 0; i < M; i++)
        for (int k = 0; k < 2; k++) {
            const int32_t id = merges[i][k];
            if (id < RECUR_BPE_FIRST_BYTE)
                return recur__error(RECUR_E_FORMAT, "%s: merge %zu joins id %d, which is %s", who,
                                    i, (int)id, id < 0 ? "negative" : "a special token");
            if ((size_t)id >= RECUR_BPE_BASE + i)
                return recur__error(RECUR_E_FORMAT, "%s: merge %zu joins id %d, not yet defined "
                                    "(merge %zu may join ids 3..%zu)", who, i, (int)id, i,
                                    RECUR_BPE_BASE + i - 1);
        }
    recur_bpe *bpe = recur__calloc(1, sizeof *bpe);
    if (!bpe)
        return recur__error(RECUR_E_NOMEM, "%s: cannot allocate the vocabulary", who);
    if (mtx_init(&bpe->lock, mtx_plain) != thrd_success) {
        recur__free(bpe);
        return recur__error(RECUR_E_NOMEM, "%s: cannot create a mutex", who);
    }
    bpe->size = (int32_t)V;
    int rc = RECUR_OK;
    bpe->offsets = recur__calloc(V + 1, sizeof *bpe->offsets);
    bpe->merges = recur__calloc(M ? M : 1, sizeof *bpe->merges);
    if (!bpe->offsets || !bpe->merges) {
        rc = recur__error(RECUR_E_NOMEM, "%s: cannot allocate %zu tokens", who, V);
        goto fail;
    }
    if (M)
        memcpy(bpe->merges, merges, M * sizeof *merges);
    /* Token lengths first (merge chains can double a length each time, so
     * the total is checked), then the bytes. */
    size_t total = 0;
    for (size_t id = 0; id < V; id++) {
        size_t len;
        if (id < RECUR_BPE_FIRST_BYTE)
            len = strlen(special_names[id]);
        else if (id < RECUR_BPE_BASE)
            len = 1;
        else {
            const int32_t *m = merges[id - RECUR_BPE_BASE];
            len = (bpe->offsets[m[0] + 1] - bpe->offsets[m[0]] - 1) +
                  (bpe->offsets[m[1] + 1] - bpe->offsets[m[1]] - 1);
        }
        if (len + 1 > BPE_MAX_TOKEN_BYTES - total) {
            rc = recur__error(RECUR_E_FORMAT, "%s: the tokens would take more than %zu bytes "
                              "(merge %zu makes a token of %zu bytes)", who, BPE_MAX_TOKEN_BYTES,
                              id - RECUR_BPE_BASE, len);
            goto fail;
        }
        total += len + 1;
        bpe->offsets[id + 1] = total;
    }
    bpe->bytes = recur__malloc(total);
    if (!bpe->bytes) {
        rc = recur__error(RECUR_E_NOMEM, "%s: cannot allocate %zu bytes of tokens", who, total);
        goto fail;
    }
    for (size_t id = 0; id < V; id++) {
        char *dst = bpe->bytes + bpe->offsets[id];
        if (id < RECUR_BPE_FIRST_BYTE)
            memcpy(dst, special_names[id], strlen(special_names[id]));
        else if (id < RECUR_BPE_BASE)
            dst[0] = (char)(id - RECUR_BPE_FIRST_BYTE);
        else {
            const int32_t *m = merges[id - RECUR_BPE_BASE];
            const size_t len0 = bpe->offsets[m[0] + 1] - bpe->offsets[m[0]] - 1;
            const size_t len1 = bpe->offsets[m[1] + 1] - bpe->offsets[m[1]] - 1;
            memcpy(dst, bpe->bytes + bpe->offsets[m[0]], len0);
            memcpy(dst + len0, bpe->bytes + bpe->offsets[m[1]], len1);
        }
        bpe->bytes[bpe->offsets[id + 1] - 1] = '\0';
    }
    for (size_t i = 0; i < M; i++) {
        int added;
        int32_t *slot = pair_map_add(&bpe->ranks, pair_key(merges[i][0], merges[i][1]),
                                     (int32_t)i, &added);
        if (!slot) {
            rc = recur__error(RECUR_E_NOMEM, "%s: cannot index %zu merges", who, M);
            goto fail;
        }
        if (!added) {
            rc = recur__error(RECUR_E_FORMAT, "%s: merge %zu [%d, %d] repeats merge %d", who, i,
                              (int)merges[i][0], (int)merges[i][1], (int)*slot);
            goto fail;
        }
    }
    *out = bpe;
    return RECUR_OK;
fail:
    recur_bpe_free(bpe);
    return rc;
}

int recur_bpe_size(const recur_bpe *bpe)
{
    return bpe ? bpe->size : 0;
}

const char *recur_bpe_token(const recur_bpe *bpe, int32_t id, size_t *len)
{
    if (!bpe || id < 0 || id >= bpe->size) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = bpe->offsets[id + 1] - bpe->offsets[id] - 1;
    return bpe->bytes + bpe->offsets[id];
}

/* ---- learning ----------------------------------------------------------------------- */

typedef struct piece {
    const unsigned char *bytes; /* borrowed from the caller's texts */
    size_t len;
    uint64_t hash;
    int64_t count;
} piece;

typedef struct pair_stat {
    uint64_t key;    /* first << 32 | second */
    int64_t count;   /* occurrences in all words, each weighted by its word's frequency */
    int32_t *where;  /* words it occurred in (some may have lost it since) */
    uint32_t where_n, where_cap;
    int32_t stamp;   /* the last merge step that changed count */
    int64_t queued;  /* count of its newest heap entry (-1: none) */
} pair_stat;

typedef struct heap_entry {
    int64_t count;
    uint64_t key;
} heap_entry;

typedef struct learner {
    piece *pieces; /* distinct pieces of two bytes or more */
    size_t piece_n, piece_cap;
    int32_t *piece_slots; /* [piece_slot_cap] piece index + 1, 0 where free */
    size_t piece_slot_cap;

    int32_t *tokens;     /* every word's tokens, word w at tokens[word_start[w]] */
    size_t *word_start;  /* [W] */
    int32_t *word_len;   /* [W] tokens now (shrinks as merges apply) */
    int64_t *word_freq;  /* [W] */
    int32_t *word_stamp; /* [W] the last merge step that rewrote the word */
    size_t word_n;
    uint8_t *merged;     /* [longest word] scratch of apply_merge */

    pair_stat *pairs;
    size_t pair_n, pair_cap;
    pair_map pair_index; /* key -> index into pairs */

    heap_entry *heap; /* max-heap on (count, then smaller key) */
    size_t heap_n, heap_cap;
    int32_t *touched; /* pairs whose count changed in this step */
    size_t touched_n, touched_cap;

    int32_t (*merges)[2];
    size_t merge_n;
} learner;

static void learner_free(learner *L)
{
    for (size_t i = 0; i < L->pair_n; i++)
        recur__free(L->pairs[i].where);
    recur__free(L->pieces);
    recur__free(L->piece_slots);
    recur__free(L->tokens);
    recur__free(L->word_start);
    recur__free(L->word_len);
    recur__free(L->word_freq);
    recur__free(L->word_stamp);
    recur__free(L->merged);
    recur__free(L->pairs);
    pair_map_free(&L->pair_index);
    recur__free(L->heap);
    recur__free(L->touched);
    recur__free(L->merges);
}

static int piece_slots_resize(learner *L, size_t capacity)
{
    int32_t *slots = recur__calloc(capacity, sizeof *slots);
    if (!slots)
        return RECUR_E_NOMEM;
    for (size_t i = 0; i < L->piece_n; i++) {
        size_t at = (size_t)L->pieces[i].hash & (capacity - 1);
        while (slots[at])
            at = (at + 1) & (capacity - 1);
        slots[at] = (int32_t)(i + 1);
    }
    recur__free(L->piece_slots);
    L->piece_slots = slots;
    L->piece_slot_cap = capacity;
    return RECUR_OK;
}

static int add_piece(learner *L, const unsigned char *s, size_t len)
{
    const uint64_t h = hash_bytes(s, len);
    if (L->piece_slot_cap) {
        size_t at = (size_t)h & (L->piece_slot_cap - 1);
        for (; L->piece_slots[at]; at = (at + 1) & (L->piece_slot_cap - 1)) {
            piece *p = &L->pieces[L->piece_slots[at] - 1];
            if (p->hash == h && p->len == len && memcmp(p->bytes, s, len) == 0) {
                p->count++;
                return RECUR_OK;
            }
        }
    }
    if (L->piece_n >= INT32_MAX - 1)
        return recur__error(RECUR_E_NOMEM, "recur_bpe_learn: more than %d distinct pieces",
                            INT32_MAX - 1);
    if (2 * (L->piece_n + 1) >= L->piece_slot_cap &&
        piece_slots_resize(L, L->piece_slot_cap ? 2 * L->piece_slot_cap : 4096))
        return recur__error(RECUR_E_NOMEM, "recur_bpe_learn: cannot index %zu pieces",
                            L->piece_n + 1);
    piece *grown = grow_array(L->pieces, &L->piece_cap, L->piece_n + 1, sizeof *L->pieces);
    if (!grown)
        return recur__error(RECUR_E_NOMEM, "recur_bpe_learn: cannot keep %zu pieces",
                            L->piece_n + 1);
    L->pieces = grown;
    L->pieces[L->piece_n] = (piece){s, len, h, 1};
    size_t at = (size_t)h & (L->piece_slot_cap - 1);
    while (L->piece_slots[at])
        at = (at + 1) & (L->piece_slot_cap - 1);
    L->piece_slots[at] = (int32_t)(++L->piece_n);
    return RECUR_OK;
}

/* The words: every distinct piece of two bytes or more as byte tokens. */
static int build_words(learner *L)
{
    const size_t W = L->piece_n;
    size_t total = 0, longest = 1;
    for (size_t w = 0; w < W; w++) {
        if (!recur__add_size(total, L->pieces[w].len, &total) || L->pieces[w].len > INT32_MAX)
            return recur__error(RECUR_E_NOMEM, "recur_bpe_learn: the pieces are too long");
        if (L->pieces[w].len > longest)
            longest = L->pieces[w].len;
    }
    L->merged = recur__calloc(longest, 1);
    L->tokens = recur__calloc(total ? total : 1, sizeof *L->tokens);
    L->word_start = recur__calloc(W ? W : 1, sizeof *L->word_start);
    L->word_len = recur__calloc(W ? W : 1, sizeof *L->word_len);
    L->word_freq = recur__calloc(W ? W : 1, sizeof *L->word_freq);
    L->word_stamp = recur__calloc(W ? W : 1, sizeof *L->word_stamp);
    if (!L->tokens || !L->word_start || !L->word_len || !L->word_freq || !L->word_stamp ||
        !L->merged)
        return recur__error(RECUR_E_NOMEM, "recur_bpe_learn: cannot allocate %zu words of %zu "
                            "bytes in all", W, total);
    size_t at = 0;
    for (size_t w = 0; w < W; w++) {
        const piece *p = &L->pieces[w];
        L->word_start[w] = at;
        L->word_len[w] = (int32_t)p->len;
        L->word_freq[w] = p->count;
        for (size_t k = 0; k < p->len; k++)
            L->tokens[at + k] = RECUR_BPE_FIRST_BYTE + p->bytes[k];
        at += p->len;
    }
    L->word_n = W;
    /* The piece table is no longer needed. */
    recur__free(L->piece_slots);
    recur__free(L->pieces);
    L->piece_slots = NULL;
    L->pieces = NULL;
    L->piece_slot_cap = L->piece_cap = L->piece_n = 0;
    return RECUR_OK;
}

/* Adds delta to the count of pair (first, second), creating it when new,
 * marks it touched in `step`, and lists word `w` (when >= 0) as a place
 * where it occurs. */
static int pair_change(learner *L, int32_t first, int32_t second, int64_t delta, int32_t w,
                       int32_t step)
{
    int added;
    int32_t *slot = pair_map_add(&L->pair_index, pair_key(first, second), (int32_t)L->pair_n,
                                 &added);
    if (!slot)
        return RECUR_E_NOMEM;
    if (added) {
        pair_stat *grown = grow_array(L->pairs, &L->pair_cap, L->pair_n + 1, sizeof *L->pairs);
        if (!grown || L->pair_n >= INT32_MAX - 1) {
            if (grown)
                L->pairs = grown;
            return RECUR_E_NOMEM;
        }
        L->pairs = grown;
        L->pairs[L->pair_n] = (pair_stat){pair_key(first, second), 0, NULL, 0, 0, -1, -1};
        L->pair_n++;
    }
    pair_stat *p = &L->pairs[*slot];
    p->count += delta;
    if (p->stamp != step) {
        p->stamp = step;
        int32_t *grown = grow_array(L->touched, &L->touched_cap, L->touched_n + 1,
                                    sizeof *L->touched);
        if (!grown)
            return RECUR_E_NOMEM;
        L->touched = grown;
        L->touched[L->touched_n++] = *slot;
    }
    if (w >= 0 && (p->where_n == 0 || p->where[p->where_n - 1] != w)) {
        if (p->where_n == UINT32_MAX)
            return RECUR_E_NOMEM;
        if (p->where_n == p->where_cap) {
            size_t cap = p->where_cap;
            int32_t *grown = grow_array(p->where, &cap, (size_t)p->where_n + 1, sizeof *p->where);
            if (!grown || cap > UINT32_MAX)
                return RECUR_E_NOMEM;
            p->where = grown;
            p->where_cap = (uint32_t)cap;
        }
        p->where[p->where_n++] = w;
    }
    return RECUR_OK;
}

static int heap_before(const heap_entry *x, const heap_entry *y)
{
    return x->count != y->count ? x->count > y->count : x->key < y->key;
}

static int heap_push(learner *L, int64_t count, uint64_t key)
{
    heap_entry *grown = grow_array(L->heap, &L->heap_cap, L->heap_n + 1, sizeof *L->heap);
    if (!grown)
        return RECUR_E_NOMEM;
    L->heap = grown;
    size_t i = L->heap_n++;
    const heap_entry e = {count, key};
    while (i > 0) {
        const size_t parent = (i - 1) / 2;
        if (!heap_before(&e, &L->heap[parent]))
            break;
        L->heap[i] = L->heap[parent];
        i = parent;
    }
    L->heap[i] = e;
    return RECUR_OK;
}

static heap_entry heap_pop(learner *L)
{
    const heap_entry top = L->heap[0];
    const heap_entry last = L->heap[--L->heap_n];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= L->heap_n)
            break;
        if (child + 1 < L->heap_n && heap_before(&L->heap[child + 1], &L->heap[child]))
            child++;
        if (!heap_before(&L->heap[child], &last))
            break;
        L->heap[i] = L->heap[child];
        i = child;
    }
    if (L->heap_n)
        L->heap[i] = last;
    return top;
}

/* Index of the most frequent pair (ties: smaller first id, then smaller
 * second id), or -1 when no pair occurs twice. */
static int32_t best_pair(learner *L)
{
    while (L->heap_n) {
        const heap_entry e = heap_pop(L);
        const int32_t *index = pair_map_find(&L->pair_index, e.key);
        if (index && L->pairs[*index].count == e.count && e.count >= 2)
            return *index;
    }
    return -1;
}

/* Pushes a fresh heap entry for every pair touched in this step whose count
 * differs from its newest entry's (an entry with the current count is still
 * good). */
static int push_touched(learner *L)
{
    for (size_t i = 0; i < L->touched_n; i++) {
        pair_stat *p = &L->pairs[L->touched[i]];
        if (p->count >= 2 && p->count != p->queued) {
            if (heap_push(L, p->count, p->key))
                return RECUR_E_NOMEM;
            p->queued = p->count;
        }
    }
    L->touched_n = 0;
    return RECUR_OK;
}

/* Step 0: the pairs of the initial byte words. */
static int count_pairs(learner *L)
{
    for (size_t w = 0; w < L->word_n; w++) {
        const int32_t *t = L->tokens + L->word_start[w];
        for (int32_t k = 0; k + 1 < L->word_len[w]; k++)
            if (pair_change(L, t[k], t[k + 1], L->word_freq[w], (int32_t)w, 0))
                return RECUR_E_NOMEM;
    }
    return push_touched(L);
}

/* Merges pair `best` into the new token 259 + merge_n in every word on its
 * list. Only the pairs next to a merged occurrence change: the old pairs
 * with a token inside an occurrence go, the new pairs holding the new token
 * come (every other adjacency is kept as it was). */
static int apply_merge(learner *L, int32_t best)
{
    const uint64_t key = L->pairs[best].key;
    const int32_t a = (int32_t)(key >> 32), b = (int32_t)(key & 0xffffffffu);
    const int32_t c = RECUR_BPE_BASE + (int32_t)L->merge_n;
    L->merges[L->merge_n][0] = a;
    L->merges[L->merge_n][1] = b;
    L->merge_n++;
    const int32_t step = (int32_t)L->merge_n;
    /* New pairs all hold c, so this list never grows while it is walked. */
    int32_t *list = L->pairs[best].where;
    const uint32_t list_n = L->pairs[best].where_n;
    L->pairs[best].where = NULL;
    L->pairs[best].where_n = L->pairs[best].where_cap = 0;
    uint8_t *merged = L->merged;
    int rc = RECUR_OK;
    for (uint32_t k = 0; k < list_n && rc == RECUR_OK; k++) {
        const int32_t w = list[k];
        if (L->word_stamp[w] == step)
            continue;
        L->word_stamp[w] = step;
        int32_t *t = L->tokens + L->word_start[w];
        const int32_t len = L->word_len[w];
        /* merged[j]: token j belongs to an occurrence (left to right, the
         * occurrences do not overlap). */
        int found = 0;
        for (int32_t j = 0; j < len;) {
            if (j + 1 < len && t[j] == a && t[j + 1] == b) {
                merged[j] = merged[j + 1] = 1;
                found = 1;
                j += 2;
            } else
                merged[j++] = 0;
        }
        if (!found)
            continue;
        const int64_t freq = L->word_freq[w];
        for (int32_t j = 0; j + 1 < len && rc == RECUR_OK; j++)
            if (merged[j] || merged[j + 1])
                rc = pair_change(L, t[j], t[j + 1], -freq, -1, step);
        int32_t out = 0;
        for (int32_t j = 0; j < len;) {
            if (j + 1 < len && merged[j] && t[j] == a && t[j + 1] == b) {
                t[out++] = c;
                j += 2;
            } else
                t[out++] = t[j++];
        }
        L->word_len[w] = out;
        for (int32_t j = 0; j + 1 < out && rc == RECUR_OK; j++)
            if (t[j] == c || t[j + 1] == c)
                rc = pair_change(L, t[j], t[j + 1], freq, w, step);
    }
    recur__free(list);
    if (rc == RECUR_OK)
        rc = push_touched(L);
    return rc;
}

int recur_bpe_learn(const char *const *texts, const size_t *lens, size_t count, int vocab_size,
                    recur_bpe **out)
{
    if (!out)
        return recur__error(RECUR_E_INVALID, "recur_bpe_learn: NULL output");
    *out = NULL;
    if (count && !texts)
        return recur__error(RECUR_E_INVALID, "recur_bpe_learn: NULL texts with count %zu", count);
    if (vocab_size < RECUR_BPE_BASE || vocab_size > BPE_MAX_VOCAB)
        return recur__error(RECUR_E_INVALID, "recur_bpe_learn: vocab_size %d is outside %d..%d "
                            "(%d = 3 specials + 256 bytes)", vocab_size, RECUR_BPE_BASE,
                            BPE_MAX_VOCAB, RECUR_BPE_BASE);
    for (size_t i = 0; i < count; i++)
        if (!texts[i])
            return recur__error(RECUR_E_INVALID, "recur_bpe_learn: texts[%zu] is NULL", i);
    learner L;
    memset(&L, 0, sizeof L);
    int rc = RECUR_OK;
    const size_t max_merges = (size_t)vocab_size - RECUR_BPE_BASE;
    L.merges = recur__calloc(max_merges ? max_merges : 1, sizeof *L.merges);
    if (!L.merges) {
        rc = recur__error(RECUR_E_NOMEM, "recur_bpe_learn: cannot allocate %zu merges",
                          max_merges);
        goto done;
    }
    for (size_t i = 0; i < count && rc == RECUR_OK; i++) {
        const unsigned char *s = (const unsigned char *)texts[i];
        const size_t n = lens ? lens[i] : strlen(texts[i]);
        for (size_t at = 0; at < n && rc == RECUR_OK;) {
            const size_t end = piece_end(s, n, at);
            if (end - at >= 2)
                rc = add_piece(&L, s + at, end - at);
            at = end;
        }
    }
    if (rc || (rc = build_words(&L)))
        goto done;
    if (count_pairs(&L)) {
        rc = recur__error(RECUR_E_NOMEM, "recur_bpe_learn: cannot count the pairs of %zu words",
                          L.word_n);
        goto done;
    }
    while (L.merge_n < max_merges) {
        const int32_t best = best_pair(&L);
        if (best < 0)
            break;
        if (apply_merge(&L, best)) {
            rc = recur__error(RECUR_E_NOMEM, "recur_bpe_learn: out of memory at merge %zu",
                              L.merge_n);
            goto done;
        }
    }
    rc = bpe_create((const int32_t(*)[2])L.merges, L.merge_n, "recur_bpe_learn", out);
done:
    learner_free(&L);
    return rc;
}

/* ---- encoding ----------------------------------------------------------------------- */

typedef struct rank_entry {
    int32_t rank;
    int32_t pos;
} rank_entry;

/* Scratch space of one encode call, sized for the longest piece so far. */
typedef struct piece_work {
    int32_t *ids;  /* [cap] symbol at each position, -1 once merged into its left neighbour */
    int32_t *next; /* [cap] next live position (n: none) */
    int32_t *prev; /* [cap] previous live position (-1: none) */
    rank_entry *heap; /* [3 * cap] min-heap on (rank, position) */
    size_t cap;
} piece_work;

static void work_free(piece_work *w)
{
    recur__free(w->ids);
    recur__free(w->next);
    recur__free(w->prev);
    recur__free(w->heap);
    memset(w, 0, sizeof *w);
}

static int work_reserve(piece_work *w, size_t n)
{
    if (n <= w->cap)
        return RECUR_OK;
    if (n > INT32_MAX / 4)
        return RECUR_E_NOMEM;
    work_free(w);
    w->ids = recur__calloc(n, sizeof *w->ids);
    w->next = recur__calloc(n, sizeof *w->next);
    w->prev = recur__calloc(n, sizeof *w->prev);
    w->heap = recur__calloc(3 * n, sizeof *w->heap);
    if (!w->ids || !w->next || !w->prev || !w->heap) {
        work_free(w);
        return RECUR_E_NOMEM;
    }
    w->cap = n;
    return RECUR_OK;
}

static int rank_before(rank_entry x, rank_entry y)
{
    return x.rank != y.rank ? x.rank < y.rank : x.pos < y.pos;
}

static void rank_push(rank_entry *heap, size_t *n, rank_entry e)
{
    size_t i = (*n)++;
    while (i > 0 && rank_before(e, heap[(i - 1) / 2])) {
        heap[i] = heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    heap[i] = e;
}

static rank_entry rank_pop(rank_entry *heap, size_t *n)
{
    const rank_entry top = heap[0];
    const rank_entry last = heap[--*n];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= *n)
            break;
        if (child + 1 < *n && rank_before(heap[child + 1], heap[child]))
            child++;
        if (!rank_before(heap[child], last))
            break;
        heap[i] = heap[child];
        i = child;
    }
    if (*n)
        heap[i] = last;
    return top;
}

static int32_t merge_rank(const recur_bpe *bpe, int32_t first, int32_t second)
{
    const int32_t *rank = pair_map_find(&bpe->ranks, pair_key(first, second));
    return rank ? *rank : -1;
}

/* Encodes the piece s[0..n) (n >= 1) into w->ids[0..*count). With rng (BPE-dropout), each
 * merge, when its turn comes, is skipped with probability dropout: that occurrence stays
 * unmerged unless a neighbour's merge makes it a new pair. */
static void encode_piece(const recur_bpe *bpe, piece_work *w, const unsigned char *s, size_t n,
                         float dropout, recur_rng *rng, size_t *count)
{
    const int32_t len = (int32_t)n;
    int32_t *ids = w->ids, *next = w->next, *prev = w->prev;
    size_t heap_n = 0;
    for (int32_t i = 0; i < len; i++) {
        ids[i] = RECUR_BPE_FIRST_BYTE + s[i];
        next[i] = i + 1;
        prev[i] = i - 1;
    }
    for (int32_t i = 0; i + 1 < len; i++) {
        const int32_t r = merge_rank(bpe, ids[i], ids[i + 1]);
        if (r >= 0)
            rank_push(w->heap, &heap_n, (rank_entry){r, i});
    }
    /* Each merge pushes at most two entries, and there are fewer than n
     * merges, so the heap never holds more than 3n entries. */
    while (heap_n) {
        const rank_entry e = rank_pop(w->heap, &heap_n);
        const int32_t i = e.pos;
        if (ids[i] < 0 || next[i] >= len || merge_rank(bpe, ids[i], ids[next[i]]) != e.rank)
            continue;
        if (rng && recur_rng_uniform(rng) < dropout)
            continue;
        const int32_t j = next[i];
        ids[i] = RECUR_BPE_BASE + e.rank;
        ids[j] = -1;
        next[i] = next[j];
        if (next[i] < len)
            prev[next[i]] = i;
        if (prev[i] >= 0) {
            const int32_t r = merge_rank(bpe, ids[prev[i]], ids[i]);
            if (r >= 0)
                rank_push(w->heap, &heap_n, (rank_entry){r, prev[i]});
        }
        if (next[i] < len) {
            const int32_t r = merge_rank(bpe, ids[i], ids[next[i]]);
            if (r >= 0)
                rank_push(w->heap, &heap_n, (rank_entry){r, i});
        }
    }
    size_t k = 0;
    for (int32_t i = 0; i < len; i = next[i])
        ids[k++] = ids[i];
    *count = k;
}

static const cache_entry *cache_find(const piece_cache *c, const unsigned char *s, size_t n,
                                     uint64_t h)
{
    if (!c->slot_cap)
        return NULL;
    for (size_t at = (size_t)h & (c->slot_cap - 1); c->slots[at];
         at = (at + 1) & (c->slot_cap - 1)) {
        const cache_entry *e = &c->entries[c->slots[at] - 1];
        if (e->hash == h && e->key_len == n && memcmp(c->keys + e->key_at, s, n) == 0)
            return e;
    }
    return NULL;
}

static int cache_slots_resize(piece_cache *c, size_t capacity)
{
    int32_t *slots = recur__calloc(capacity, sizeof *slots);
    if (!slots)
        return RECUR_E_NOMEM;
    for (size_t i = 0; i < c->entry_n; i++) {
        size_t at = (size_t)c->entries[i].hash & (capacity - 1);
        while (slots[at])
            at = (at + 1) & (capacity - 1);
        slots[at] = (int32_t)(i + 1);
    }
    recur__free(c->slots);
    c->slots = slots;
    c->slot_cap = capacity;
    return RECUR_OK;
}

/* Remembers piece s[0..n) -> ids[0..count). The cache is only a speed-up:
 * when memory runs out the piece is simply not remembered. */
static void cache_add(piece_cache *c, const unsigned char *s, size_t n, uint64_t h,
                      const int32_t *ids, size_t count)
{
    if (c->entry_n >= CACHE_MAX_ENTRIES) {
        c->entry_n = c->keys_n = c->ids_n = 0;
        memset(c->slots, 0, c->slot_cap * sizeof *c->slots);
    }
    if (2 * (c->entry_n + 1) >= c->slot_cap &&
        cache_slots_resize(c, c->slot_cap ? 2 * c->slot_cap : 1024))
        return;
    cache_entry *entries = grow_array(c->entries, &c->entry_cap, c->entry_n + 1,
                                      sizeof *c->entries);
    if (!entries)
        return;
    c->entries = entries;
    unsigned char *keys = grow_array(c->keys, &c->keys_cap, c->keys_n + n, 1);
    if (!keys)
        return;
    c->keys = keys;
    int32_t *cached = grow_array(c->ids, &c->ids_cap, c->ids_n + count, sizeof *c->ids);
    if (!cached)
        return;
    c->ids = cached;
    cache_entry *e = &c->entries[c->entry_n];
    *e = (cache_entry){h, c->keys_n, c->ids_n, (uint32_t)n, (uint32_t)count};
    memcpy(c->keys + c->keys_n, s, n);
    memcpy(c->ids + c->ids_n, ids, count * sizeof *ids);
    c->keys_n += n;
    c->ids_n += count;
    size_t at = (size_t)h & (c->slot_cap - 1);
    while (c->slots[at])
        at = (at + 1) & (c->slot_cap - 1);
    c->slots[at] = (int32_t)(++c->entry_n);
}

/* recur_bpe_encode and, with rng, recur_bpe_encode_dropout (which bypasses the cache). */
static int encode_text(const recur_bpe *bpe, const char *text, size_t len, float dropout,
                       recur_rng *rng, int32_t **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    if (len == 0)
        return RECUR_OK;
    /* The cache is the one part of a recur_bpe that encoding changes; the
     * object is never const-defined (recur_bpe_learn and _from_json make it). */
    recur_bpe *shared = (recur_bpe *)bpe;
    const unsigned char *s = (const unsigned char *)text;
    int32_t *out = NULL;
    size_t out_n = 0, out_cap = 0;
    piece_work work;
    memset(&work, 0, sizeof work);
    int rc = RECUR_OK;
    mtx_lock(&shared->lock);
    for (size_t at = 0; at < len;) {
        const size_t end = piece_end(s, len, at), piece_len = end - at;
        const unsigned char *p = s + at;
        at = end;
        int32_t *grown = grow_array(out, &out_cap, out_n + piece_len, sizeof *out);
        if (!grown) {
            rc = RECUR_E_NOMEM;
            break;
        }
        out = grown;
        if (piece_len == 1) {
            out[out_n++] = RECUR_BPE_FIRST_BYTE + p[0];
            continue;
        }
        const bool cached = !rng && piece_len <= CACHE_MAX_PIECE;
        const uint64_t h = cached ? hash_bytes(p, piece_len) : 0;
        const cache_entry *hit = cached ? cache_find(&shared->cache, p, piece_len, h) : NULL;
        if (hit) {
            memcpy(out + out_n, shared->cache.ids + hit->ids_at, hit->ids_len * sizeof *out);
            out_n += hit->ids_len;
            continue;
        }
        if (work_reserve(&work, piece_len)) {
            rc = RECUR_E_NOMEM;
            break;
        }
        size_t count;
        encode_piece(bpe, &work, p, piece_len, dropout, rng, &count);
        memcpy(out + out_n, work.ids, count * sizeof *out);
        out_n += count;
        if (cached)
            cache_add(&shared->cache, p, piece_len, h, work.ids, count);
    }
    mtx_unlock(&shared->lock);
    work_free(&work);
    if (rc) {
        recur__free(out);
        return recur__error(RECUR_E_NOMEM, "recur_bpe_encode: out of memory encoding %zu bytes",
                            len);
    }
    *ids = out;
    *n = out_n;
    return RECUR_OK;
}

int recur_bpe_encode(const recur_bpe *bpe, const char *text, size_t len, int32_t **ids, size_t *n)
{
    if (!bpe || !ids || !n || (!text && len))
        return recur__error(RECUR_E_INVALID, "recur_bpe_encode: NULL argument");
    return encode_text(bpe, text, len, 0.0f, NULL, ids, n);
}

int recur_bpe_encode_dropout(const recur_bpe *bpe, const char *text, size_t len, float dropout,
                             recur_rng *rng, int32_t **ids, size_t *n)
{
    if (!bpe || !ids || !n || (!text && len) || (!rng && dropout > 0.0f))
        return recur__error(RECUR_E_INVALID, "recur_bpe_encode_dropout: NULL argument");
    if (!(dropout >= 0.0f && dropout <= 1.0f))
        return recur__error(RECUR_E_INVALID, "recur_bpe_encode_dropout: dropout %g outside [0, 1]",
                            (double)dropout);
    return encode_text(bpe, text, len, dropout, dropout > 0.0f ? rng : NULL, ids, n);
}

/* ---- decoding ----------------------------------------------------------------------- */

/* Length of the well-formed UTF-8 character at s[0..n) (n >= 1), or 0 when
 * it is ill-formed; then *bad is the length of its maximal subpart (the
 * longest prefix of a well-formed sequence, at least 1), which becomes one
 * U+FFFD as in Unicode's "substitution of maximal subparts" (what Python's
 * bytes.decode("utf-8", "replace") does). */
static size_t utf8_char(const unsigned char *s, size_t n, size_t *bad)
{
    const unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        need = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        if (c == 0xe0)
            lo = 0xa0; /* no overlong forms */
        else if (c == 0xed)
            hi = 0x9f; /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f; /* nothing above U+10FFFF */
    } else {
        *bad = 1;
        return 0;
    }
    for (size_t k = 1; k < need; k++) {
        const unsigned char min = k == 1 ? lo : 0x80, max = k == 1 ? hi : 0xbf;
        if (k >= n || s[k] < min || s[k] > max) {
            *bad = k;
            return 0;
        }
    }
    return need;
}

/* Writes s[0..n) with every ill-formed subpart replaced by U+FFFD into out
 * (when not NULL); returns the length written and sets *clean when s was
 * well-formed throughout (then the output is s itself). */
static size_t utf8_repair(const unsigned char *s, size_t n, unsigned char *out, int *clean)
{
    size_t written = 0;
    *clean = 1;
    for (size_t i = 0; i < n;) {
        size_t bad = 0;
        const size_t good = utf8_char(s + i, n - i, &bad);
        if (good) {
            if (out)
                memcpy(out + written, s + i, good);
            written += good;
            i += good;
        } else {
            if (out)
                memcpy(out + written, "\xef\xbf\xbd", 3);
            written += 3;
            i += bad;
            *clean = 0;
        }
    }
    return written;
}

int recur_bpe_decode(const recur_bpe *bpe, const int32_t *ids, size_t n, char **text, size_t *len)
{
    if (!bpe || !text || (!ids && n))
        return recur__error(RECUR_E_INVALID, "recur_bpe_decode: NULL argument");
    *text = NULL;
    if (len)
        *len = 0;
    size_t raw = 0;
    for (size_t i = 0; i < n; i++) {
        const int32_t id = ids[i];
        if (id < 0 || id >= bpe->size)
            return recur__error(RECUR_E_INVALID, "recur_bpe_decode: id %d at position %zu is "
                                "outside the vocabulary (0..%d)", (int)id, i, (int)bpe->size - 1);
        if (id >= RECUR_BPE_FIRST_BYTE)
            raw += bpe->offsets[id + 1] - bpe->offsets[id] - 1; /* <= 2^30 per token */
        if (raw > SIZE_MAX / 4)
            return recur__error(RECUR_E_NOMEM, "recur_bpe_decode: %zu ids make too long a text",
                                n);
    }
    unsigned char *bytes = recur__malloc(raw + 1);
    if (!bytes)
        return recur__error(RECUR_E_NOMEM, "recur_bpe_decode: cannot allocate %zu bytes", raw + 1);
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < RECUR_BPE_FIRST_BYTE)
            continue;
        const size_t k = bpe->offsets[ids[i] + 1] - bpe->offsets[ids[i]] - 1;
        memcpy(bytes + at, bpe->bytes + bpe->offsets[ids[i]], k);
        at += k;
    }
    int clean;
    const size_t repaired = utf8_repair(bytes, raw, NULL, &clean);
    if (!clean) {
        unsigned char *fixed = recur__malloc(repaired + 1);
        if (!fixed) {
            recur__free(bytes);
            return recur__error(RECUR_E_NOMEM, "recur_bpe_decode: cannot allocate %zu bytes",
                                repaired + 1);
        }
        utf8_repair(bytes, raw, fixed, &clean);
        recur__free(bytes);
        bytes = fixed;
        raw = repaired;
    }
    bytes[raw] = '\0';
    *text = (char *)bytes;
    if (len)
        *len = raw;
    return RECUR_OK;
}

/* ---- JSON --------------------------------------------------------------------------- */

int recur_bpe_to_json(const recur_bpe *bpe, char **json)
{
    if (!bpe || !json)
        return recur__error(RECUR_E_INVALID, "recur_bpe_to_json: NULL argument");
    *json = NULL;
    const size_t M = (size_t)bpe->size - RECUR_BPE_BASE;
    /* "[a,b]," is at most 2 * 7 + 4 characters for ids below 2^20. */
    const size_t cap = 64 + 20 * M;
    char *out = recur__malloc(cap);
    if (!out)
        return recur__error(RECUR_E_NOMEM, "recur_bpe_to_json: cannot allocate %zu bytes", cap);
    size_t at = (size_t)snprintf(out, cap, "{\"format\":1,\"merges\":[");
    for (size_t i = 0; i < M; i++)
        at += (size_t)snprintf(out + at, cap - at, "%s[%d,%d]", i ? "," : "",
                               (int)bpe->merges[i][0], (int)bpe->merges[i][1]);
    snprintf(out + at, cap - at, "]}");
    *json = out;
    return RECUR_OK;
}

static const char *json_kind(const json_t *value)
{
    switch (json_typeof(value)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE: return "true";
    case JSON_FALSE: return "false";
    case JSON_NULL: return "null";
    }
    return "an unknown value";
}

int recur_bpe_from_json(const char *json, size_t len, recur_bpe **out)
{
    if (!json || !out)
        return recur__error(RECUR_E_INVALID, "recur_bpe_from_json: NULL argument");
    *out = NULL;
    json_error_t error;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &error);
    if (!root)
        return recur__error(RECUR_E_FORMAT, "BPE JSON: %s (line %d, column %d)", error.text,
                            error.line, error.column);
    int rc = RECUR_OK;
    int32_t(*merges)[2] = NULL;
    if (!json_is_object(root)) {
        rc = recur__error(RECUR_E_FORMAT, "BPE JSON is %s, not an object {\"format\": 1, "
                          "\"merges\": [...]}", json_kind(root));
        goto done;
    }
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value) {
        if (strcmp(key, "format") != 0 && strcmp(key, "merges") != 0) {
            rc = recur__error(RECUR_E_FORMAT, "BPE JSON: unknown key \"%.64s\" (expected "
                              "\"format\" and \"merges\")", key);
            goto done;
        }
    }
    const json_t *format = json_object_get(root, "format");
    if (!format) {
        rc = recur__error(RECUR_E_FORMAT, "BPE JSON: \"format\" is missing");
        goto done;
    }
    if (!json_is_integer(format)) {
        rc = recur__error(RECUR_E_FORMAT, "BPE JSON: \"format\" is %s, not the integer 1",
                          json_kind(format));
        goto done;
    }
    if (json_integer_value(format) != 1) {
        rc = recur__error(RECUR_E_FORMAT, "BPE JSON: \"format\" %lld is not supported (this "
                          "version reads format 1)", (long long)json_integer_value(format));
        goto done;
    }
    const json_t *list = json_object_get(root, "merges");
    if (!list) {
        rc = recur__error(RECUR_E_FORMAT, "BPE JSON: \"merges\" is missing");
        goto done;
    }
    if (!json_is_array(list)) {
        rc = recur__error(RECUR_E_FORMAT, "BPE JSON: \"merges\" is %s, not an array",
                          json_kind(list));
        goto done;
    }
    const size_t M = json_array_size(list);
    if (M > (size_t)(BPE_MAX_VOCAB - RECUR_BPE_BASE)) {
        rc = recur__error(RECUR_E_FORMAT, "BPE JSON: %zu merges, more than the %d a vocabulary "
                          "of %d tokens allows", M, BPE_MAX_VOCAB - RECUR_BPE_BASE, BPE_MAX_VOCAB);
        goto done;
    }
    merges = recur__calloc(M ? M : 1, sizeof *merges);
    if (!merges) {
        rc = recur__error(RECUR_E_NOMEM, "BPE JSON: cannot allocate %zu merges", M);
        goto done;
    }
    for (size_t i = 0; i < M; i++) {
        const json_t *m = json_array_get(list, i);
        if (!json_is_array(m) || json_array_size(m) != 2) {
            rc = json_is_array(m)
                     ? recur__error(RECUR_E_FORMAT, "BPE JSON: merge %zu has %zu elements, not "
                                    "2 ([first id, second id])", i, json_array_size(m))
                     : recur__error(RECUR_E_FORMAT, "BPE JSON: merge %zu is %s, not an array "
                                    "[first id, second id]", i, json_kind(m));
            goto done;
        }
        for (int k = 0; k < 2; k++) {
            const json_t *id = json_array_get(m, (size_t)k);
            if (!json_is_integer(id)) {
                rc = recur__error(RECUR_E_FORMAT, "BPE JSON: merge %zu: element %d is %s, not an "
                                  "integer id", i, k, json_kind(id));
                goto done;
            }
            const json_int_t v = json_integer_value(id);
            if (v < 0 || v >= BPE_MAX_VOCAB) {
                rc = recur__error(RECUR_E_FORMAT, "BPE JSON: merge %zu joins id %lld, outside "
                                  "0..%d", i, (long long)v, BPE_MAX_VOCAB - 1);
                goto done;
            }
            merges[i][k] = (int32_t)v;
        }
    }
    rc = bpe_create((const int32_t(*)[2])merges, M, "BPE JSON", out);
done:
    recur__free(merges);
    json_decref(root);
    return rc;
}
