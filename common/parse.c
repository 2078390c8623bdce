#include "config.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/error.h"
#include "common/parse.h"

struct unit {
	const char *name;
	uint64_t mult;
};

#define KIB 1024ULL
#define KB 1000ULL

/* Matched case-insensitively, whole suffix only. */
static const struct unit size_units[] = {
	{"", 1},
	{"B", 1},
	{"K", KIB},
	{"M", KIB * KIB},
	{"G", KIB * KIB * KIB},
	{"T", KIB * KIB * KIB * KIB},
	{"P", KIB * KIB * KIB * KIB * KIB},
	{"E", KIB * KIB * KIB * KIB * KIB * KIB},
	{"KiB", KIB},
	{"MiB", KIB * KIB},
	{"GiB", KIB * KIB * KIB},
	{"TiB", KIB * KIB * KIB * KIB},
	{"PiB", KIB * KIB * KIB * KIB * KIB},
	{"EiB", KIB * KIB * KIB * KIB * KIB * KIB},
	{"KB", KB},
	{"MB", KB * KB},
	{"GB", KB * KB * KB},
	{"TB", KB * KB * KB * KB},
	{"PB", KB * KB * KB * KB * KB},
	{"EB", KB * KB * KB * KB * KB * KB},
};

/* Matched case-sensitively. */
static const struct unit duration_units[] = {
	{"", 1000},
	{"ms", 1},
	{"s", 1000},
	{"m", 60 * 1000},
	{"h", 60 * 60 * 1000},
	{"d", 24 * 60 * 60 * 1000},
};

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * Parse "<int>[.<frac>][ ]*<unit>" and scale it by the unit's multiplier.
 *
 * The fraction is scaled exactly without wider integers by Horner's rule from
 * the last digit: q = floor((d_i * mult + q) / 10).  Nested floors of this
 * form equal the floor of the exact value, and every intermediate stays below
 * 10 * mult <= 10 * 2^60 < 2^64.
 */
static int parse_scaled(const char *s, const struct unit *units, size_t n_units,
			int nocase, int frac_needs_unit, uint64_t *out)
{
	const char *p = s;
	const char *frac = NULL;
	size_t n_frac = 0;
	uint64_t whole = 0;
	uint64_t mult = 0;
	uint64_t part = 0;
	int found = 0;
	int rc = BB_OK;

	if (!s || !out) {
		rc = BB_EINVAL;
		goto out;
	}
	if (*p == '-') {
		rc = is_digit(p[1]) ? BB_ERANGE : BB_EPARSE;
		goto out;
	}
	if (!is_digit(*p)) {
		rc = BB_EPARSE;
		goto out;
	}
	for (; is_digit(*p); p++) {
		unsigned d = (unsigned)(*p - '0');
		if (whole > (UINT64_MAX - d) / 10) {
			rc = BB_ERANGE;
			goto out;
		}
		whole = whole * 10 + d;
	}
	if (*p == '.') {
		p++;
		frac = p;
		while (is_digit(*p))
			p++;
		n_frac = (size_t)(p - frac);
		if (n_frac == 0) {
			rc = BB_EPARSE;
			goto out;
		}
	}
	while (*p == ' ')
		p++;
	if (*p == '\0' && p != s && p[-1] == ' ') {
		rc = BB_EPARSE; /* trailing blanks without a unit */
		goto out;
	}
	for (size_t i = 0; i < n_units; i++) {
		int eq = nocase ? !strcasecmp(p, units[i].name) : !strcmp(p, units[i].name);
		if (eq) {
			mult = units[i].mult;
			found = 1;
			break;
		}
	}
	if (!found) {
		rc = BB_EPARSE;
		goto out;
	}
	if (frac && frac_needs_unit && mult == 1) {
		rc = BB_EPARSE;
		goto out;
	}
	if (mult && whole > UINT64_MAX / mult) {
		rc = BB_ERANGE;
		goto out;
	}
	whole *= mult;
	for (size_t i = n_frac; i > 0; i--)
		part = ((uint64_t)(frac[i - 1] - '0') * mult + part) / 10;
	if (whole > UINT64_MAX - part) {
		rc = BB_ERANGE;
		goto out;
	}
	*out = whole + part;
out:
	return rc;
}

int bb_parse_size(const char *s, uint64_t *out)
{
	return parse_scaled(s, size_units, sizeof(size_units) / sizeof(size_units[0]),
			    1, 1, out);
}

int bb_parse_duration(const char *s, uint64_t *out_ms)
{
	return parse_scaled(s, duration_units,
			    sizeof(duration_units) / sizeof(duration_units[0]), 0, 0,
			    out_ms);
}

int bb_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};
	int rc = BB_EPARSE;

	if (!s || !out) {
		rc = BB_EINVAL;
		goto out;
	}
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (!strcasecmp(s, yes[i])) {
			*out = true;
			rc = BB_OK;
			goto out;
		}
		if (!strcasecmp(s, no[i])) {
			*out = false;
			rc = BB_OK;
			goto out;
		}
	}
out:
	return rc;
}

char *bb_format_size(uint64_t bytes, char *buf, size_t buflen)
{
	static const char *const names[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	const int n_names = (int)(sizeof(names) / sizeof(names[0]));
	uint64_t unit = 1;
	uint64_t whole, rem, tenths;
	int u = 0;

	if (!buf || buflen == 0)
		return buf;
	while (u + 1 < n_names && bytes / unit >= 1024) {
		unit *= 1024;
		u++;
	}
	whole = bytes / unit;
	rem = bytes % unit;
	if (rem == 0) {
		snprintf(buf, buflen, "%llu %s", (unsigned long long)whole, names[u]);
		return buf;
	}
	/* rem < unit <= 2^60, so rem * 10 fits. */
	tenths = (rem * 10 + unit / 2) / unit;
	/* Rounding 15.95 EiB and up to "16.0 EiB" would print a value that
	 * bb_parse_size() rejects as out of range: round down there. */
	if (tenths == 10 && u == n_names - 1 && whole == 15)
		tenths = 9;
	if (tenths == 10) {
		whole++;
		tenths = 0;
		if (whole == 1024 && u + 1 < n_names) {
			whole = 1;
			u++;
		}
	}
	snprintf(buf, buflen, "%llu.%llu %s", (unsigned long long)whole,
		 (unsigned long long)tenths, names[u]);
	return buf;
}
