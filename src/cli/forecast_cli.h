/* forecast_cli.h - what the files of `recur forecast` share: the command's
 * entry point (forecast.c: train, eval and the dispatch; forecast_predict.c:
 * predict) and the SVG plot (forecast_plot.c). */
#ifndef RECUR_FORECAST_CLI_H
#define RECUR_FORECAST_CLI_H

#include <stddef.h>

#include "cli.h"

/* `recur forecast <train|predict|eval> [options]`. */
int cmd_forecast(int argc, char **argv);
int cmd_forecast_predict(int argc, char **argv);

/* One forecast drawn on a plot: the steps first .. first+horizon-1 of the
 * x axis (step indices of the series; >= n for the future), with median
 * and interval bounds [horizon]. */
typedef struct forecast_band {
    size_t first;
    int horizon;
    const double *median, *lo, *hi;
} forecast_band;

/* Draws the history y[from..n) (the test part from `split` on in a second
 * colour; split = n when there is none) and the bands, with the series'
 * times on the x axis, into an SVG file written by hand. Returns CLI_OK,
 * or CLI_FAILURE after printing why. */
int forecast_plot(const char *cmd, const char *path, const char *title,
                  const recur_series *series, const double *y, size_t from, size_t split,
                  size_t n, const forecast_band *bands, int band_count, double interval);

/* Splits "A,B,C" into a new array of new strings (free with
 * forecast_free_names); *count receives their number. CLI_OK or
 * CLI_USAGE after printing the problem (an empty name). */
int forecast_split_names(const char *cmd, const char *option, const char *list, char ***names,
                         int *count);
void forecast_free_names(char **names, int count);

/* Writes s as a JSON string (quotes and escapes) to out. */
void forecast_json_string(FILE *out, const char *s);

#endif
