/* test_textstream_shard.c - the text stream shards of data-parallel
 * training (recur_textstream_create_shard, docs/mpi.md): N shards of batch b
 * return, column block by column block, exactly the chunks of one stream of
 * batch N*b over several epochs (wrap flags and positions included); a
 * position saved by one shard restores into another; the whole-layout shard
 * equals recur_textstream_create; bad shard ranges are refused with the
 * numbers in the message. */
#include <stdlib.h>

#include "check.h"
#include "recur.h"

enum { N_TOKENS = 1003, SEQ = 7, CHUNKS = 40 };

static int32_t tokens[N_TOKENS];

/* ranks shards of per_rank streams against one stream of ranks * per_rank */
static void check_layout(int ranks, int per_rank)
{
    const int total = ranks * per_rank;
    recur_textstream *whole = NULL, *shards[4] = {NULL};
    CHECK_OK(recur_textstream_create(tokens, N_TOKENS, total, SEQ, &whole));
    for (int r = 0; r < ranks; r++)
        CHECK_OK(recur_textstream_create_shard(tokens, N_TOKENS, total, r * per_rank, per_rank,
                                               SEQ, &shards[r]));
    if (!whole)
        return;
    for (int r = 0; r < ranks; r++) {
        if (!shards[r])
            return;
        CHECK(recur_textstream_chunks_per_epoch(shards[r]) ==
              recur_textstream_chunks_per_epoch(whole));
    }
    int32_t full[(SEQ + 1) * 12], part[(SEQ + 1) * 12];
    int mismatches = 0, wraps = 0;
    for (int k = 0; k < CHUNKS; k++) {
        int steps = 0, wrapped = 0;
        CHECK_OK(recur_textstream_next(whole, full, &steps, &wrapped));
        wraps += wrapped;
        for (int r = 0; r < ranks; r++) {
            int shard_steps = 0, shard_wrapped = 0;
            CHECK_OK(recur_textstream_next(shards[r], part, &shard_steps, &shard_wrapped));
            CHECK(shard_steps == steps && shard_wrapped == wrapped);
            /* column j of shard r is column r * per_rank + j of the whole */
            for (int t = 0; t <= SEQ; t++)
                for (int j = 0; j < per_rank; j++)
                    mismatches += part[t * per_rank + j] != full[t * total + r * per_rank + j];
            recur_textstream_pos a = recur_textstream_get_pos(shards[r]);
            recur_textstream_pos b = recur_textstream_get_pos(whole);
            CHECK(a.epoch == b.epoch && a.offset == b.offset);
        }
    }
    CHECK_MSG(mismatches == 0, "%d tokens differ (%d ranks x batch %d)", mismatches, ranks,
              per_rank);
    CHECK_MSG(wraps >= 1, "the walk never wrapped (%d chunks per epoch)",
              (int)recur_textstream_chunks_per_epoch(whole));
    for (int r = 0; r < ranks; r++)
        recur_textstream_free(shards[r]);
    recur_textstream_free(whole);
}

/* A position saved by shard 0 continues shard 1 where the whole walk is. */
static void check_position_transfer(void)
{
    recur_textstream *a = NULL, *b = NULL, *whole = NULL;
    CHECK_OK(recur_textstream_create_shard(tokens, N_TOKENS, 6, 0, 3, SEQ, &a));
    CHECK_OK(recur_textstream_create_shard(tokens, N_TOKENS, 6, 3, 3, SEQ, &b));
    CHECK_OK(recur_textstream_create(tokens, N_TOKENS, 6, SEQ, &whole));
    if (!a || !b || !whole)
        return;
    int32_t full[(SEQ + 1) * 6], part[(SEQ + 1) * 3];
    for (int k = 0; k < 25; k++) {
        CHECK_OK(recur_textstream_next(a, part, NULL, NULL));
        CHECK_OK(recur_textstream_next(whole, full, NULL, NULL));
    }
    recur_textstream_pos pos = recur_textstream_get_pos(a);
    CHECK(pos.epoch >= 1);
    CHECK_OK(recur_textstream_set_pos(b, &pos));
    CHECK_OK(recur_textstream_next(b, part, NULL, NULL));
    CHECK_OK(recur_textstream_next(whole, full, NULL, NULL));
    int mismatches = 0;
    for (int t = 0; t <= SEQ; t++)
        for (int j = 0; j < 3; j++)
            mismatches += part[t * 3 + j] != full[t * 6 + 3 + j];
    CHECK(mismatches == 0);
    recur_textstream_free(a);
    recur_textstream_free(b);
    recur_textstream_free(whole);
}

static void check_errors(void)
{
    recur_textstream *s = (recur_textstream *)1;
    CHECK_STATUS(recur_textstream_create_shard(tokens, N_TOKENS, 4, 3, 2, SEQ, &s),
                 RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("streams 3..4");
    CHECK_ERROR_MENTIONS("4 streams");
    CHECK_STATUS(recur_textstream_create_shard(tokens, N_TOKENS, 4, -1, 2, SEQ, &s),
                 RECUR_E_INVALID);
    CHECK_STATUS(recur_textstream_create_shard(tokens, N_TOKENS, 4, 0, 0, SEQ, &s),
                 RECUR_E_INVALID);
    CHECK_STATUS(recur_textstream_create_shard(tokens, N_TOKENS, 0, 0, 1, SEQ, &s),
                 RECUR_E_INVALID);
    CHECK_STATUS(recur_textstream_create_shard(NULL, N_TOKENS, 4, 0, 1, SEQ, &s),
                 RECUR_E_INVALID);
    /* too short for the whole layout, though long enough for the shard alone */
    CHECK_STATUS(recur_textstream_create_shard(tokens, 40, 8, 0, 1, SEQ, &s), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("8 streams");
    /* a full-range shard is the plain stream */
    CHECK_OK(recur_textstream_create_shard(tokens, 40, 5, 0, 5, SEQ, &s));
    recur_textstream_free(s);
}

int main(void)
{
    for (int i = 0; i < N_TOKENS; i++)
        tokens[i] = i; /* every token names its position */
    check_layout(1, 4);
    check_layout(2, 3);
    check_layout(3, 2);
    check_layout(4, 1);
    check_position_transfer();
    check_errors();
    CHECK_DONE();
}
