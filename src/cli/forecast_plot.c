/* forecast_plot.c - the picture of a forecast: an SVG file written by hand
 * (it is text): the history as a line (the test part in black), each
 * forecast's interval as a shaded band with its median as a line, a dashed
 * line where the forecasts start, axes with round-number ticks on y and the
 * series' own times on x, a title and a legend. Gaps (NaN) break the line. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "forecast_cli.h"

#define WIDTH 960.0
#define HEIGHT 420.0
#define LEFT 80.0
#define RIGHT 24.0
#define TOP 44.0
#define BOTTOM 56.0

typedef struct canvas {
    FILE *f;
    double x0, x1, y0, y1; /* data ranges: steps and values */
} canvas;

static double px(const canvas *c, double step)
{
    return LEFT + (step - c->x0) / (c->x1 - c->x0) * (WIDTH - LEFT - RIGHT);
}

static double py(const canvas *c, double v)
{
    return TOP + (c->y1 - v) / (c->y1 - c->y0) * (HEIGHT - TOP - BOTTOM);
}

static void xml_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* 1, 2 or 5 times a power of ten, near range / 5. */
static double nice_step(double range)
{
    const double raw = range / 5.0, power = pow(10.0, floor(log10(raw))), f = raw / power;
    return power * (f < 1.5 ? 1.0 : f < 3.5 ? 2.0 : f < 7.5 ? 5.0 : 10.0);
}

/* A polyline of values[0..count) at steps first.., broken at NaN. */
static void line(const canvas *c, size_t first, const double *values, size_t count,
                 const char *style)
{
    int open = 0;
    for (size_t i = 0; i < count; i++) {
        if (isnan(values[i])) {
            if (open)
                fprintf(c->f, "\"/>\n");
            open = 0;
            continue;
        }
        if (!open)
            fprintf(c->f, "<polyline %s points=\"", style);
        fprintf(c->f, "%s%.1f,%.1f", open ? " " : "", px(c, (double)(first + i)),
                py(c, values[i]));
        open = 1;
    }
    if (open)
        fprintf(c->f, "\"/>\n");
}

static double time_of(const recur_series *s, size_t n, size_t step)
{
    const double *times = recur_series_times(s);
    if (step < n)
        return times ? times[step] : (double)step;
    return recur_series_time_after(s, (int)(step - n + 1));
}

int forecast_plot(const char *cmd, const char *path, const char *title,
                  const recur_series *series, const double *y, size_t from, size_t split,
                  size_t n, const forecast_band *bands, int band_count, double interval)
{
    canvas c = {NULL, (double)from, (double)(n ? n - 1 : 0), INFINITY, -INFINITY};
    for (size_t i = from; i < n; i++)
        if (!isnan(y[i])) {
            c.y0 = fmin(c.y0, y[i]);
            c.y1 = fmax(c.y1, y[i]);
        }
    for (int b = 0; b < band_count; b++) {
        c.x1 = fmax(c.x1, (double)(bands[b].first + (size_t)bands[b].horizon - 1));
        for (int k = 0; k < bands[b].horizon; k++) {
            c.y0 = fmin(c.y0, fmin(bands[b].lo[k], bands[b].median[k]));
            c.y1 = fmax(c.y1, fmax(bands[b].hi[k], bands[b].median[k]));
        }
    }
    if (!isfinite(c.y0) || !isfinite(c.y1))
        c.y0 = 0, c.y1 = 1;
    if (c.y1 - c.y0 < 1e-12)
        c.y0 -= 1, c.y1 += 1;
    const double pad = 0.05 * (c.y1 - c.y0);
    c.y0 -= pad;
    c.y1 += pad;
    if (c.x1 <= c.x0)
        c.x1 = c.x0 + 1;
    c.f = fopen(path, "w");
    if (!c.f)
        return cli_fail(cmd, "Choose another --plot file.", "cannot write %s", path);
    FILE *f = c.f;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
            "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n", WIDTH,
            HEIGHT, WIDTH, HEIGHT);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%.0f\" y=\"24\" font-size=\"15\">", LEFT);
    xml_text(f, title);
    fprintf(f, "</text>\n");
    /* y grid and labels */
    const double step = nice_step(c.y1 - c.y0);
    for (double v = ceil(c.y0 / step) * step; v <= c.y1; v += step) {
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>\n",
                LEFT, WIDTH - RIGHT, py(&c, v), py(&c, v));
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" fill=\"#555\">%g</text>\n",
                LEFT - 6, py(&c, v) + 4, fabs(v) < step * 1e-9 ? 0.0 : v);
    }
    /* x ticks: six of the series' times */
    for (int i = 0; i <= 5; i++) {
        const size_t s = (size_t)llround(c.x0 + (c.x1 - c.x0) * i / 5.0);
        char label[64];
        recur_series_format_time(series, time_of(series, n, s), label, sizeof label);
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#999\"/>\n",
                px(&c, (double)s), px(&c, (double)s), HEIGHT - BOTTOM, HEIGHT - BOTTOM + 5);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" fill=\"#555\">",
                px(&c, (double)s), HEIGHT - BOTTOM + 20,
                i == 0 ? "start" : i == 5 ? "end" : "middle");
        xml_text(f, label);
        fprintf(f, "</text>\n");
    }
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
            "stroke=\"#999\"/>\n", LEFT, TOP, WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    /* bands, then lines on top */
    for (int b = 0; b < band_count; b++) {
        const forecast_band *band = &bands[b];
        fprintf(f, "<polygon fill=\"#9ecae1\" fill-opacity=\"0.55\" stroke=\"none\" points=\"");
        for (int k = 0; k < band->horizon; k++)
            fprintf(f, "%s%.1f,%.1f", k ? " " : "", px(&c, (double)(band->first + (size_t)k)),
                    py(&c, band->hi[k]));
        for (int k = band->horizon - 1; k >= 0; k--)
            fprintf(f, " %.1f,%.1f", px(&c, (double)(band->first + (size_t)k)),
                    py(&c, band->lo[k]));
        fprintf(f, "\"/>\n");
    }
    const size_t cut = split < from ? from : split > n ? n : split;
    line(&c, from, y + from, cut - from, "fill=\"none\" stroke=\"#555\" stroke-width=\"1.2\"");
    if (cut < n)
        line(&c, cut > from ? cut - 1 : cut, y + (cut > from ? cut - 1 : cut),
             n - (cut > from ? cut - 1 : cut), "fill=\"none\" stroke=\"#000\" "
             "stroke-width=\"1.4\"");
    for (int b = 0; b < band_count; b++)
        line(&c, bands[b].first, bands[b].median, (size_t)bands[b].horizon,
             "fill=\"none\" stroke=\"#08519c\" stroke-width=\"1.8\"");
    const double xs = px(&c, (double)cut - 0.5);
    fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#c00\" "
            "stroke-dasharray=\"4 4\"/>\n", xs, xs, TOP, HEIGHT - BOTTOM);
    /* legend */
    const char *labels[4] = {"history", cut < n ? "actual (test part)" : NULL,
                             "forecast (median)", NULL};
    char interval_label[64];
    snprintf(interval_label, sizeof interval_label, "%g%% interval", 100.0 * interval);
    labels[3] = interval_label;
    const char *colours[4] = {"#555", "#000", "#08519c", "#9ecae1"};
    double x = LEFT + 10;
    for (int i = 0; i < 4; i++) {
        if (!labels[i])
            continue;
        if (i == 3)
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"18\" height=\"10\" fill=\"%s\"/>\n",
                    x, TOP + 8, colours[i]);
        else
            fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                    "stroke-width=\"2\"/>\n", x, x + 18, TOP + 13, TOP + 13, colours[i]);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">", x + 24, TOP + 17);
        xml_text(f, labels[i]);
        fprintf(f, "</text>\n");
        x += 40 + 7.0 * (double)strlen(labels[i]);
    }
    fprintf(f, "</svg>\n");
    if (fclose(f) != 0)
        return cli_fail(cmd, "", "cannot write %s", path);
    return CLI_OK;
}
