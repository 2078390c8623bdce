/* libFuzzer target: the bbcache.conf parser, the origin matcher and the
 * size/duration/bool parsers. */
#include "config.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/conf.h"
#include "common/error.h"
#include "common/parse.h"
#include "tests/fuzz/fuzz.h"

static const char *const urls[] = {
	"s3://datasets/imagenet/train/",
	"https://cdn.example.org/a/b",
	"file:///lustre/proj/x",
	"http://evil.com/x.example.org/",
};

static const char origins[] = "allowed_origins = s3://d/* https://*.e.org/*\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bb_conf conf;
	char err[256];
	char *s;
	uint64_t v;
	bool b;
	int rc;

	bb_conf_defaults(&conf);
	rc = bb_conf_parse_string(&conf, (const char *)data, size, "fuzz.conf", err, sizeof(err));
	if (rc && strncmp(err, "fuzz.conf:", 10))
		abort();
	if (rc == BB_OK) {
		if (conf.block_size & (conf.block_size - 1))
			abort();
		if (conf.shm_limit_per_job && conf.shm_limit_per_node &&
		    conf.shm_limit_per_job > conf.shm_limit_per_node)
			abort();
	}
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++)
		(void)bb_conf_origin_allowed(&conf, urls[i]);
	bb_conf_free(&conf);

	/* The whole input as one string for the scalar parsers and as a URL. */
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (bb_parse_size(s, &v) == BB_OK) {
		char buf[BB_SIZE_STRLEN];
		uint64_t back;

		/* what we print parses again */
		if (bb_parse_size(bb_format_size(v, buf, sizeof(buf)), &back))
			abort();
	}
	(void)bb_parse_duration(s, &v);
	(void)bb_parse_bool(s, &b);
	bb_conf_defaults(&conf);
	if (bb_conf_parse_string(&conf, origins, sizeof(origins) - 1, "x", err, sizeof(err)))
		abort();
	(void)bb_conf_origin_allowed(&conf, s);
	bb_conf_free(&conf);
	free(s);
	return 0;
}
