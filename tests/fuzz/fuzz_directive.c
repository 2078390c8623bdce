/* libFuzzer target: the #BB directive parser, with and without a site
 * configuration, checking the invariants of what it returns. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/conf.h"
#include "common/directive.h"
#include "common/error.h"
#include "tests/fuzz/fuzz.h"

static const char site[] = "allowed_origins = s3://datasets/*, https://*.example.org/*\n"
			   "allowed_origins = file:///lustre/*\n"
			   "shm_limit_per_job = 64G\n"
			   "nvme_limit_per_job = 1T\n"
			   "default_replicas = 2\n";

#define JOB_DIR "/nvme/bbcache/job.77"

static void check_spec(const struct bb_job_spec *spec)
{
	const size_t jl = strlen(JOB_DIR);

	for (size_t i = 0; i < spec->n_stage_in; i++) {
		const struct bb_stage *s = &spec->stage_in[i];

		/* The local side never leaves the job directory. */
		if (strncmp(s->destination, JOB_DIR, jl) ||
		    (s->destination[jl] && s->destination[jl] != '/') ||
		    strstr(s->destination, "/../") || strstr(s->destination, "//"))
			abort();
		if (!strstr(s->source, "://") || s->line < 1)
			abort();
	}
	for (size_t i = 0; i < spec->n_stage_out; i++) {
		const struct bb_stage *s = &spec->stage_out[i];

		if (strncmp(s->source, JOB_DIR, jl) || (s->source[jl] && s->source[jl] != '/'))
			abort();
		if (!strstr(s->destination, "://"))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bb_conf conf;
	struct bb_directive_ctx ctx = {
		.job_id = "77",
		.user = "alice",
		.bb_job_dir = JOB_DIR,
	};
	struct bb_job_spec spec;
	char err[256];
	int rc;

	bb_conf_defaults(&conf);
	if (bb_conf_parse_string(&conf, site, sizeof(site) - 1, "site", err, sizeof(err)))
		abort();

	rc = bb_directives_parse((const char *)data, size, &ctx, &spec, err, sizeof(err));
	if (rc == BB_OK)
		check_spec(&spec);
	else if (strncmp(err, "line ", 5) || spec.n_stage_in || spec.n_stage_out)
		abort();
	bb_job_spec_free(&spec);

	ctx.conf = &conf;
	ctx.job_id = NULL;
	ctx.job_id_num = 123456789;
	rc = bb_directives_parse((const char *)data, size, &ctx, &spec, err, sizeof(err));
	if (rc == BB_OK) {
		check_spec(&spec);
		for (size_t i = 0; i < spec.n_stage_in; i++)
			if (!bb_conf_origin_allowed(&conf, spec.stage_in[i].source))
				abort();
		if (spec.cache.shm_bytes > conf.shm_limit_per_job)
			abort();
	}
	bb_job_spec_free(&spec);
	bb_conf_free(&conf);
	return 0;
}
