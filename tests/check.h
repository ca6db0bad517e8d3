/* check.h - the few assertion macros the test executables share. Every
 * failed check prints the file, line, both values and the tolerance, and
 * bumps a counter; CHECK_DONE() prints "N passed, N failed" and makes the
 * executable exit non-zero when anything failed. */
#ifndef RECUR_TEST_CHECK_H
#define RECUR_TEST_CHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (cond) {                                                                    \
            check_passed++;                                                            \
        } else {                                                                       \
            check_failed++;                                                            \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
        }                                                                              \
    } while (0)

#define CHECK_MSG(cond, ...)                                                           \
    do {                                                                               \
        if (cond) {                                                                    \
            check_passed++;                                                            \
        } else {                                                                       \
            check_failed++;                                                            \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);   \
            fprintf(stderr, __VA_ARGS__);                                              \
            fputc('\n', stderr);                                                       \
        }                                                                              \
    } while (0)

/* Status equality: prints both codes and the library's last message. */
#define CHECK_STATUS(expr, want)                                                       \
    do {                                                                               \
        int check_got_ = (expr);                                                       \
        if (check_got_ == (want)) {                                                    \
            check_passed++;                                                            \
        } else {                                                                       \
            check_failed++;                                                            \
            fprintf(stderr, "%s:%d: %s returned %d, expected %d (%s)\n", __FILE__,     \
                    __LINE__, #expr, check_got_, (int)(want), recur_last_error());     \
        }                                                                              \
    } while (0)

#define CHECK_OK(expr) CHECK_STATUS(expr, 0)

#define CHECK_NEAR(a, b, tol)                                                          \
    do {                                                                               \
        double check_a_ = (a), check_b_ = (b), check_t_ = (tol);                       \
        if (fabs(check_a_ - check_b_) <= check_t_) {                                   \
            check_passed++;                                                            \
        } else {                                                                       \
            check_failed++;                                                            \
            fprintf(stderr, "%s:%d: %s = %.9g vs %s = %.9g, |diff| %.3g > tol %.3g\n",  \
                    __FILE__, __LINE__, #a, check_a_, #b, check_b_,                    \
                    fabs(check_a_ - check_b_), check_t_);                              \
        }                                                                              \
    } while (0)

/* Substring of the last error message. */
#define CHECK_ERROR_MENTIONS(needle)                                                   \
    CHECK_MSG(strstr(recur_last_error(), (needle)) != NULL,                            \
              "last error \"%s\" lacks \"%s\"", recur_last_error(), (needle))

#define CHECK_DONE()                                                                   \
    do {                                                                               \
        printf("%d passed, %d failed\n", check_passed, check_failed);                  \
        return check_failed ? 1 : (check_passed ? 0 : 1);                              \
    } while (0)

#endif
