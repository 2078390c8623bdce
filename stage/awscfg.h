/* awscfg: S3 credentials, region and endpoint, resolved the way the AWS
 * CLI (botocore) does, from the environment, ~/.aws/credentials,
 * ~/.aws/config and the site's credentials_file.
 *
 * Secrets never reach a log line or an error message: messages name the
 * file, the line and the profile, never a value.
 */
#ifndef BB_STAGE_AWSCFG_H
#define BB_STAGE_AWSCFG_H

#include <stddef.h>

/* Larger files are refused (a credentials file is a few hundred bytes). */
#define BB_AWS_FILE_MAX (1024 * 1024)

struct bb_aws_cfg {
	char profile[128];
	char access_key[256];
	char secret_key[256];
	char session_token[4096];
	char region[64];
	char endpoint_url[1024];	/* "" = AWS: https://BUCKET.s3.REGION.amazonaws.com */
	/* 1 path-style, 0 virtual-host, -1 auto: path-style when an
	 * endpoint_url is set, else virtual-host (see bb_aws_path_style()) */
	int path_style;
	/* where the credentials came from, e.g. "environment",
	 * "~/.aws/credentials [prod]" or "none", for messages */
	char source[256];
};

struct bb_aws_opts {
	const char *profile;		/* NULL: $AWS_PROFILE, else "default" */
	const char *home;		/* NULL: $HOME */
	const char *credentials_file;	/* bbcache.conf credentials_file, or NULL */
	const char *endpoint_url;	/* bbcache.conf/CLI override, or NULL */
	const char *region;		/* override, or NULL */
	int no_credentials;		/* look for none: requests go unsigned (--no-sign-request) */
	char **envp;			/* NULL: environ; lets tests inject one */
};

/*
 * Resolve into out (zeroed first).  Order, as the AWS CLI:
 *
 * credentials: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN
 *   or AWS_SECURITY_TOKEN), skipped when opts->profile is given; then
 *   section [PROFILE] of $AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials);
 *   then [profile PROFILE] (or [default]) of $AWS_CONFIG_FILE
 *   (~/.aws/config); then [PROFILE] or [default] of opts->credentials_file.
 *   None at all: BB_OK with empty keys (anonymous requests) and source
 *   "none".  With opts->no_credentials none is looked for (the AWS CLI's
 *   --no-sign-request): empty keys; region and endpoint as below.
 * region: opts->region, AWS_REGION, AWS_DEFAULT_REGION, the profile's
 *   `region`, "us-east-1".
 * endpoint: opts->endpoint_url, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the
 *   profile's `s3 =` subsection endpoint_url, its `services = NAME`
 *   section [services NAME] `s3 =` endpoint_url, its top-level
 *   endpoint_url, else "" (AWS).  AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true
 *   skips all but opts->endpoint_url.
 * addressing: the profile's `s3 =` addressing_style = path|virtual|auto.
 *
 * A profile's settings are those of the config file's section, overridden
 * by the same-named section of the shared credentials file (botocore
 * merges them so).  Files use the INI syntax of Python's configparser:
 * `key = value` or `key: value`, keys without case, full-line # and ;
 * comments (no trailing ones), a line indented deeper than the key above
 * continues it (nested `name = value` settings when the key's own value is
 * empty), CRLF, a UTF-8 BOM; a duplicate section or key is an error.  A
 * missing file counts as empty.
 *
 * Errors (err says "FILE:LINE: why" or names the variable or profile):
 * BB_EPARSE a malformed file or value; BB_EINVAL partial credentials (a key
 * id without its secret) or a bad profile name; BB_ENOENT a profile other
 * than "default" named explicitly or by AWS_PROFILE that no file defines,
 * or a missing opts->credentials_file when it is needed; BB_ENOTSUP a
 * profile that uses role_arn, SSO, web identity or credential_process;
 * BB_ERANGE a value too long for its field; BB_EPERM/BB_ESYS/BB_ETOOBIG
 * reading a file (more than BB_AWS_FILE_MAX bytes).  On failure out holds
 * no secret.  A credentials file that group or others may read or write draws a
 * bb_warn() naming the file when credentials are taken from it.
 */
int bb_aws_resolve(const struct bb_aws_opts *o, struct bb_aws_cfg *out, char *err,
		   size_t errlen);

/* 1 for path-style requests, 0 for virtual-host ones (resolving auto). */
int bb_aws_path_style(const struct bb_aws_cfg *c);

/* explicit_bzero the secrets (access key, secret key, session token). */
void bb_aws_cfg_wipe(struct bb_aws_cfg *c);

#endif
