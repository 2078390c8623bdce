/* Unit tests: the error table and logging. */
#include "config.h"

#include <CUnit/Basic.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"

static void test_table(void)
{
	CU_ASSERT_EQUAL(BB_OK, 0);
	CU_ASSERT_EQUAL(bb_errno(BB_ENOSPC), ENOSPC);
	CU_ASSERT_EQUAL(bb_errno(BB_ENOMEM), ENOMEM);
	CU_ASSERT_STRING_EQUAL(bb_errname(BB_ENOSPC), "BB_ENOSPC");
	CU_ASSERT_STRING_EQUAL(bb_strerror(BB_ENOSPC), "no space left");
	CU_ASSERT_STRING_EQUAL(bb_strerror(-1), "unknown error");
	CU_ASSERT_STRING_EQUAL(bb_strerror(BB_NERRORS), "unknown error");
	CU_ASSERT_EQUAL(bb_errno(BB_NERRORS + 5), EIO);
	for (int i = 1; i < BB_NERRORS; i++) {
		CU_ASSERT(bb_errno(i) != 0);
		CU_ASSERT(strlen(bb_strerror(i)) > 0);
	}
}

static void test_log_levels(void)
{
	CU_ASSERT_EQUAL(bb_log_level_parse("debug"), BB_LOG_DEBUG);
	CU_ASSERT_EQUAL(bb_log_level_parse("WARNING"), BB_LOG_WARN);
	CU_ASSERT_EQUAL(bb_log_level_parse("warn"), BB_LOG_WARN);
	CU_ASSERT_EQUAL(bb_log_level_parse("loud"), -1);
	CU_ASSERT_EQUAL(bb_log_level_parse(NULL), -1);
	CU_ASSERT_STRING_EQUAL(bb_log_level_name(BB_LOG_ERROR), "error");
}

static void test_log_file(void)
{
	char path[] = "/tmp/bbcache-test-log-XXXXXX";
	int fd = mkstemp(path);
	CU_ASSERT_FATAL(fd >= 0);
	close(fd);
	CU_ASSERT_EQUAL(bb_log_open("bbtest", BB_LOG_INFO, BB_LOG_FILE, path), BB_OK);
	bb_log(BB_LOG_ERROR, "unit", "value %d", 42);
	bb_log(BB_LOG_DEBUG, "unit", "hidden %d", 7);
	bb_log_close();

	char buf[512] = {0};
	fd = open(path, O_RDONLY);
	CU_ASSERT_FATAL(fd >= 0);
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	unlink(path);
	CU_ASSERT(n > 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "unit: error: value 42"));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "bbtest["));
	CU_ASSERT_PTR_NULL(strstr(buf, "hidden"));
}

int main(void)
{
	CU_pSuite s;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("error+log", NULL, NULL);
	CU_add_test(s, "error table", test_table);
	CU_add_test(s, "log levels", test_log_levels);
	CU_add_test(s, "log to file", test_log_file);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
