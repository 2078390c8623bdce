/* Parsing of sizes, durations and booleans as users and admins write them.
 *
 * Sizes: a decimal number, an optional fraction, optional blanks, and an
 * optional unit.  Units (letters case-insensitive):
 *
 *   (none), B             bytes
 *   K M G T P E           binary: 1024^1 .. 1024^6  (the Slurm convention:
 *                         "800G" means 800 GiB, as in --mem=800G)
 *   KiB MiB GiB TiB PiB EiB   binary: 1024^n  (IEC names, same values)
 *   KB MB GB TB PB EB     decimal: 1000^n  (SI, as disk vendors count)
 *
 * So "1k" = "1K" = "1KiB" = 1024, "10MB" = 10000000, "1.5T" = 1.5 * 2^40.
 * A fraction is rounded down to a whole byte; a fraction of a plain byte
 * count ("1.5", "1.5B") is an error.  "1.5 GiB" (what bb_format_size()
 * prints) parses back exactly.
 *
 * Durations: a number with an optional fraction and a unit among ms, s, m,
 * h, d (lowercase only, so "5M" is not silently read as 5 minutes); a bare
 * number is seconds.  The result is milliseconds, rounded down.
 *
 * Return codes: BB_OK; BB_EINVAL for NULL arguments; BB_EPARSE for an empty
 * string, junk, an unknown unit or trailing characters (leading or trailing
 * blanks included); BB_ERANGE for a negative value or one above
 * UINT64_MAX.  *out is written only on success.
 */
#ifndef BB_COMMON_PARSE_H
#define BB_COMMON_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int bb_parse_size(const char *s, uint64_t *out);
int bb_parse_duration(const char *s, uint64_t *out_ms);

/* "yes"/"no", "true"/"false", "on"/"off", "1"/"0", case-insensitive. */
int bb_parse_bool(const char *s, bool *out);

/* Human-readable binary size: "512 B", "4 KiB", "1.5 GiB" (one decimal
 * when not exact, rounded to nearest).  Always NUL-terminates a non-empty
 * buf; returns buf so it can be used as a printf argument.  A buffer of
 * BB_SIZE_STRLEN bytes always suffices. */
#define BB_SIZE_STRLEN 32
char *bb_format_size(uint64_t bytes, char *buf, size_t buflen);

#endif
