/* Unit tests: sizes, durations, booleans. */
#include "config.h"

#include <CUnit/Basic.h>
#include <stdint.h>
#include <string.h>

#include "common/error.h"
#include "common/parse.h"

#define KI 1024ULL
#define MI (KI * KI)
#define GI (MI * KI)
#define TI (GI * KI)

static uint64_t size_ok(const char *s)
{
	uint64_t v = 0xdeadbeef;
	int rc = bb_parse_size(s, &v);

	CU_ASSERT_EQUAL(rc, BB_OK);
	if (rc)
		fprintf(stderr, "bb_parse_size(\"%s\") = %s\n", s, bb_errname(rc));
	return v;
}

static int size_rc(const char *s)
{
	uint64_t v = 12345;
	int rc = bb_parse_size(s, &v);

	if (rc)
		CU_ASSERT_EQUAL(v, 12345); /* untouched on error */
	return rc;
}

static void test_size_good(void)
{
	CU_ASSERT_EQUAL(size_ok("64GiB"), 64 * GI);
	CU_ASSERT_EQUAL(size_ok("800G"), 800 * GI);
	CU_ASSERT_EQUAL(size_ok("800g"), 800 * GI);
	CU_ASSERT_EQUAL(size_ok("1.5T"), TI + TI / 2);
	CU_ASSERT_EQUAL(size_ok("4096"), 4096);
	CU_ASSERT_EQUAL(size_ok("0"), 0);
	CU_ASSERT_EQUAL(size_ok("512KiB"), 512 * KI);
	CU_ASSERT_EQUAL(size_ok("512kib"), 512 * KI);
	CU_ASSERT_EQUAL(size_ok("10MB"), 10000000ULL);
	CU_ASSERT_EQUAL(size_ok("1k"), 1024);
	CU_ASSERT_EQUAL(size_ok("1K"), 1024);
	CU_ASSERT_EQUAL(size_ok("1kB"), 1000);
	CU_ASSERT_EQUAL(size_ok("7B"), 7);
	CU_ASSERT_EQUAL(size_ok("1.5 GiB"), GI + GI / 2);
	CU_ASSERT_EQUAL(size_ok("2 M"), 2 * MI);
	CU_ASSERT_EQUAL(size_ok("0.5K"), 512);
	CU_ASSERT_EQUAL(size_ok("1.3K"), 1331);	/* 1331.2 rounded down */
	CU_ASSERT_EQUAL(size_ok("1.999999999999999999999999K"), 2047);
	CU_ASSERT_EQUAL(size_ok("18446744073709551615"), UINT64_MAX);
	CU_ASSERT_EQUAL(size_ok("15.999999999999999999E"), UINT64_MAX - 1);
	CU_ASSERT_EQUAL(size_ok("1EB"), 1000000000000000000ULL);
}

static void test_size_bad(void)
{
	uint64_t v;

	CU_ASSERT_EQUAL(bb_parse_size(NULL, &v), BB_EINVAL);
	CU_ASSERT_EQUAL(bb_parse_size("1", NULL), BB_EINVAL);
	CU_ASSERT_EQUAL(size_rc(""), BB_EPARSE);
	CU_ASSERT_EQUAL(size_rc(" 1G"), BB_EPARSE);
	CU_ASSERT_EQUAL(size_rc("1G "), BB_EPARSE);
	CU_ASSERT_EQUAL(size_rc("1 "), BB_EPARSE);
	CU_ASSERT_EQUAL(size_rc("G"), BB_EPARSE);
	CU_ASSERT_EQUAL(size_rc("1GG"), BB_EPARSE);
	CU_ASSERT_EQUAL(size_rc("1Gib5"), BB_EPARSE);
	CU_ASSERT_EQUAL(size_rc("1X"), BB_EPARSE);
	CU_ASSERT_EQUAL(size_rc("1.G"), BB_EPARSE);
	CU_ASSERT_EQUAL(size_rc(".5G"), BB_EPARSE);
	CU_ASSERT_EQUAL(size_rc("1.5"), BB_EPARSE);	/* fractional bytes */
	CU_ASSERT_EQUAL(size_rc("1.5B"), BB_EPARSE);
	CU_ASSERT_EQUAL(size_rc("+1G"), BB_EPARSE);
	CU_ASSERT_EQUAL(size_rc("1e9"), BB_EPARSE);
	CU_ASSERT_EQUAL(size_rc("0x10"), BB_EPARSE);
	CU_ASSERT_EQUAL(size_rc("1,5G"), BB_EPARSE);
	CU_ASSERT_EQUAL(size_rc("-1G"), BB_ERANGE);
	CU_ASSERT_EQUAL(size_rc("-0"), BB_ERANGE);
	CU_ASSERT_EQUAL(size_rc("-"), BB_EPARSE);
	CU_ASSERT_EQUAL(size_rc("18446744073709551616"), BB_ERANGE);
	CU_ASSERT_EQUAL(size_rc("99999999999999999999999"), BB_ERANGE);
	CU_ASSERT_EQUAL(size_rc("16EiB"), BB_ERANGE);
	CU_ASSERT_EQUAL(size_rc("17179869184G"), BB_ERANGE);
	CU_ASSERT_EQUAL(size_rc("15.9999999999999999999999E"), BB_OK);
	CU_ASSERT_EQUAL(size_rc("18446744073709551615.5K"), BB_ERANGE);
}

static void test_duration(void)
{
	uint64_t ms = 0;

	CU_ASSERT_EQUAL(bb_parse_duration("30s", &ms), BB_OK);
	CU_ASSERT_EQUAL(ms, 30000);
	CU_ASSERT_EQUAL(bb_parse_duration("5m", &ms), BB_OK);
	CU_ASSERT_EQUAL(ms, 300000);
	CU_ASSERT_EQUAL(bb_parse_duration("2h", &ms), BB_OK);
	CU_ASSERT_EQUAL(ms, 7200000);
	CU_ASSERT_EQUAL(bb_parse_duration("1d", &ms), BB_OK);
	CU_ASSERT_EQUAL(ms, 86400000);
	CU_ASSERT_EQUAL(bb_parse_duration("250ms", &ms), BB_OK);
	CU_ASSERT_EQUAL(ms, 250);
	CU_ASSERT_EQUAL(bb_parse_duration("42", &ms), BB_OK);
	CU_ASSERT_EQUAL(ms, 42000);
	CU_ASSERT_EQUAL(bb_parse_duration("1.5", &ms), BB_OK);
	CU_ASSERT_EQUAL(ms, 1500);
	CU_ASSERT_EQUAL(bb_parse_duration("0.5h", &ms), BB_OK);
	CU_ASSERT_EQUAL(ms, 1800000);
	CU_ASSERT_EQUAL(bb_parse_duration("1.5ms", &ms), BB_OK);
	CU_ASSERT_EQUAL(ms, 1);
	CU_ASSERT_EQUAL(bb_parse_duration("0", &ms), BB_OK);
	CU_ASSERT_EQUAL(ms, 0);

	CU_ASSERT_EQUAL(bb_parse_duration("", &ms), BB_EPARSE);
	CU_ASSERT_EQUAL(bb_parse_duration("s", &ms), BB_EPARSE);
	CU_ASSERT_EQUAL(bb_parse_duration("5M", &ms), BB_EPARSE);
	CU_ASSERT_EQUAL(bb_parse_duration("5S", &ms), BB_EPARSE);
	CU_ASSERT_EQUAL(bb_parse_duration("5x", &ms), BB_EPARSE);
	CU_ASSERT_EQUAL(bb_parse_duration("5sec", &ms), BB_EPARSE);
	CU_ASSERT_EQUAL(bb_parse_duration("5s junk", &ms), BB_EPARSE);
	CU_ASSERT_EQUAL(bb_parse_duration("-5s", &ms), BB_ERANGE);
	CU_ASSERT_EQUAL(bb_parse_duration("999999999999999999d", &ms), BB_ERANGE);
	CU_ASSERT_EQUAL(bb_parse_duration(NULL, &ms), BB_EINVAL);
}

static void test_bool(void)
{
	static const char *const t[] = {"yes", "YES", "true", "True", "on", "1"};
	static const char *const f[] = {"no", "No", "false", "FALSE", "off", "0"};
	static const char *const bad[] = {"", "y", "2", "yes ", "enable", "nope"};
	bool b;

	for (size_t i = 0; i < 6; i++) {
		b = false;
		CU_ASSERT_EQUAL(bb_parse_bool(t[i], &b), BB_OK);
		CU_ASSERT_TRUE(b);
		b = true;
		CU_ASSERT_EQUAL(bb_parse_bool(f[i], &b), BB_OK);
		CU_ASSERT_FALSE(b);
		CU_ASSERT_EQUAL(bb_parse_bool(bad[i], &b), BB_EPARSE);
	}
	CU_ASSERT_EQUAL(bb_parse_bool(NULL, &b), BB_EINVAL);
}

static void test_format(void)
{
	char buf[BB_SIZE_STRLEN];
	uint64_t v;

	CU_ASSERT_STRING_EQUAL(bb_format_size(0, buf, sizeof(buf)), "0 B");
	CU_ASSERT_STRING_EQUAL(bb_format_size(512, buf, sizeof(buf)), "512 B");
	CU_ASSERT_STRING_EQUAL(bb_format_size(1023, buf, sizeof(buf)), "1023 B");
	CU_ASSERT_STRING_EQUAL(bb_format_size(1024, buf, sizeof(buf)), "1 KiB");
	CU_ASSERT_STRING_EQUAL(bb_format_size(1536, buf, sizeof(buf)), "1.5 KiB");
	CU_ASSERT_STRING_EQUAL(bb_format_size(GI + GI / 2, buf, sizeof(buf)), "1.5 GiB");
	CU_ASSERT_STRING_EQUAL(bb_format_size(64 * GI, buf, sizeof(buf)), "64 GiB");
	CU_ASSERT_STRING_EQUAL(bb_format_size(MI - 1, buf, sizeof(buf)), "1.0 MiB");
	CU_ASSERT_STRING_EQUAL(bb_format_size(UINT64_MAX, buf, sizeof(buf)), "15.9 EiB");
	CU_ASSERT_EQUAL(bb_parse_size(buf, &v), BB_OK);
	/* Round trip of what we print. */
	CU_ASSERT_EQUAL(bb_parse_size(bb_format_size(3 * TI + TI / 2, buf, sizeof(buf)), &v),
			BB_OK);
	CU_ASSERT_EQUAL(v, 3 * TI + TI / 2);
	/* Truncation is safe. */
	char small[4];
	bb_format_size(64 * GI, small, sizeof(small));
	CU_ASSERT_STRING_EQUAL(small, "64 ");
}

int main(void)
{
	CU_pSuite s;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("parse", NULL, NULL);
	CU_add_test(s, "sizes", test_size_good);
	CU_add_test(s, "bad sizes", test_size_bad);
	CU_add_test(s, "durations", test_duration);
	CU_add_test(s, "booleans", test_bool);
	CU_add_test(s, "format sizes", test_format);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
