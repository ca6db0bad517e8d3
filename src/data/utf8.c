/* utf8.c - strict UTF-8 decoding and encoding (RFC 3629).
 *
 * A sequence is a lead byte announcing n = 1..4 bytes followed by n - 1
 * continuation bytes 10xxxxxx. The decoder first checks that the n - 1
 * continuation bytes are there, then that the value is the shortest form
 * (>= 0x80, 0x800, 0x10000 for n = 2, 3, 4), not a surrogate and at most
 * U+10FFFF. Every error names the byte offset where the bad sequence starts.
 * Leaves out: replacement-character recovery (bad text is an error here). */
#include "internal.h"
#include "recur/data.h"

/* Length announced by a lead byte; 0 for a continuation byte (10xxxxxx),
 * -1 for 0xf8..0xff, which never occur. 0xc0, 0xc1 and 0xf5..0xf7 announce a
 * length too: what they would encode is rejected afterwards as overlong or
 * above U+10FFFF, which names the actual fault. */
static int sequence_length(unsigned char lead)
{
    if (lead < 0x80)
        return 1;
    if (lead < 0xc0)
        return 0;
    if (lead < 0xe0)
        return 2;
    if (lead < 0xf0)
        return 3;
    if (lead < 0xf8)
        return 4;
    return -1;
}

int recur_utf8_next(const char *bytes, size_t len, size_t *pos, uint32_t *codepoint)
{
    static const uint32_t shortest[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (!bytes || !pos || !codepoint)
        return recur__error(RECUR_E_INVALID, "recur_utf8_next: NULL argument");
    size_t at = *pos;
    if (at >= len)
        return recur__error(RECUR_E_INVALID,
                            "recur_utf8_next: offset %zu is past the end (%zu bytes)", at, len);
    const unsigned char *s = (const unsigned char *)bytes + at;
    int n = sequence_length(s[0]);
    if (n == 1) {
        *codepoint = s[0];
        *pos = at + 1;
        return RECUR_OK;
    }
    if (n == 0)
        return recur__error(RECUR_E_FORMAT,
                            "invalid UTF-8 at byte %zu: unexpected continuation byte 0x%02x", at,
                            s[0]);
    if (n < 0)
        return recur__error(RECUR_E_FORMAT,
                            "invalid UTF-8 at byte %zu: byte 0x%02x never occurs in UTF-8", at,
                            s[0]);
    size_t left = len - at;
    for (int k = 1; k < n; k++) {
        if ((size_t)k >= left)
            return recur__error(RECUR_E_FORMAT,
                                "invalid UTF-8 at byte %zu: truncated %d-byte sequence "
                                "(lead byte 0x%02x, input ends after %d byte%s)",
                                at, n, s[0], k, k == 1 ? "" : "s");
        if ((s[k] & 0xc0) != 0x80)
            return recur__error(
                RECUR_E_FORMAT,
                "invalid UTF-8 at byte %zu: truncated %d-byte sequence "
                "(lead byte 0x%02x, then 0x%02x at byte %zu is not a continuation byte)",
                at, n, s[0], s[k], at + (size_t)k);
    }
    /* Payload bits: 5, 4 or 3 from the lead, then 6 per continuation byte. */
    uint32_t cp = s[0] & (0x7fu >> n);
    for (int k = 1; k < n; k++)
        cp = (cp << 6) | (s[k] & 0x3fu);
    if (cp < shortest[n])
        return recur__error(RECUR_E_FORMAT,
                            "invalid UTF-8 at byte %zu: overlong %d-byte encoding of U+%04X", at, n,
                            (unsigned)cp);
    if (cp >= 0xd800 && cp <= 0xdfff)
        return recur__error(RECUR_E_FORMAT, "invalid UTF-8 at byte %zu: encoded surrogate U+%04X",
                            at, (unsigned)cp);
    if (cp > 0x10ffff)
        return recur__error(RECUR_E_FORMAT,
                            "invalid UTF-8 at byte %zu: code point U+%X is above U+10FFFF", at,
                            (unsigned)cp);
    *codepoint = cp;
    *pos = at + (size_t)n;
    return RECUR_OK;
}

int recur_utf8_decode(const char *bytes, size_t len, uint32_t **codepoints, size_t *count)
{
    if ((!bytes && len) || !count)
        return recur__error(RECUR_E_INVALID, "recur_utf8_decode: NULL argument");
    /* First pass validates and counts, so the array is allocated once at
     * its exact size and a failure allocates nothing. */
    size_t n = 0;
    uint32_t cp;
    for (size_t pos = 0; pos < len; n++) {
        int rc = recur_utf8_next(bytes, len, &pos, &cp);
        if (rc)
            return rc;
    }
    if (codepoints) {
        uint32_t *out = recur__calloc(n ? n : 1, sizeof *out);
        if (!out)
            return recur__error(RECUR_E_NOMEM, "recur_utf8_decode: cannot allocate %zu code points",
                                n);
        size_t i = 0;
        for (size_t pos = 0; pos < len; i++)
            recur_utf8_next(bytes, len, &pos, &out[i]);
        *codepoints = out;
    }
    *count = n;
    return RECUR_OK;
}

int recur_utf8_encode(uint32_t codepoint, char out[RECUR_UTF8_MAX])
{
    unsigned char *o = (unsigned char *)out;
    if ((codepoint >= 0xd800 && codepoint <= 0xdfff) || codepoint > 0x10ffff)
        return recur__error(RECUR_E_INVALID, "cannot encode U+%04X in UTF-8: %s",
                            (unsigned)codepoint,
                            codepoint > 0x10ffff ? "above U+10FFFF" : "a surrogate");
    if (codepoint < 0x80) {
        o[0] = (unsigned char)codepoint;
        return 1;
    }
    if (codepoint < 0x800) {
        o[0] = (unsigned char)(0xc0 | (codepoint >> 6));
        o[1] = (unsigned char)(0x80 | (codepoint & 0x3f));
        return 2;
    }
    if (codepoint < 0x10000) {
        o[0] = (unsigned char)(0xe0 | (codepoint >> 12));
        o[1] = (unsigned char)(0x80 | ((codepoint >> 6) & 0x3f));
        o[2] = (unsigned char)(0x80 | (codepoint & 0x3f));
        return 3;
    }
    o[0] = (unsigned char)(0xf0 | (codepoint >> 18));
    o[1] = (unsigned char)(0x80 | ((codepoint >> 12) & 0x3f));
    o[2] = (unsigned char)(0x80 | ((codepoint >> 6) & 0x3f));
    o[3] = (unsigned char)(0x80 | (codepoint & 0x3f));
    return 4;
}
