/* classify_eval.c - evaluating classifiers: the confusion matrix and the
 * metrics derived from it, and two honest baselines to report beside a
 * recurrent model on the same split:
 *   - text: TF-IDF over unigrams and bigrams of token ids, then multinomial
 *     logistic regression with an L2 penalty (scikit-learn's
 *     TfidfVectorizer(ngram_range=(1, 2)) + LogisticRegression(C=1)),
 *     fitted by Nesterov's accelerated gradient with the step 1/L from a
 *     power-iteration bound of the Hessian;
 *   - numeric sequences: 1-nearest neighbour under dynamic time warping
 *     (with early abandoning) or under the Euclidean distance of the
 *     sequences resampled to one length. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "recur/classify.h"

/* ---- metrics ------------------------------------------------------------------- */

void recur_class_metrics_free(recur_class_metrics *m)
{
    if (!m)
        return;
    recur__free(m->confusion);
    recur__free(m->precision);
    recur__free(m->recall);
    recur__free(m->f1);
    recur__free(m->support);
    recur__free(m);
}

int recur_class_metrics_compute(const int32_t *truth, const int32_t *predicted, size_t n, int K,
                                recur_class_metrics **out)
{
    if (out)
        *out = NULL;
    if ((!truth || !predicted) && n)
        return recur__error(RECUR_E_INVALID, "recur_class_metrics_compute: no labels");
    if (!out || K < 1 || K > 100000)
        return recur__error(RECUR_E_INVALID, "recur_class_metrics_compute: K = %d", K);
    for (size_t i = 0; i < n; i++)
        if (truth[i] < 0 || truth[i] >= K || predicted[i] < 0 || predicted[i] >= K)
            return recur__error(RECUR_E_INVALID, "recur_class_metrics_compute: entry %zu has "
                                "true class %d and prediction %d, outside 0..%d", i, truth[i],
                                predicted[i], K - 1);
    recur_class_metrics *m = recur__calloc(1, sizeof *m);
    const size_t k = (size_t)K;
    if (m) {
        m->confusion = recur__calloc(k * k, sizeof *m->confusion);
        m->precision = recur__calloc(k, sizeof *m->precision);
        m->recall = recur__calloc(k, sizeof *m->recall);
        m->f1 = recur__calloc(k, sizeof *m->f1);
        m->support = recur__calloc(k, sizeof *m->support);
    }
    if (!m || !m->confusion || !m->precision || !m->recall || !m->f1 || !m->support) {
        recur_class_metrics_free(m);
        return recur__error(RECUR_E_NOMEM, "out of memory for %d classes", K);
    }
    m->K = K;
    m->total = (int64_t)n;
    for (size_t i = 0; i < n; i++)
        m->confusion[(size_t)truth[i] * k + (size_t)predicted[i]]++;
    int64_t correct = 0;
    double f1_sum = 0.0;
    for (size_t c = 0; c < k; c++) {
        int64_t tp = m->confusion[c * k + c], row = 0, col = 0;
        for (size_t j = 0; j < k; j++) {
            row += m->confusion[c * k + j];
            col += m->confusion[j * k + c];
        }
        correct += tp;
        m->support[c] = row;
        m->precision[c] = col ? (double)tp / (double)col : 0.0;
        m->recall[c] = row ? (double)tp / (double)row : 0.0;
        const double ps = m->precision[c] + m->recall[c];
        m->f1[c] = ps > 0 ? 2.0 * m->precision[c] * m->recall[c] / ps : 0.0;
        f1_sum += m->f1[c];
    }
    m->accuracy = n ? (double)correct / (double)n : 0.0;
    m->macro_f1 = f1_sum / (double)K;
    *out = m;
    return RECUR_OK;
}

/* ---- TF-IDF logistic regression --------------------------------------------------- */

/* uint64 key -> feature index, open addressing. */
typedef struct keymap {
    uint64_t *keys; /* 0 marks an empty slot: keys are stored + 1 */
    int32_t *values;
    size_t cap, count;
} keymap;

static size_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (size_t)x;
}

static int keymap_grow(keymap *m)
{
    size_t cap = m->cap ? 2 * m->cap : 4096;
    uint64_t *keys = recur__calloc(cap, sizeof *keys);
    int32_t *values = recur__calloc(cap, sizeof *values);
    if (!keys || !values) {
        recur__free(keys);
        recur__free(values);
        return recur__error(RECUR_E_NOMEM, "out of memory for the n-gram table");
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i])
            continue;
        size_t j = mix(m->keys[i]) & (cap - 1);
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

static int32_t keymap_get(const keymap *m, uint64_t key)
{
    if (!m->cap)
        return -1;
    key++;
    for (size_t j = mix(key) & (m->cap - 1);; j = (j + 1) & (m->cap - 1)) {
        if (!m->keys[j])
            return -1;
        if (m->keys[j] == key)
            return m->values[j];
    }
}

/* The index of key, inserting it as the next index. */
static int keymap_intern(keymap *m, uint64_t key, int32_t *index)
{
    int32_t found = keymap_get(m, key);
    if (found >= 0) {
        *index = found;
        return RECUR_OK;
    }
    if (2 * (m->count + 1) > m->cap) {
        int status = keymap_grow(m);
        if (status)
            return status;
    }
    key++;
    size_t j = mix(key) & (m->cap - 1);
    while (m->keys[j])
        j = (j + 1) & (m->cap - 1);
    m->keys[j] = key;
    m->values[j] = (int32_t)m->count;
    *index = (int32_t)m->count++;
    return RECUR_OK;
}

static uint64_t unigram(int32_t a) { return (uint64_t)(uint32_t)a; }
static uint64_t bigram(int32_t a, int32_t b)
{
    return (1ull << 63) | ((uint64_t)(uint32_t)a << 31) | (uint64_t)(uint32_t)b;
}

/* A sparse row-major matrix: row r holds entries start[r] .. start[r+1]-1. */
typedef struct sparse {
    size_t rows;
    size_t *start;   /* [rows + 1] */
    int32_t *column; /* [nnz] */
    float *value;    /* [nnz] */
} sparse;

static void sparse_free(sparse *s)
{
    recur__free(s->start);
    recur__free(s->column);
    recur__free(s->value);
}

typedef struct entry {
    int32_t column;
    float value;
} entry;

static int by_column(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    return (x->column > y->column) - (x->column < y->column);
}

/* Counts of the known n-grams of each listed sequence (unknown ones dropped
 * when `grow_map` is 0). */
static int count_rows(const recur_seqset *set, const size_t *index, size_t n, keymap *map,
                      int grow_map, sparse *out)
{
    size_t total = 0;
    for (size_t k = 0; k < n; k++) {
        size_t len = recur_seqset_length(set, index[k]);
        total += len ? 2 * len - 1 : 0;
    }
    memset(out, 0, sizeof *out);
    out->rows = n;
    out->start = recur__calloc(n + 1, sizeof *out->start);
    out->column = recur__malloc((total ? total : 1) * sizeof *out->column);
    out->value = recur__malloc((total ? total : 1) * sizeof *out->value);
    entry *row = recur__malloc((total ? total : 1) * sizeof *row);
    int status = out->start && out->column && out->value && row
                     ? RECUR_OK
                     : recur__error(RECUR_E_NOMEM, "out of memory for the bag of words");
    size_t nnz = 0;
    for (size_t k = 0; k < n && !status; k++) {
        const size_t i = index[k];
        const int32_t *ids = set->tokens + set->offsets[i];
        const size_t len = recur_seqset_length(set, i);
        size_t m = 0;
        for (size_t t = 0; t < len && !status; t++)
            for (int g = 0; g < 2 && !status; g++) {
                if (g == 1 && t + 1 >= len)
                    break;
                const uint64_t key = g == 0 ? unigram(ids[t]) : bigram(ids[t], ids[t + 1]);
                int32_t column = -1;
                if (grow_map)
                    status = keymap_intern(map, key, &column);
                else
                    column = keymap_get(map, key);
                if (column >= 0)
                    row[m++] = (entry){column, 1.0f};
            }
        qsort(row, m, sizeof *row, by_column);
        for (size_t j = 0; j < m; j++) {
            if (j > 0 && row[j].column == row[j - 1].column) {
                out->value[nnz - 1] += 1.0f;
                continue;
            }
            out->column[nnz] = row[j].column;
            out->value[nnz] = 1.0f;
            nnz++;
        }
        out->start[k + 1] = nnz;
    }
    recur__free(row);
    if (status)
        sparse_free(out);
    return status;
}

/* tf * idf, then each row scaled to unit 2-norm. */
static void tfidf(sparse *s, const double *idf)
{
    for (size_t r = 0; r < s->rows; r++) {
        double norm = 0.0;
        for (size_t j = s->start[r]; j < s->start[r + 1]; j++) {
            s->value[j] = (float)(s->value[j] * idf[s->column[j]]);
            norm += (double)s->value[j] * s->value[j];
        }
        norm = sqrt(norm);
        for (size_t j = s->start[r]; norm > 0 && j < s->start[r + 1]; j++)
            s->value[j] = (float)(s->value[j] / norm);
    }
}

/* z[r, :] = W x_r + b for every row; W [K, F]. */
static void scores(const sparse *x, const double *W, const double *b, int K, size_t F,
                   double *z)
{
    for (size_t r = 0; r < x->rows; r++)
        for (int k = 0; k < K; k++) {
            double s = b[k];
            const double *w = W + (size_t)k * F;
            for (size_t j = x->start[r]; j < x->start[r + 1]; j++)
                s += w[x->column[j]] * x->value[j];
            z[r * (size_t)K + (size_t)k] = s;
        }
}

/* Gradient of sum_i CE_i + lambda/2 ||W||^2 at (W, b). */
static void gradient(const sparse *x, const int32_t *y, const double *W, const double *b, int K,
                     size_t F, double lambda, double *z, double *gW, double *gb)
{
    scores(x, W, b, K, F, z);
    for (size_t i = 0; i < (size_t)K * F; i++)
        gW[i] = lambda * W[i];
    memset(gb, 0, (size_t)K * sizeof *gb);
    for (size_t r = 0; r < x->rows; r++) {
        double *zr = z + r * (size_t)K, zmax = zr[0], sum = 0.0;
        for (int k = 1; k < K; k++)
            zmax = zr[k] > zmax ? zr[k] : zmax;
        for (int k = 0; k < K; k++)
            sum += exp(zr[k] - zmax);
        for (int k = 0; k < K; k++) {
            const double d = exp(zr[k] - zmax) / sum - (k == y[r] ? 1.0 : 0.0);
            gb[k] += d;
            double *g = gW + (size_t)k * F;
            for (size_t j = x->start[r]; j < x->start[r + 1]; j++)
                g[x->column[j]] += d * x->value[j];
        }
    }
}

/* Largest eigenvalue of X^T X (plus the intercept column) by power iteration. */
static double gram_norm(const sparse *x, size_t F)
{
    double *v = recur__malloc((F + 1) * sizeof *v), *u = recur__malloc((F + 1) * sizeof *u);
    double *xv = recur__malloc((x->rows ? x->rows : 1) * sizeof *xv);
    double lambda = (double)x->rows + 1.0;
    if (v && u && xv) {
        for (size_t i = 0; i <= F; i++)
            v[i] = 1.0 / sqrt((double)F + 1.0);
        for (int it = 0; it < 50; it++) {
            for (size_t r = 0; r < x->rows; r++) {
                double s = v[F];
                for (size_t j = x->start[r]; j < x->start[r + 1]; j++)
                    s += v[x->column[j]] * x->value[j];
                xv[r] = s;
            }
            memset(u, 0, (F + 1) * sizeof *u);
            for (size_t r = 0; r < x->rows; r++) {
                for (size_t j = x->start[r]; j < x->start[r + 1]; j++)
                    u[x->column[j]] += xv[r] * x->value[j];
                u[F] += xv[r];
            }
            double norm = 0.0;
            for (size_t i = 0; i <= F; i++)
                norm += u[i] * u[i];
            norm = sqrt(norm);
            if (norm <= 0)
                break;
            lambda = norm;
            for (size_t i = 0; i <= F; i++)
                v[i] = u[i] / norm;
        }
        lambda *= 1.05; /* the iteration approaches from below */
    }
    recur__free(v);
    recur__free(u);
    recur__free(xv);
    return lambda;
}

int recur_baseline_tfidf(const recur_seqset *set, const size_t *train, size_t n_train,
                         const size_t *test, size_t n_test, int32_t *predicted)
{
    if (!set || set->kind != RECUR_SEQ_TOKENS || !train || !n_train || (!test && n_test) ||
        (!predicted && n_test) || set->class_count < 2)
        return recur__error(RECUR_E_INVALID, "recur_baseline_tfidf: a labelled token set, "
                            "training and test indices are needed");
    for (size_t k = 0; k < n_train; k++)
        if (train[k] >= set->count || set->labels[train[k]] < 0)
            return recur__error(RECUR_E_INVALID, "recur_baseline_tfidf: training index %zu is "
                                "outside the set or unlabelled", train[k]);
    for (size_t k = 0; k < n_test; k++)
        if (test[k] >= set->count)
            return recur__error(RECUR_E_INVALID, "recur_baseline_tfidf: test index %zu is "
                                "outside the set", test[k]);
    const int K = set->class_count;
    keymap map = {0};
    sparse xtr = {0}, xte = {0};
    double *idf = NULL, *W = NULL, *b = NULL, *V = NULL, *vb = NULL, *gW = NULL, *gb = NULL;
    double *z = NULL, *Wn = NULL, *bn = NULL;
    int32_t *y = NULL;
    int status = count_rows(set, train, n_train, &map, 1, &xtr);
    if (status || (status = count_rows(set, test, n_test, &map, 0, &xte)))
        goto done;
    const size_t F = map.count, KF = (size_t)K * F;
    idf = recur__calloc(F ? F : 1, sizeof *idf);
    W = recur__calloc(KF ? KF : 1, sizeof *W);
    V = recur__calloc(KF ? KF : 1, sizeof *V);
    gW = recur__calloc(KF ? KF : 1, sizeof *gW);
    Wn = recur__calloc(KF ? KF : 1, sizeof *Wn);
    b = recur__calloc((size_t)K, sizeof *b);
    vb = recur__calloc((size_t)K, sizeof *vb);
    gb = recur__calloc((size_t)K, sizeof *gb);
    bn = recur__calloc((size_t)K, sizeof *bn);
    y = recur__malloc(n_train * sizeof *y);
    const size_t zn = (n_train > n_test ? n_train : n_test) * (size_t)K;
    z = recur__malloc((zn ? zn : 1) * sizeof *z);
    if (!idf || !W || !V || !gW || !Wn || !b || !vb || !gb || !bn || !y || !z) {
        status = recur__error(RECUR_E_NOMEM, "out of memory for the baseline");
        goto done;
    }
    /* document frequencies -> idf = ln((1 + N) / (1 + df)) + 1 */
    for (size_t j = 0; j < xtr.start[n_train]; j++)
        idf[xtr.column[j]] += 1.0;
    for (size_t f = 0; f < F; f++)
        idf[f] = log((1.0 + (double)n_train) / (1.0 + idf[f])) + 1.0;
    tfidf(&xtr, idf);
    tfidf(&xte, idf);
    for (size_t k = 0; k < n_train; k++)
        y[k] = set->labels[train[k]];
    /* minimise sum_i CE_i + lambda/2 ||W||^2, lambda = 1/C = 1 (intercept
     * not penalised): the softmax Hessian is at most 1/2 X^T X (+ lambda) */
    const double lambda = 1.0;
    const double L = 0.5 * gram_norm(&xtr, F) + lambda;
    const double step = 1.0 / L, q = sqrt(lambda / L);
    const double beta = (1.0 - q) / (1.0 + q);
    for (int it = 0; it < 2000; it++) {
        /* gradient at the look-ahead point V, then momentum */
        gradient(&xtr, y, V, vb, K, F, lambda, z, gW, gb);
        double g2 = 0.0;
        for (size_t i = 0; i < KF; i++) {
            Wn[i] = V[i] - step * gW[i];
            g2 += gW[i] * gW[i];
        }
        for (int k = 0; k < K; k++) {
            bn[k] = vb[k] - step * gb[k];
            g2 += gb[k] * gb[k];
        }
        for (size_t i = 0; i < KF; i++) {
            V[i] = Wn[i] + beta * (Wn[i] - W[i]);
            W[i] = Wn[i];
        }
        for (int k = 0; k < K; k++) {
            vb[k] = bn[k] + beta * (bn[k] - b[k]);
            b[k] = bn[k];
        }
        if (sqrt(g2) < 1e-6 * (double)n_train)
            break;
    }
    scores(&xte, W, b, K, F, z);
    for (size_t r = 0; r < n_test; r++) {
        int best = 0;
        for (int k = 1; k < K; k++)
            if (z[r * (size_t)K + (size_t)k] > z[r * (size_t)K + (size_t)best])
                best = k;
        predicted[r] = best;
    }
done:
    recur__free(map.keys);
    recur__free(map.values);
    sparse_free(&xtr);
    sparse_free(&xte);
    recur__free(idf);
    recur__free(W);
    recur__free(V);
    recur__free(gW);
    recur__free(Wn);
    recur__free(b);
    recur__free(vb);
    recur__free(gb);
    recur__free(bn);
    recur__free(y);
    recur__free(z);
    return status;
}

/* ---- nearest neighbour ------------------------------------------------------------- */

/* DTW distance between a [n, C] and b [m, C] with squared Euclidean step
 * costs; gives up (returns INFINITY) once every cell of a row exceeds
 * `bound`. row0, row1: [m + 1] scratch. */
static double dtw(const float *a, size_t n, const float *b, size_t m, int C, double bound,
                  double *row0, double *row1)
{
    row0[0] = 0.0;
    for (size_t j = 1; j <= m; j++)
        row0[j] = INFINITY;
    for (size_t i = 1; i <= n; i++) {
        row1[0] = INFINITY;
        double row_min = INFINITY;
        const float *x = a + (i - 1) * (size_t)C;
        for (size_t j = 1; j <= m; j++) {
            const float *w = b + (j - 1) * (size_t)C;
            double cost = 0.0;
            for (int c = 0; c < C; c++) {
                const double d = (double)x[c] - w[c];
                cost += d * d;
            }
            double best = row0[j - 1];
            if (row0[j] < best)
                best = row0[j];
            if (row1[j - 1] < best)
                best = row1[j - 1];
            row1[j] = cost + best;
            if (row1[j] < row_min)
                row_min = row1[j];
        }
        if (row_min > bound)
            return INFINITY;
        double *tmp = row0;
        row0 = row1;
        row1 = tmp;
    }
    return row0[m];
}

/* a [n, C] resampled by linear interpolation to out [T, C]. */
static void resample(const float *a, size_t n, int C, size_t T, float *out)
{
    for (size_t t = 0; t < T; t++) {
        const double pos = T > 1 ? (double)t * (double)(n - 1) / (double)(T - 1) : 0.0;
        size_t i = (size_t)pos;
        if (i >= n - 1)
            i = n > 1 ? n - 2 : 0;
        const double frac = n > 1 ? pos - (double)i : 0.0;
        for (int c = 0; c < C; c++) {
            const double lo = a[i * (size_t)C + (size_t)c];
            const double hi = n > 1 ? a[(i + 1) * (size_t)C + (size_t)c] : lo;
            out[t * (size_t)C + (size_t)c] = (float)(lo + frac * (hi - lo));
        }
    }
}

int recur_baseline_nearest(const recur_seqset *set, const size_t *train, size_t n_train,
                           const size_t *test, size_t n_test, int use_dtw, int32_t *predicted)
{
    if (!set || set->kind != RECUR_SEQ_FEATURES || !train || !n_train || (!test && n_test) ||
        (!predicted && n_test))
        return recur__error(RECUR_E_INVALID, "recur_baseline_nearest: a labelled feature set, "
                            "training and test indices are needed");
    for (size_t k = 0; k < n_train; k++)
        if (train[k] >= set->count || set->labels[train[k]] < 0)
            return recur__error(RECUR_E_INVALID, "recur_baseline_nearest: training index %zu "
                                "is outside the set or unlabelled", train[k]);
    for (size_t k = 0; k < n_test; k++)
        if (test[k] >= set->count)
            return recur__error(RECUR_E_INVALID, "recur_baseline_nearest: test index %zu is "
                                "outside the set", test[k]);
    const int C = set->feature_size;
    size_t T = 0;
    for (size_t k = 0; k < n_train; k++) {
        const size_t len = recur_seqset_length(set, train[k]);
        if (len > T)
            T = len;
    }
    for (size_t k = 0; use_dtw && k < n_test; k++) {
        const size_t len = recur_seqset_length(set, test[k]);
        if (len > T)
            T = len;
    }
    size_t per = T * (size_t)C;
    double *row0 = recur__malloc((T + 1) * sizeof *row0);
    double *row1 = recur__malloc((T + 1) * sizeof *row1);
    float *resampled = use_dtw ? NULL : recur__malloc((n_train + 1) * per * sizeof *resampled);
    if (!row0 || !row1 || (!use_dtw && !resampled)) {
        recur__free(row0);
        recur__free(row1);
        recur__free(resampled);
        return recur__error(RECUR_E_NOMEM, "out of memory for the nearest-neighbour baseline");
    }
    for (size_t k = 0; !use_dtw && k < n_train; k++)
        resample(set->features + set->offsets[train[k]] * (size_t)C,
                 recur_seqset_length(set, train[k]), C, T, resampled + k * per);
    for (size_t q = 0; q < n_test; q++) {
        const size_t i = test[q];
        const float *a = set->features + set->offsets[i] * (size_t)C;
        const size_t n = recur_seqset_length(set, i);
        float *query = resampled ? resampled + n_train * per : NULL;
        if (query)
            resample(a, n, C, T, query);
        double best = INFINITY;
        int32_t label = set->labels[train[0]];
        for (size_t k = 0; k < n_train; k++) {
            double d;
            if (use_dtw) {
                const size_t j = train[k];
                d = dtw(a, n, set->features + set->offsets[j] * (size_t)C,
                        recur_seqset_length(set, j), C, best, row0, row1);
            } else {
                d = 0.0;
                const float *r = resampled + k * per;
                for (size_t e = 0; e < per && d < best; e++) {
                    const double diff = (double)query[e] - r[e];
                    d += diff * diff;
                }
            }
            if (d < best) {
                best = d;
                label = set->labels[train[k]];
            }
        }
        predicted[q] = label;
    }
    recur__free(row0);
    recur__free(row1);
    recur__free(resampled);
    return RECUR_OK;
}
