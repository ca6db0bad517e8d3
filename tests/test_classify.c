/* test_classify.c - sequence classification (include/recur/classify.h):
 * tokenizer and vocabulary round trips; the TSV/CSV reader; the .ts reader
 * on a file in the style of the UEA/UCR archive and on malformed ones
 * (errors name the line); the classifier's gradient against central
 * differences for every pooling, uni- and bidirectional, tokens and
 * features; padded batches predicting exactly what sequences alone do;
 * checkpoints and initialisation from a language model; metrics against
 * hand-computed confusion matrices; stratified folds; both baselines; and
 * short trainings that learn synthetic tasks. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "recur.h"

static char tmp_dir[512];

static const char *tmp_path(const char *name)
{
    static char buf[4][700];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", tmp_dir, name);
    return p;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* ---- tokenizer ---------------------------------------------------------------------- */

static void test_tokenize(void)
{
    recur_tokenizer_config words = recur_tokenizer_config_default(RECUR_TOKENS_WORDS);
    char **tok = NULL;
    size_t n = 0;
    CHECK_OK(recur_tokenize(&words, "Don't STOP, it's great!!  Caf\xc3\xa9 2nd_best", &tok, &n));
    const char *want[] = {"don't", "stop", ",", "it's", "great", "!", "!", "caf\xc3\xa9",
                          "2nd_best"};
    CHECK_MSG(n == 9, "%zu word tokens", n);
    for (size_t i = 0; i < n && i < 9; i++)
        CHECK_MSG(strcmp(tok[i], want[i]) == 0, "token %zu: '%s' vs '%s'", i, tok[i], want[i]);
    recur_free(tok);

    /* a trailing or leading apostrophe is punctuation */
    CHECK_OK(recur_tokenize(&words, "'quoted' rock'n'roll", &tok, &n));
    CHECK(n == 4 && strcmp(tok[0], "'") == 0 && strcmp(tok[1], "quoted") == 0 &&
          strcmp(tok[2], "'") == 0 && strcmp(tok[3], "rock'n'roll") == 0);
    recur_free(tok);

    recur_tokenizer_config chars = recur_tokenizer_config_default(RECUR_TOKENS_CHARS);
    CHECK(chars.lowercase == 0);
    CHECK_OK(recur_tokenize(&chars, "Ab \t\n\xce\xa9!", &tok, &n));
    CHECK(n == 5 && strcmp(tok[0], "A") == 0 && strcmp(tok[2], " ") == 0 &&
          strcmp(tok[3], "\xce\xa9") == 0 && strcmp(tok[4], "!") == 0);
    recur_free(tok);

    CHECK_STATUS(recur_tokenize(&words, "bad \xff byte", &tok, &n), RECUR_E_FORMAT);
    CHECK(tok == NULL);
}

static void test_tokenizer_vocab(void)
{
    const char *texts[] = {"the cat sat", "The dog sat!", "a cat, a dog"};
    recur_tokenizer_config c = recur_tokenizer_config_default(RECUR_TOKENS_WORDS);
    c.min_count = 2;
    recur_tokenizer *t = NULL;
    CHECK_OK(recur_tokenizer_build(&c, texts, 3, &t));
    /* counts: the 2, cat 2, sat 2, dog 2, a 2; ',' '!' once: dropped */
    CHECK_MSG(recur_tokenizer_size(t) == 6, "vocabulary of %d", (int)recur_tokenizer_size(t));
    CHECK(strcmp(recur_tokenizer_token(t, 0), "<unk>") == 0);
    CHECK(strcmp(recur_tokenizer_token(t, 1), "a") == 0); /* ties in byte order */
    CHECK(recur_tokenizer_lookup(t, "dog") > 0 && recur_tokenizer_lookup(t, "!") == 0);
    int32_t *ids = NULL;
    size_t n = 0, unknown = 0;
    CHECK_OK(recur_tokenizer_encode(t, "THE zebra sat", &ids, &n, &unknown));
    CHECK(n == 3 && unknown == 1 && ids[1] == RECUR_TOKEN_UNKNOWN &&
          ids[0] == recur_tokenizer_lookup(t, "the") && ids[2] == recur_tokenizer_lookup(t, "sat"));
    recur_free(ids);

    /* JSON round trip keeps the config and every id */
    char *json = NULL;
    CHECK_OK(recur_tokenizer_to_json(t, &json));
    recur_tokenizer *back = NULL;
    CHECK_OK(recur_tokenizer_from_json(json, &back));
    if (back) {
        CHECK(recur_tokenizer_size(back) == recur_tokenizer_size(t));
        for (int32_t i = 0; i < recur_tokenizer_size(t); i++)
            CHECK(strcmp(recur_tokenizer_token(back, i), recur_tokenizer_token(t, i)) == 0);
        CHECK(recur_tokenizer_get_config(back)->min_count == 2 &&
              recur_tokenizer_get_config(back)->lowercase == 1);
    }
    recur_free(json);
    recur_tokenizer_free(back);

    /* max_vocab keeps the most frequent */
    c.min_count = 1;
    c.max_vocab = 2;
    recur_tokenizer *small = NULL;
    CHECK_OK(recur_tokenizer_build(&c, texts, 3, &small));
    CHECK(recur_tokenizer_size(small) == 3);
    recur_tokenizer_free(small);

    /* malformed JSON and duplicate tokens are refused */
    CHECK_STATUS(recur_tokenizer_from_json("{\"level\": \"word\"}", &back), RECUR_E_FORMAT);
    CHECK_STATUS(recur_tokenizer_from_json("{\"level\":\"word\",\"lowercase\":true,\"min_count\":1,"
                                           "\"max_vocab\":0,\"tokens\":[\"<unk>\",\"a\",\"a\"]}",
                                           &back), RECUR_E_FORMAT);
    CHECK_ERROR_MENTIONS("twice");
    const char *dup[] = {"x", "x"};
    CHECK_STATUS(recur_tokenizer_from_tokens(&c, dup, 2, &back), RECUR_E_INVALID);
    recur_tokenizer_free(t);
}

/* ---- tables ----------------------------------------------------------------------------- */

static void test_rows(void)
{
    const char *tsv = tmp_path("rows.tsv");
    write_file(tsv, "id\tlabel\ttext\n1\tpos\tGood \"film\", really\n\n2\tneg\tBad one\r\n");
    recur_text_rows *rows = NULL;
    CHECK_OK(recur_text_rows_read(tsv, "label", "text", 1, 0, &rows));
    if (rows) {
        CHECK(rows->count == 2 && rows->label);
        CHECK(strcmp(rows->text[0], "Good \"film\", really") == 0);
        CHECK(strcmp(rows->label[1], "neg") == 0 && strcmp(rows->text[1], "Bad one") == 0);
        CHECK(rows->line[0] == 2 && rows->line[1] == 4);
    }
    recur_text_rows_free(rows);

    const char *csv = tmp_path("rows.csv");
    write_file(csv, "text,label\n\"Hello, \"\"world\"\"\nsecond line\",1\nplain,0\n");
    CHECK_OK(recur_text_rows_read(csv, "label", "text", 1, 0, &rows));
    if (rows) {
        CHECK(rows->count == 2);
        CHECK(strcmp(rows->text[0], "Hello, \"world\"\nsecond line") == 0);
        CHECK(rows->line[1] == 4);
    }
    recur_text_rows_free(rows);

    /* errors name the file and the line */
    write_file(csv, "text,label\nfine,1\n\"open quote,0\n");
    CHECK_STATUS(recur_text_rows_read(csv, "label", "text", 1, 0, &rows), RECUR_E_FORMAT);
    CHECK_ERROR_MENTIONS("rows.csv:3");
    CHECK_ERROR_MENTIONS("unterminated");
    write_file(tsv, "label\ttext\n1\tok\n0\n");
    CHECK_STATUS(recur_text_rows_read(tsv, "label", "text", 1, 0, &rows), RECUR_E_FORMAT);
    CHECK_ERROR_MENTIONS("rows.tsv:3");
    write_file(tsv, "label\ttext\n1\t  \n");
    CHECK_STATUS(recur_text_rows_read(tsv, "label", "text", 1, 0, &rows), RECUR_E_FORMAT);
    CHECK_ERROR_MENTIONS("rows.tsv:2: column 'text' is empty");
    write_file(tsv, "label\tbody\n1\tx\n");
    CHECK_STATUS(recur_text_rows_read(tsv, "label", "text", 1, 0, &rows), RECUR_E_FORMAT);
    CHECK_ERROR_MENTIONS("no column 'text'");
    CHECK_ERROR_MENTIONS("'body'");
    write_file(tsv, "lab\ttext\n1\tx\n");
    CHECK_STATUS(recur_text_rows_read(tsv, "label", "text", 1, 0, &rows), RECUR_E_FORMAT);
    CHECK_ERROR_MENTIONS("no column 'label' (its columns: 'lab', 'text')");
    write_file(tsv, "label\ttext\n\tx\n");
    CHECK_STATUS(recur_text_rows_read(tsv, "label", "text", 1, 0, &rows), RECUR_E_FORMAT);
    CHECK_ERROR_MENTIONS("rows.tsv:2: column 'label' is empty");

    /* a byte order mark before the header is skipped */
    write_file(tsv, "\xef\xbb\xbflabel\ttext\n1\tx\n");
    CHECK_OK(recur_text_rows_read(tsv, "label", "text", 1, 0, &rows));
    CHECK(rows && rows->count == 1 && strcmp(rows->label[0], "1") == 0);
    recur_text_rows_free(rows);

    /* plain text: one row per line */
    const char *txt = tmp_path("plain.txt");
    write_file(txt, "first sentence\n\nsecond one\n");
    CHECK_OK(recur_text_rows_read(txt, "label", "text", 0, 1, &rows));
    CHECK(rows && rows->count == 2 && rows->label == NULL && rows->line[1] == 3);
    recur_text_rows_free(rows);
}

/* ---- .ts files ----------------------------------------------------------------------------- */

static const char *const ts_good =
    "#A comment line of the archive\n"
    "@problemName Tiny\n"
    "@timeStamps false\n"
    "@missing false\n"
    "@univariate false\n"
    "@dimensions 2\n"
    "@equalLength false\n"
    "@classLabel true up down\n"
    "@data\n"
    "1,2,3:10,20,30:up\n"
    "\n"
    "4,5:40,50:down\n"
    "-1.5e-1,2:0.5,6E2:up\n";

static void test_ts(void)
{
    const char *path = tmp_path("tiny.ts");
    write_file(path, ts_good);
    recur_seqset *set = NULL;
    CHECK_OK(recur_ts_read(path, &set));
    if (set) {
        CHECK(set->kind == RECUR_SEQ_FEATURES && set->count == 3 && set->feature_size == 2);
        CHECK(set->class_count == 2 && strcmp(set->class_names[0], "up") == 0);
        CHECK(recur_seqset_length(set, 0) == 3 && recur_seqset_length(set, 1) == 2);
        CHECK(set->labels[0] == 0 && set->labels[1] == 1 && set->labels[2] == 0);
        /* [T, C]: step 1 of sequence 0 is (2, 20) */
        CHECK(set->features[2] == 2.0f && set->features[3] == 20.0f);
        const float *s2 = set->features + set->offsets[2] * 2;
        CHECK(s2[0] == -0.15f && s2[1] == 0.5f && s2[3] == 600.0f);
        CHECK(set->lines[1] == 12);
        float mean[2], std[2];
        size_t all[3] = {0, 1, 2};
        CHECK_OK(recur_seqset_feature_stats(set, all, 3, mean, std));
        CHECK_NEAR(mean[0], (1 + 2 + 3 + 4 + 5 - 0.15 + 2) / 7.0, 1e-5);
    }
    recur_seqset_free(set);

    struct {
        const char *body, *needle;
    } bad[] = {
        {"@classLabel true a b\n@data\n1,2:3,4:a\n1,x:3,4:b\n", "bad.ts:4: channel 1: value 2 'x'"},
        {"@classLabel true a b\n@data\n1,2:3:a\n", "bad.ts:3: channel 2 has 1 values"},
        {"@dimensions 2\n@classLabel true a b\n@data\n1,2:a\n", "bad.ts:4: 1 channel, expected 2"},
        {"@classLabel true a b\n@data\n1,2:c\n", "bad.ts:3: label 'c'"},
        {"@classLabel true a b\n@data\n:a\n", "bad.ts:3: empty sequence"},
        {"@classLabel true a b\n@data\n1,,2:a\n", "bad.ts:3: channel 1: empty value 2"},
        {"@classLabel true a b\n@data\n1,?,3:a\n", "bad.ts:3: channel 1: value 2 '?'"},
        {"@classLabel true a b\n@data\n1,2,3\n", "bad.ts:3: no ':'"},
        {"@classLabel true a b\n1,2:a\n", "bad.ts:2: expected a '@' header"},
        {"@classLabel true a b\n@data\n", "no sequences"},
        {"@data\n1,2:a\n", "bad.ts:2: no '@classLabel"},
    };
    const char *bad_path = tmp_path("bad.ts");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(bad_path, bad[i].body);
        set = (recur_seqset *)1;
        CHECK_STATUS(recur_ts_read(bad_path, &set), RECUR_E_FORMAT);
        CHECK_ERROR_MENTIONS(bad[i].needle);
        CHECK(set == NULL);
    }
    write_file(bad_path, "@timeStamps true\n@classLabel true a\n@data\n");
    CHECK_STATUS(recur_ts_read(bad_path, &set), RECUR_E_UNSUPPORTED);
    CHECK_STATUS(recur_ts_read(tmp_path("missing.ts"), &set), RECUR_E_NOT_FOUND);
}

/* ---- sets ------------------------------------------------------------------------------------- */

/* A token set from texts and labels. */
static recur_seqset *text_set(const char *const *texts, const char *const *labels, size_t n,
                              recur_tokenizer **tok, recur_token_level level)
{
    recur_text_rows rows = {n, (char **)texts, (char **)labels, NULL};
    int64_t *lines = malloc(n * sizeof *lines);
    if (!lines)
        return NULL;
    for (size_t i = 0; i < n; i++)
        lines[i] = (int64_t)i + 2;
    rows.line = lines;
    recur_tokenizer_config c = recur_tokenizer_config_default(level);
    recur_seqset *set = NULL;
    if ((*tok || !recur_tokenizer_build(&c, texts, n, tok)) &&
        recur_seqset_from_rows(&rows, *tok, NULL, 0, "mem", &set))
        set = NULL;
    free(lines);
    return set;
}

static void test_sets_and_folds(void)
{
    const char *texts[] = {"a b", "b c", "c", "a", "b b", "c a", "a a a", "b", "c c", "a c"};
    const char *labels[] = {"10", "2", "10", "2", "10", "2", "10", "2", "10", "2"};
    recur_tokenizer *tok = NULL;
    recur_seqset *set = text_set(texts, labels, 10, &tok, RECUR_TOKENS_WORDS);
    CHECK(set != NULL);
    if (!set)
        return;
    /* integer labels sort numerically: "2" before "10" */
    CHECK(set->class_count == 2 && strcmp(set->class_names[0], "2") == 0);
    CHECK(set->labels[0] == 1 && set->labels[1] == 0);
    CHECK(recur_seqset_length(set, 6) == 3);

    int fold[10];
    recur_rng rng;
    recur_rng_seed(&rng, 3);
    CHECK_OK(recur_seqset_folds(set, 5, &rng, fold));
    for (int f = 0; f < 5; f++) {
        int count[2] = {0, 0};
        for (int i = 0; i < 10; i++)
            if (fold[i] == f)
                count[set->labels[i]]++;
        CHECK_MSG(count[0] == 1 && count[1] == 1, "fold %d holds %d + %d", f, count[0], count[1]);
    }

    /* unknown label against a model's classes names the line */
    const char *bad_labels[] = {"10", "7"};
    recur_text_rows rows = {2, (char **)texts, (char **)bad_labels, (int64_t[]){5, 9}};
    recur_seqset *other = NULL;
    CHECK_STATUS(recur_seqset_from_rows(&rows, tok, (const char *const *)set->class_names, 2,
                                        "f.tsv", &other), RECUR_E_NOT_FOUND);
    CHECK_ERROR_MENTIONS("f.tsv:9: unknown label '7'");

    /* append keeps both */
    const char *more_labels[] = {"2", "10"};
    rows.label = (char **)more_labels;
    CHECK_OK(recur_seqset_from_rows(&rows, tok, (const char *const *)set->class_names, 2,
                                    "g.tsv", &other));
    CHECK_OK(recur_seqset_append(set, other));
    CHECK(set->count == 12 && set->source_count == 2 && set->sources[11] == 1 &&
          set->labels[11] == 1 && strcmp(set->source_names[1], "g.tsv") == 0);
    CHECK(set->tokens[set->offsets[10]] == set->tokens[0]);
    recur_seqset_free(other);
    recur_seqset_free(set);
    recur_tokenizer_free(tok);
}

/* ---- the classifier ---------------------------------------------------------------------------- */

static double batch_loss(recur_classifier *m, const recur_seqset *set, const size_t *index,
                         size_t n)
{
    float probs[64 * 8];
    double loss = NAN;
    recur_classifier_predict(m, set, index, n, 64, probs, &loss);
    return loss;
}

/* Central differences on every parameter (a stride over large arrays). */
static void gradient_check(recur_classifier_config cfg, const recur_seqset *set, const char *what)
{
    recur_classifier *m = NULL;
    CHECK_OK(recur_classifier_create(&cfg, &m));
    if (!m)
        return;
    recur_rng rng;
    recur_rng_seed(&rng, 11);
    recur_classifier_init(m, &rng);
    if (cfg.input == RECUR_SEQ_TOKENS) {
        /* a smaller embedding keeps the cells out of saturation */
        float *p = recur_classifier_params(m);
        const recur_param_view *e = recur_classifier_tensor_find(m, "embedding.weight");
        for (size_t i = 0; i < e->numel; i++)
            p[e->offset + i] *= 0.5f;
    }
    const size_t index[] = {0, 1, 2, 3};
    double loss = 0.0;
    recur_classifier_zero_grad(m);
    CHECK_OK(recur_classifier_train_step(m, set, index, 4, &rng, &loss));
    CHECK_NEAR(loss, batch_loss(m, set, index, 4), 1e-5);
    float *p = recur_classifier_params(m);
    const float *g = recur_classifier_grads(m);
    const size_t n = recur_classifier_size(m);
    double worst = 0.0;
    size_t worst_at = 0;
    for (size_t i = 0; i < n; i += 1 + n / 300) {
        const float saved = p[i], eps = 1e-2f;
        p[i] = saved + eps;
        const double up = batch_loss(m, set, index, 4);
        p[i] = saved - eps;
        const double down = batch_loss(m, set, index, 4);
        p[i] = saved;
        const double numeric = (up - down) / (2.0 * eps);
        const double err = fabs(numeric - g[i]) / (fabs(numeric) + fabs(g[i]) + 1e-3);
        if (err > worst) {
            worst = err;
            worst_at = i;
        }
    }
    CHECK_MSG(worst < 2e-2, "%s: gradient of parameter %zu off by %.3g (relative)", what,
              worst_at, worst);
    recur_classifier_free(m);
}

static recur_seqset *feature_set(void)
{
    const char *path = tmp_path("grad.ts");
    write_file(path, "@classLabel true a b c\n@data\n"
                     "0.1,0.5,-0.3,0.8:1,0,2,-1:a\n"
                     "0.9,-0.2:0.4,0.3:b\n"
                     "-0.5,0.2,0.7,0.1,0.3,-0.8:0.2,0.1,0,1,-1,0.5:c\n"
                     "0.6:-0.6:a\n");
    recur_seqset *set = NULL;
    recur_ts_read(path, &set);
    return set;
}

static void test_gradients(void)
{
    const char *texts[] = {"a b c d", "d", "b a a c b e", "e e c"};
    const char *labels[] = {"x", "y", "z", "x"};
    recur_tokenizer *tok = NULL;
    recur_seqset *tokens = text_set(texts, labels, 4, &tok, RECUR_TOKENS_WORDS);
    recur_seqset *features = feature_set();
    CHECK(tokens && features);
    if (!tokens || !features)
        return;
    const recur_pool pools[] = {RECUR_POOL_LAST, RECUR_POOL_MEAN, RECUR_POOL_MAX};
    const recur_cell cells[] = {RECUR_CELL_LSTM, RECUR_CELL_GRU, RECUR_CELL_RNN_TANH};
    for (int pi = 0; pi < 3; pi++)
        for (int bi = 0; bi < 2; bi++) {
            recur_classifier_config c = recur_classifier_config_default();
            c.vocab_size = recur_tokenizer_size(tok);
            c.embedding_size = 3;
            c.hidden_size = 4;
            c.num_layers = 2;
            c.bidirectional = bi;
            c.pool = pools[pi];
            c.cell = cells[(pi + bi) % 3];
            c.num_classes = 3;
            char what[96];
            snprintf(what, sizeof what, "tokens, %s, %s, %s", recur_pool_name(c.pool),
                     recur_cell_name(c.cell), bi ? "bidirectional" : "forward");
            gradient_check(c, tokens, what);
            c.input = RECUR_SEQ_FEATURES;
            c.feature_size = 2;
            snprintf(what, sizeof what, "features, %s, %s, %s", recur_pool_name(c.pool),
                     recur_cell_name(c.cell), bi ? "bidirectional" : "forward");
            gradient_check(c, features, what);
        }
    recur_seqset_free(tokens);
    recur_seqset_free(features);
    recur_tokenizer_free(tok);
}

static void test_padding_and_checkpoint(void)
{
    const char *texts[] = {"one two three four five six", "two", "three four", "five six one",
                           "one", "six five four three two one two"};
    const char *labels[] = {"p", "q", "r", "p", "q", "r"};
    recur_tokenizer *tok = NULL;
    recur_seqset *set = text_set(texts, labels, 6, &tok, RECUR_TOKENS_WORDS);
    if (!set)
        return;
    recur_classifier_config c = recur_classifier_config_default();
    c.vocab_size = recur_tokenizer_size(tok);
    c.embedding_size = 5;
    c.hidden_size = 6;
    c.num_layers = 2;
    c.bidirectional = 1;
    c.pool = RECUR_POOL_MAX;
    c.num_classes = 3;
    c.dropout = 0.3f;
    recur_classifier *m = NULL;
    CHECK_OK(recur_classifier_create(&c, &m));
    recur_rng rng;
    recur_rng_seed(&rng, 5);
    recur_classifier_init(m, &rng);
    const char *names[] = {"p", "q", "r"};
    CHECK_OK(recur_classifier_set_classes(m, names));
    const size_t all[] = {0, 1, 2, 3, 4, 5};
    float together[6 * 3], alone[6 * 3];
    CHECK_OK(recur_classifier_predict(m, set, all, 6, 6, together, NULL));
    for (size_t i = 0; i < 6; i++)
        CHECK_OK(recur_classifier_predict(m, set, &all[i], 1, 1, alone + 3 * i, NULL));
    double worst = 0.0;
    for (int i = 0; i < 18; i++)
        worst = fmax(worst, fabs(together[i] - alone[i]));
    CHECK_MSG(worst < 1e-5, "padded batch differs from one at a time by %.3g", worst);
    for (int i = 0; i < 6; i++)
        CHECK_NEAR(together[3 * i] + together[3 * i + 1] + together[3 * i + 2], 1.0, 1e-5);

    /* checkpoint round trip */
    const char *path = tmp_path("model.safetensors");
    CHECK_OK(recur_classifier_save(path, m, tok, NULL));
    recur_classifier *back = NULL;
    recur_tokenizer *back_tok = NULL;
    recur_train_state *ts = (recur_train_state *)1;
    CHECK_OK(recur_classifier_load(path, &back, &back_tok, &ts));
    CHECK(ts == NULL);
    if (back && back_tok) {
        float again[18];
        CHECK_OK(recur_classifier_predict(back, set, all, 6, 4, again, NULL));
        CHECK(memcmp(again, together, sizeof again) == 0 || worst < 1e-5);
        CHECK(strcmp(recur_classifier_class_name(back, 2), "r") == 0);
        CHECK(recur_classifier_get_config(back)->pool == RECUR_POOL_MAX &&
              recur_classifier_get_config(back)->bidirectional == 1);
        CHECK_NEAR(recur_classifier_get_config(back)->dropout, 0.3, 1e-7);
        CHECK(recur_tokenizer_size(back_tok) == recur_tokenizer_size(tok));
    }
    recur_classifier_free(back);
    recur_tokenizer_free(back_tok);

    /* a language-model checkpoint is not a classifier */
    recur_lm_config lc = recur_lm_config_default();
    lc.vocab_size = 5;
    lc.embedding_size = 5;
    lc.hidden_size = 6;
    lc.num_layers = 1;
    recur_lm *lm = NULL;
    CHECK_OK(recur_lm_create(&lc, &lm));
    recur_lm_init(lm, &rng);
    recur_vocab *vocab = NULL;
    CHECK_OK(recur_vocab_build("abcde", 5, RECUR_VOCAB_CHARS, &vocab));
    const char *lm_path = tmp_path("lm.safetensors");
    CHECK_OK(recur_checkpoint_save(lm_path, lm, vocab, NULL));
    CHECK_STATUS(recur_classifier_load(lm_path, &back, &back_tok, NULL), RECUR_E_FORMAT);
    CHECK_ERROR_MENTIONS("language model");

    /* initialisation from the language model: embedding rows and the
     * forward direction of layer 0 */
    const int32_t rows[] = {-1, 4, 0, 2, 1, 3, -1};
    recur_classifier_config uc = c;
    uc.num_layers = 1;
    uc.vocab_size = 7;
    recur_classifier *u = NULL;
    CHECK_OK(recur_classifier_create(&uc, &u));
    recur_classifier_init(u, &rng);
    int copied = 0;
    CHECK_OK(recur_classifier_load_lm(u, lm, rows, &copied));
    CHECK(copied == 4);
    const float *up = recur_classifier_params(u), *lp = recur_lm_params(lm);
    const recur_param_view *ue = recur_classifier_tensor_find(u, "embedding.weight");
    const recur_param_view *le = recur_lm_tensor_find(lm, "embedding.weight");
    CHECK(memcmp(up + ue->offset + 1 * 5, lp + le->offset + 4 * 5, 5 * sizeof(float)) == 0);
    const recur_param_view *uw = recur_classifier_tensor_find(u, "rnn.weight_hh_l0");
    const recur_param_view *lw = recur_lm_tensor_find(lm, "rnn.weight_hh_l0");
    CHECK(uw && lw && memcmp(up + uw->offset, lp + lw->offset, uw->numel * sizeof(float)) == 0);
    uc.hidden_size = 7;
    recur_classifier *wrong = NULL;
    CHECK_OK(recur_classifier_create(&uc, &wrong));
    CHECK_STATUS(recur_classifier_load_lm(wrong, lm, rows, NULL), RECUR_E_SHAPE);
    recur_classifier_free(wrong);
    recur_classifier_free(u);
    recur_lm_free(lm);
    recur_vocab_free(vocab);
    recur_classifier_free(m);
    recur_seqset_free(set);
    recur_tokenizer_free(tok);
}

/* ---- metrics ------------------------------------------------------------------------------------- */

static void test_metrics(void)
{
    const int32_t truth[] = {0, 0, 1, 1, 2, 2, 2};
    const int32_t pred[] = {0, 1, 1, 1, 2, 0, 2};
    recur_class_metrics *m = NULL;
    CHECK_OK(recur_class_metrics_compute(truth, pred, 7, 3, &m));
    if (m) {
        const int64_t want[9] = {1, 1, 0, 0, 2, 0, 1, 0, 2};
        CHECK(memcmp(m->confusion, want, sizeof want) == 0);
        CHECK_NEAR(m->accuracy, 5.0 / 7.0, 1e-12);
        CHECK_NEAR(m->precision[0], 0.5, 1e-12);
        CHECK_NEAR(m->recall[0], 0.5, 1e-12);
        CHECK_NEAR(m->precision[1], 2.0 / 3.0, 1e-12);
        CHECK_NEAR(m->recall[1], 1.0, 1e-12);
        CHECK_NEAR(m->f1[1], 0.8, 1e-12);
        CHECK_NEAR(m->precision[2], 1.0, 1e-12);
        CHECK_NEAR(m->recall[2], 2.0 / 3.0, 1e-12);
        CHECK_NEAR(m->macro_f1, (0.5 + 0.8 + 0.8) / 3.0, 1e-12);
        CHECK(m->support[2] == 3 && m->total == 7);
    }
    recur_class_metrics_free(m);
    /* a class that never occurs nor is predicted counts 0 in macro-F1 */
    CHECK_OK(recur_class_metrics_compute(truth, pred, 7, 4, &m));
    if (m) {
        CHECK(m->precision[3] == 0.0 && m->recall[3] == 0.0 && m->f1[3] == 0.0);
        CHECK_NEAR(m->macro_f1, 2.1 / 4.0, 1e-12);
    }
    recur_class_metrics_free(m);
    const int32_t out_of_range[] = {0, 3};
    CHECK_STATUS(recur_class_metrics_compute(truth, out_of_range, 2, 3, &m), RECUR_E_INVALID);
    CHECK_ERROR_MENTIONS("entry 1");
}

/* ---- baselines and training ------------------------------------------------------------------------ */

static void test_baselines(void)
{
    /* text: the label is carried by "good"/"bad" (plus bigram context) */
    const char *texts[] = {"good film", "bad film", "a good plot", "a bad plot", "good good",
                           "bad bad", "really good", "really bad", "good acting", "bad acting"};
    const char *labels[] = {"1", "0", "1", "0", "1", "0", "1", "0", "1", "0"};
    recur_tokenizer *tok = NULL;
    recur_seqset *set = text_set(texts, labels, 10, &tok, RECUR_TOKENS_WORDS);
    if (!set)
        return;
    const size_t train[] = {0, 1, 2, 3, 4, 5, 6, 7}, test[] = {8, 9};
    int32_t pred[2] = {-1, -1};
    CHECK_OK(recur_baseline_tfidf(set, train, 8, test, 2, pred));
    CHECK_MSG(pred[0] == 1 && pred[1] == 0, "tf-idf predicted %d %d", pred[0], pred[1]);
    recur_seqset_free(set);
    recur_tokenizer_free(tok);

    /* sequences: a bump up vs a dip down, shifted and stretched */
    const char *path = tmp_path("bumps.ts");
    write_file(path, "@dimensions 1\n@classLabel true up down\n@data\n"
                     "0,5,5,5,0,0,0:up\n0,-5,-5,-5,0,0,0:down\n"
                     "5,5,5,0,0,0,0,0:up\n0,0,-5,-5,-5,-5,0,0:down\n"
                     "0,4,4,0,0,0:up\n0,0,-4,-4,0,0:down\n");
    recur_seqset *seq = NULL;
    CHECK_OK(recur_ts_read(path, &seq));
    if (!seq)
        return;
    const size_t strain[] = {0, 1}, stest[] = {2, 3, 4, 5};
    int32_t p4[4];
    for (int dtw = 0; dtw < 2; dtw++) {
        CHECK_OK(recur_baseline_nearest(seq, strain, 2, stest, 4, dtw, p4));
        CHECK_MSG(p4[0] == 0 && p4[1] == 1 && p4[2] == 0 && p4[3] == 1,
                  "1-NN (%s) predicted %d %d %d %d", dtw ? "dtw" : "euclidean", p4[0], p4[1],
                  p4[2], p4[3]);
    }
    recur_seqset_free(seq);
}

/* Trains with Adam on the given set and returns the accuracy on `test`. */
static double train_and_score(recur_classifier_config c, const recur_seqset *set, size_t n_train,
                              int steps)
{
    recur_classifier *m = NULL;
    if (recur_classifier_create(&c, &m))
        return -1;
    recur_rng rng;
    recur_rng_seed(&rng, 21);
    recur_classifier_init(m, &rng);
    recur_optim_config oc = recur_optim_config_default(RECUR_OPTIM_ADAM);
    oc.lr = 0.02f;
    recur_optim *opt = NULL;
    recur_optim_create(&oc, recur_classifier_size(m), &opt);
    size_t batch[16];
    for (int s = 0; s < steps; s++) {
        for (int b = 0; b < 16; b++)
            batch[b] = (size_t)recur_rng_below(&rng, n_train);
        double loss;
        recur_classifier_zero_grad(m);
        if (recur_classifier_train_step(m, set, batch, 16, &rng, &loss))
            break;
        recur_optim_step(opt, recur_classifier_params(m), recur_classifier_grads(m), oc.lr);
    }
    const size_t n_test = set->count - n_train;
    size_t *index = malloc(n_test * sizeof *index);
    float *probs = malloc(n_test * (size_t)c.num_classes * sizeof *probs);
    for (size_t i = 0; i < n_test; i++)
        index[i] = n_train + i;
    recur_classifier_predict(m, set, index, n_test, 32, probs, NULL);
    size_t correct = 0;
    for (size_t i = 0; i < n_test; i++) {
        int best = 0;
        for (int k = 1; k < c.num_classes; k++)
            if (probs[i * (size_t)c.num_classes + (size_t)k] >
                probs[i * (size_t)c.num_classes + (size_t)best])
                best = k;
        correct += best == set->labels[n_train + i];
    }
    free(index);
    free(probs);
    recur_optim_free(opt);
    recur_classifier_free(m);
    return (double)correct / (double)n_test;
}

static void test_learns(void)
{
    /* tokens: is there an "x" anywhere in a sequence of a..e of length 2..12? */
    enum { N = 400, TRAIN = 300 };
    char *texts[N], *labels[N];
    recur_rng rng;
    recur_rng_seed(&rng, 8);
    for (int i = 0; i < N; i++) {
        const int len = 2 + (int)recur_rng_below(&rng, 11), has = i % 2;
        texts[i] = calloc(2 * (size_t)len + 1, 1);
        const int at = (int)recur_rng_below(&rng, (uint64_t)len);
        for (int t = 0; t < len; t++) {
            texts[i][2 * t] = has && t == at ? 'x' : (char)('a' + recur_rng_below(&rng, 5));
            texts[i][2 * t + 1] = ' ';
        }
        labels[i] = has ? "yes" : "no";
    }
    recur_tokenizer *tok = NULL;
    recur_seqset *set = text_set((const char *const *)texts, (const char *const *)labels, N,
                                 &tok, RECUR_TOKENS_WORDS);
    if (set) {
        recur_classifier_config c = recur_classifier_config_default();
        c.vocab_size = recur_tokenizer_size(tok);
        c.embedding_size = 8;
        c.hidden_size = 12;
        c.pool = RECUR_POOL_MAX;
        c.cell = RECUR_CELL_GRU;
        c.num_classes = 2;
        const double acc = train_and_score(c, set, TRAIN, 150);
        CHECK_MSG(acc >= 0.95, "token task: test accuracy %.3f", acc);
    }
    recur_seqset_free(set);
    recur_tokenizer_free(tok);
    for (int i = 0; i < N; i++)
        free(texts[i]);

    /* features: the sign of a slope in channel 1 of 2, lengths 5..20 */
    const char *path = tmp_path("slopes.ts");
    FILE *f = fopen(path, "w");
    if (!f)
        return;
    fprintf(f, "@dimensions 2\n@classLabel true rising falling\n@data\n");
    for (int i = 0; i < N; i++) {
        const int len = 5 + (int)recur_rng_below(&rng, 16), up = i % 2;
        for (int ch = 0; ch < 2; ch++) {
            for (int t = 0; t < len; t++) {
                const double noise = recur_rng_normal(&rng) * 0.3;
                const double v = ch == 1 ? (up ? 1 : -1) * 0.2 * t + noise + 3.0 : noise * 3;
                fprintf(f, "%s%.4f", t ? "," : "", v);
            }
            fputc(':', f);
        }
        fprintf(f, "%s\n", up ? "rising" : "falling");
    }
    fclose(f);
    recur_seqset *seq = NULL;
    CHECK_OK(recur_ts_read(path, &seq));
    if (seq) {
        recur_classifier_config c = recur_classifier_config_default();
        c.input = RECUR_SEQ_FEATURES;
        c.feature_size = 2;
        c.hidden_size = 12;
        c.pool = RECUR_POOL_LAST;
        c.num_classes = 2;
        float mean[2], std[2];
        size_t all[N];
        for (size_t i = 0; i < N; i++)
            all[i] = i;
        CHECK_OK(recur_seqset_feature_stats(seq, all, TRAIN, mean, std));
        const double acc = train_and_score(c, seq, TRAIN, 150);
        CHECK_MSG(acc >= 0.95, "feature task: test accuracy %.3f", acc);
    }
    recur_seqset_free(seq);
}

int main(void)
{
    snprintf(tmp_dir, sizeof tmp_dir, "%s/test_classify_tmp", RECUR_BINARY_DIR);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", tmp_dir);
    if (system(cmd) != 0)
        snprintf(tmp_dir, sizeof tmp_dir, "/tmp");
    recur_set_threads(1);
    test_tokenize();
    test_tokenizer_vocab();
    test_rows();
    test_ts();
    test_sets_and_folds();
    test_gradients();
    test_padding_and_checkpoint();
    test_metrics();
    test_baselines();
    test_learns();
    CHECK_DONE();
}
