/* Unit tests: S3 XML parsing (on responses captured from s3rver and in the
 * shapes AWS documents), the CompleteMultipartUpload body, SigV4 URI
 * encoding, ISO 8601 and HTTP dates. */
#include "config.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "stage/s3xml.h"

static char err[512];

/* Captured from s3rver 3.7 (npm) with curl, bucket "bkt"; s3rver puts its
 * ListBucketResult in a wrong namespace and ignores encoding-type=url. */
static const char fx_list_page1[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<ListBucketResult xmlns=\"http://doc.s3.amazonaws.com/2006-03-01/\">"
	"<Name>bkt</Name>"
	"<Prefix>"
	"</Prefix>"
	"<NextContinuationToken>1nOBITEMvfyq4KgOOwo4jCBz02romPmR68VV20wr/Zs=</NextContinuationToken>"
	"<KeyCount>3</KeyCount>"
	"<MaxKeys>3</MaxKeys>"
	"<IsTruncated>true</IsTruncated>"
	"<Contents>"
	"<Key>a.txt</Key>"
	"<LastModified>2026-11-25T11:34:41.000Z</LastModified>"
	"<ETag>&quot;764efa883dda1e11db47671c4a3bbd9e&quot;</ETag>"
	"<Size>3</Size>"
	"<StorageClass>STANDARD</StorageClass>"
	"</Contents>"
	"<Contents>"
	"<Key>dir/b.bin</Key>"
	"<LastModified>2026-11-25T11:34:41.000Z</LastModified>"
	"<ETag>&quot;764efa883dda1e11db47671c4a3bbd9e&quot;</ETag>"
	"<Size>3</Size>"
	"<StorageClass>STANDARD</StorageClass>"
	"</Contents>"
	"<Contents>"
	"<Key>dir/sub/c</Key>"
	"<LastModified>2026-11-25T11:34:42.000Z</LastModified>"
	"<ETag>&quot;764efa883dda1e11db47671c4a3bbd9e&quot;</ETag>"
	"<Size>3</Size>"
	"<StorageClass>STANDARD</StorageClass>"
	"</Contents>"
	"</ListBucketResult>";

static const char fx_list_page2[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<ListBucketResult xmlns=\"http://doc.s3.amazonaws.com/2006-03-01/\">"
	"<Name>bkt</Name>"
	"<Prefix>"
	"</Prefix>"
	"<ContinuationToken>1nOBITEMvfyq4KgOOwo4jCBz02romPmR68VV20wr/Zs=</ContinuationToken>"
	"<NextContinuationToken>1jt8kas75jxG5Ff9RVwUlkdq2Fp6QO9iRbGh1f+mmIop27wCBS+NNg==</NextContinuationToken>"
	"<KeyCount>3</KeyCount>"
	"<MaxKeys>3</MaxKeys>"
	"<IsTruncated>true</IsTruncated>"
	"<Contents>"
	"<Key>plus+sign</Key>"
	"<LastModified>2026-11-25T11:34:44.000Z</LastModified>"
	"<ETag>&quot;764efa883dda1e11db47671c4a3bbd9e&quot;</ETag>"
	"<Size>3</Size>"
	"<StorageClass>STANDARD</StorageClass>"
	"</Contents>"
	"<Contents>"
	"<Key>q&#x27;&quot;&lt;&gt;.txt</Key>"
	"<LastModified>2026-11-25T11:34:44.000Z</LastModified>"
	"<ETag>&quot;764efa883dda1e11db47671c4a3bbd9e&quot;</ETag>"
	"<Size>3</Size>"
	"<StorageClass>STANDARD</StorageClass>"
	"</Contents>"
	"<Contents>"
	"<Key>sp ace &amp; amp.txt</Key>"
	"<LastModified>2026-11-25T11:34:43.000Z</LastModified>"
	"<ETag>&quot;764efa883dda1e11db47671c4a3bbd9e&quot;</ETag>"
	"<Size>3</Size>"
	"<StorageClass>STANDARD</StorageClass>"
	"</Contents>"
	"</ListBucketResult>";

static const char fx_list_delim[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<ListBucketResult xmlns=\"http://doc.s3.amazonaws.com/2006-03-01/\">"
	"<Name>bkt</Name>"
	"<Prefix>"
	"</Prefix>"
	"<StartAfter>a.txt</StartAfter>"
	"<KeyCount>4</KeyCount>"
	"<MaxKeys>1000</MaxKeys>"
	"<Delimiter>/</Delimiter>"
	"<IsTruncated>false</IsTruncated>"
	"<Contents>"
	"<Key>plus+sign</Key>"
	"<LastModified>2026-11-25T11:34:44.000Z</LastModified>"
	"<ETag>&quot;764efa883dda1e11db47671c4a3bbd9e&quot;</ETag>"
	"<Size>3</Size>"
	"<StorageClass>STANDARD</StorageClass>"
	"</Contents>"
	"<Contents>"
	"<Key>q&#x27;&quot;&lt;&gt;.txt</Key>"
	"<LastModified>2026-11-25T11:34:44.000Z</LastModified>"
	"<ETag>&quot;764efa883dda1e11db47671c4a3bbd9e&quot;</ETag>"
	"<Size>3</Size>"
	"<StorageClass>STANDARD</StorageClass>"
	"</Contents>"
	"<Contents>"
	"<Key>sp ace &amp; amp.txt</Key>"
	"<LastModified>2026-11-25T11:34:43.000Z</LastModified>"
	"<ETag>&quot;764efa883dda1e11db47671c4a3bbd9e&quot;</ETag>"
	"<Size>3</Size>"
	"<StorageClass>STANDARD</StorageClass>"
	"</Contents>"
	"<Contents>"
	"<Key>uni-é漢字.dat</Key>"
	"<LastModified>2026-11-25T11:34:43.000Z</LastModified>"
	"<ETag>&quot;764efa883dda1e11db47671c4a3bbd9e&quot;</ETag>"
	"<Size>3</Size>"
	"<StorageClass>STANDARD</StorageClass>"
	"</Contents>"
	"<CommonPrefixes>"
	"<Prefix>dir/</Prefix>"
	"</CommonPrefixes>"
	"</ListBucketResult>";

static const char fx_list_empty[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<ListBucketResult xmlns=\"http://doc.s3.amazonaws.com/2006-03-01/\">"
	"<Name>bkt</Name>"
	"<Prefix>nothing/</Prefix>"
	"<KeyCount>0</KeyCount>"
	"<MaxKeys>1000</MaxKeys>"
	"<IsTruncated>false</IsTruncated>"
	"</ListBucketResult>";

static const char fx_nosuchkey[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<Error>"
	"<Code>NoSuchKey</Code>"
	"<Message>The specified key does not exist.</Message>"
	"<Key>missing-key</Key>"
	"</Error>";

static const char fx_nosuchbucket[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<Error>"
	"<Code>NoSuchBucket</Code>"
	"<Message>The specified bucket does not exist</Message>"
	"<BucketName>nobucket</BucketName>"
	"</Error>";

static const char fx_internal[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<Error>"
	"<Code>InternalError</Code>"
	"<Message>We encountered an internal error. Please try again.</Message>"
	"</Error>";

static const char fx_initiate[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<InitiateMultipartUploadResult>"
	"<Bucket>bkt</Bucket>"
	"<Key>big.bin</Key>"
	"<UploadId>062afd469330742b1ea53e31a5202989</UploadId>"
	"</InitiateMultipartUploadResult>";

static const char fx_complete[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<CompleteMultipartUploadResult>"
	"<Location>http://127.0.0.1:49571/bkt/m2.bin</Location>"
	"<Bucket>bkt</Bucket>"
	"<Key>m2.bin</Key>"
	"<ETag>&quot;a09f2dca1956fdece7cf092981e0f109&quot;</ETag>"
	"</CompleteMultipartUploadResult>";

/* Written by hand in the shapes AWS documents: pretty-printed, with the
 * S3 namespace, EncodingType=url (what the AWS CLI asks for), a Contents
 * without ETag, and a 200 answer to CompleteMultipartUpload that carries an
 * Error after keep-alive blanks. */
static const char fx_aws_list[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n"
	"  <Name>datasets</Name>\n"
	"  <Prefix>train/</Prefix>\n"
	"  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>\n"
	"  <KeyCount>3</KeyCount>\n"
	"  <MaxKeys>3</MaxKeys>\n"
	"  <Delimiter>/</Delimiter>\n"
	"  <EncodingType>url</EncodingType>\n"
	"  <IsTruncated>true</IsTruncated>\n"
	"  <Contents>\n"
	"    <Key>train/sp+ace%26more.txt</Key>\n"
	"    <LastModified>2026-11-25T10:39:44.000Z</LastModified>\n"
	"    <ETag>\"9b2cf535f27731c974343645a3985328\"</ETag>\n"
	"    <ChecksumAlgorithm>CRC32</ChecksumAlgorithm>\n"
	"    <Size>104857600</Size>\n"
	"    <StorageClass>STANDARD</StorageClass>\n"
	"  </Contents>\n"
	"  <Contents>\n"
	"    <Key>train/%E6%BC%A2%2B1.bin</Key>\n"
	"    <LastModified>2026-11-25T10:39:45.123456789Z</LastModified>\n"
	"    <Size>0</Size>\n"
	"  </Contents>\n"
	"  <CommonPrefixes>\n"
	"    <Prefix>train/a%20b/</Prefix>\n"
	"  </CommonPrefixes>\n"
	"  <StartAfter>train/0</StartAfter>\n"
	"</ListBucketResult>\n";

static const char fx_aws_complete[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<CompleteMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
	"<Location>https://b.s3.us-east-1.amazonaws.com/k</Location>"
	"<Bucket>b</Bucket>"
	"<Key>k</Key>"
	"<ETag>\"3858f62230ac3c915f300c664312c11f-9\"</ETag>"
	"</CompleteMultipartUploadResult>";

static const char fx_aws_complete_error[] =
	"  \n"
	" \n"
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<Error>\n"
	"  <Code>InternalError</Code>\n"
	"  <Message>We encountered an internal error. Please try again.</Message>\n"
	"  <RequestId>656c76696e6727732072657175657374</RequestId>\n"
	"  <HostId>Uuag1LuByRx9e6j5Onimru9pO4ZVKnJ2Qz7/C1NPcfTWAtRPfTaOFg==</HostId>\n"
	"</Error>\n";

static int64_t ns_of(const char *iso)
{
	int64_t ns = -1;

	CU_ASSERT_EQUAL(bb_parse_iso8601(iso, &ns), BB_OK);
	return ns;
}

static int parse_list(const char *xml, struct bb_s3_list *l)
{
	return bb_s3_parse_list(xml, strlen(xml), l, err, sizeof(err));
}

static void test_list_pages(void)
{
	struct bb_s3_list l;

	CU_ASSERT_EQUAL_FATAL(parse_list(fx_list_page1, &l), BB_OK);
	CU_ASSERT_EQUAL_FATAL(l.n, 3);
	CU_ASSERT_STRING_EQUAL(l.objs[0].key, "a.txt");
	CU_ASSERT_EQUAL(l.objs[0].size, 3);
	CU_ASSERT_STRING_EQUAL(l.objs[0].etag, "764efa883dda1e11db47671c4a3bbd9e");
	CU_ASSERT_EQUAL(l.objs[0].mtime_ns, 1795606481000000000LL);
	CU_ASSERT_STRING_EQUAL(l.objs[2].key, "dir/sub/c");
	CU_ASSERT_EQUAL(l.objs[2].mtime_ns, 1795606482000000000LL);
	CU_ASSERT_EQUAL(l.n_prefixes, 0);
	CU_ASSERT_TRUE(l.truncated);
	CU_ASSERT_STRING_EQUAL(l.next_token, "1nOBITEMvfyq4KgOOwo4jCBz02romPmR68VV20wr/Zs=");
	CU_ASSERT_PTR_NULL(l.start_after);
	bb_s3_list_free(&l);
	CU_ASSERT_PTR_NULL(l.objs);
	CU_ASSERT_EQUAL(l.n, 0);

	/* entity-escaped keys: &#x27; &quot; &lt; &gt; &amp; */
	CU_ASSERT_EQUAL_FATAL(parse_list(fx_list_page2, &l), BB_OK);
	CU_ASSERT_EQUAL_FATAL(l.n, 3);
	CU_ASSERT_STRING_EQUAL(l.objs[0].key, "plus+sign");
	CU_ASSERT_STRING_EQUAL(l.objs[1].key, "q'\"<>.txt");
	CU_ASSERT_STRING_EQUAL(l.objs[2].key, "sp ace & amp.txt");
	CU_ASSERT_STRING_EQUAL(l.next_token,
			       "1jt8kas75jxG5Ff9RVwUlkdq2Fp6QO9iRbGh1f+mmIop27wCBS+NNg==");
	bb_s3_list_free(&l);

	CU_ASSERT_EQUAL_FATAL(parse_list(fx_list_delim, &l), BB_OK);
	CU_ASSERT_EQUAL_FATAL(l.n, 4);
	CU_ASSERT_STRING_EQUAL(l.objs[3].key, "uni-\xc3\xa9\xe6\xbc\xa2\xe5\xad\x97.dat");
	CU_ASSERT_EQUAL_FATAL(l.n_prefixes, 1);
	CU_ASSERT_STRING_EQUAL(l.prefixes[0], "dir/");
	CU_ASSERT_FALSE(l.truncated);
	CU_ASSERT_PTR_NULL(l.next_token);
	CU_ASSERT_STRING_EQUAL(l.start_after, "a.txt");
	bb_s3_list_free(&l);

	CU_ASSERT_EQUAL_FATAL(parse_list(fx_list_empty, &l), BB_OK);
	CU_ASSERT_EQUAL(l.n, 0);
	CU_ASSERT_EQUAL(l.n_prefixes, 0);
	CU_ASSERT_PTR_NULL(l.objs);
	CU_ASSERT_FALSE(l.truncated);
	bb_s3_list_free(&l);
	bb_s3_list_free(NULL);
}

static void test_list_aws(void)
{
	struct bb_s3_list l;

	CU_ASSERT_EQUAL_FATAL(parse_list(fx_aws_list, &l), BB_OK);
	CU_ASSERT_EQUAL_FATAL(l.n, 2);
	CU_ASSERT_STRING_EQUAL(l.objs[0].key, "train/sp ace&more.txt");
	CU_ASSERT_EQUAL(l.objs[0].size, 104857600);
	CU_ASSERT_STRING_EQUAL(l.objs[0].etag, "9b2cf535f27731c974343645a3985328");
	CU_ASSERT_EQUAL(l.objs[0].mtime_ns, ns_of("2026-11-25T10:39:44Z"));
	CU_ASSERT_STRING_EQUAL(l.objs[1].key, "train/\xe6\xbc\xa2+1.bin");
	CU_ASSERT_EQUAL(l.objs[1].size, 0);
	CU_ASSERT_STRING_EQUAL(l.objs[1].etag, "");	/* no ETag */
	CU_ASSERT_EQUAL(l.objs[1].mtime_ns, ns_of("2026-11-25T10:39:45Z") + 123456789);
	CU_ASSERT_EQUAL_FATAL(l.n_prefixes, 1);
	CU_ASSERT_STRING_EQUAL(l.prefixes[0], "train/a b/");
	CU_ASSERT_TRUE(l.truncated);
	CU_ASSERT_STRING_EQUAL(l.start_after, "train/0");
	bb_s3_list_free(&l);

	/* no namespace, a prefix bound to the S3 namespace, no LastModified */
	CU_ASSERT_EQUAL_FATAL(parse_list("<ListBucketResult><Contents><Key>k</Key><Size>1</Size>"
					 "</Contents></ListBucketResult>", &l), BB_OK);
	CU_ASSERT_EQUAL(l.n, 1);
	CU_ASSERT_EQUAL(l.objs[0].mtime_ns, 0);
	bb_s3_list_free(&l);
	CU_ASSERT_EQUAL_FATAL(parse_list("<s3:ListBucketResult xmlns:s3=\"http://s3.amazonaws.com/"
					 "doc/2006-03-01/\"><s3:Contents><s3:Key>k</s3:Key>"
					 "<s3:Size>18446744073709551615</s3:Size></s3:Contents>"
					 "</s3:ListBucketResult>", &l), BB_OK);
	CU_ASSERT_EQUAL(l.objs[0].size, UINT64_MAX);
	bb_s3_list_free(&l);
	/* a Key elsewhere (e.g. inside Owner) is not an object */
	CU_ASSERT_EQUAL_FATAL(parse_list("<ListBucketResult><Key>x</Key><Owner><Key>y</Key></Owner>"
					 "<Prefix>p/</Prefix></ListBucketResult>", &l), BB_OK);
	CU_ASSERT_EQUAL(l.n, 0);
	CU_ASSERT_EQUAL(l.n_prefixes, 0);
	bb_s3_list_free(&l);
}

static void expect_list_err(const char *xml, int rc, const char *want)
{
	struct bb_s3_list l;
	int got = parse_list(xml, &l);

	CU_ASSERT_EQUAL(got, rc);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
	if (got != rc || !strstr(err, want))
		fprintf(stderr, "\n  got %s \"%s\", want %s \"%s\"\n", bb_errname(got), err,
			bb_errname(rc), want);
	CU_ASSERT_EQUAL(l.n, 0);	/* nothing half-filled survives */
	bb_s3_list_free(&l);
}

static void test_list_errors(void)
{
	char *big;
	size_t n;

	expect_list_err("", BB_EPARSE, "line 1, column 0: malformed XML: no element found");
	expect_list_err("<ListBucketResult><Contents>", BB_EPARSE, "malformed XML");
	expect_list_err("<ListBucketResult>\n<Contents><Key>a</Key>\n</Size></Contents>",
			BB_EPARSE, "line 3, column 2: malformed XML: mismatched tag");
	expect_list_err(fx_nosuchbucket, BB_EPARSE, "unexpected root element <Error>");
	expect_list_err("<Foo/>", BB_EPARSE, "unexpected root element");
	expect_list_err("<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
			BB_EPARSE, "<Contents> without <Key>");
	expect_list_err("<ListBucketResult><Contents><Key>k</Key></Contents></ListBucketResult>",
			BB_EPARSE, "<Contents> without <Size>");
	expect_list_err("<ListBucketResult><Contents><Key></Key><Size>1</Size></Contents>"
			"</ListBucketResult>", BB_EPARSE, "empty <Key>");
	expect_list_err("<ListBucketResult><Contents><Key>k</Key><Key>j</Key><Size>1</Size>"
			"</Contents></ListBucketResult>", BB_EPARSE, "<Key> repeated");
	expect_list_err("<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents>"
			"</ListBucketResult>", BB_EPARSE, "bad <Size>");
	expect_list_err("<ListBucketResult><Contents><Key>k</Key><Size>18446744073709551616</Size>"
			"</Contents></ListBucketResult>", BB_ERANGE, "bad <Size>");
	expect_list_err("<ListBucketResult><Contents><Key>k</Key><Size>1</Size><LastModified>"
			"yesterday</LastModified></Contents></ListBucketResult>", BB_EPARSE,
			"bad <LastModified>");
	expect_list_err("<ListBucketResult><IsTruncated>yes</IsTruncated></ListBucketResult>",
			BB_EPARSE, "neither true nor false");
	expect_list_err("<ListBucketResult><NextContinuationToken>a</NextContinuationToken>"
			"<NextContinuationToken>b</NextContinuationToken></ListBucketResult>",
			BB_EPARSE, "<NextContinuationToken> repeated");
	expect_list_err("<ListBucketResult><Contents><Key>k<b/></Key></Contents></ListBucketResult>",
			BB_EPARSE, "element inside <Key>");
	expect_list_err("<s3:ListBucketResult/>", BB_EPARSE, "unbound prefix");
	expect_list_err("<ListBucketResult><EncodingType>url</EncodingType><Contents><Key>a%zz"
			"</Key><Size>1</Size></Contents></ListBucketResult>", BB_EPARSE,
			"bad percent-encoding");
	expect_list_err("<ListBucketResult><EncodingType>url</EncodingType><Contents><Key>a%00"
			"</Key><Size>1</Size></Contents></ListBucketResult>", BB_EPARSE,
			"bad percent-encoding");
	/* hostile: entities, external entities, nesting */
	expect_list_err("<!DOCTYPE l [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;\">]>"
			"<ListBucketResult><Contents><Key>&b;</Key><Size>1</Size></Contents>"
			"</ListBucketResult>", BB_EPARSE, "DOCTYPE not allowed");
	expect_list_err("<!DOCTYPE l SYSTEM \"file:///etc/passwd\"><ListBucketResult/>",
			BB_EPARSE, "DOCTYPE not allowed");
	expect_list_err("<ListBucketResult><Contents><Key>&xxe;</Key></Contents>"
			"</ListBucketResult>", BB_EPARSE, "undefined entity");

	big = malloc(70 * 7 + 64);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	n = (size_t)sprintf(big, "<ListBucketResult>");
	for (int i = 0; i < 70; i++)
		n += (size_t)sprintf(big + n, "<a>");
	for (int i = 0; i < 70; i++)
		n += (size_t)sprintf(big + n, "</a>");
	strcpy(big + n, "</ListBucketResult>");
	expect_list_err(big, BB_EPARSE, "nested deeper than 64");
	free(big);
}

static void test_list_bounds(void)
{
	static const char head[] = "<ListBucketResult><Contents><Key>";
	static const char tail[] = "</Key><Size>1</Size></Contents></ListBucketResult>";
	static const char one[] = "<Contents><Key>k</Key><Size>1</Size></Contents>";
	struct bb_s3_list l;
	char *buf;
	size_t n;

	/* a key of exactly 1024 bytes passes, 1025 does not */
	buf = malloc(sizeof(head) + 4 * BB_S3_KEY_MAX + sizeof(tail));
	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	n = (size_t)sprintf(buf, "%s", head);
	memset(buf + n, 'k', BB_S3_KEY_MAX);
	strcpy(buf + n + BB_S3_KEY_MAX, tail);
	CU_ASSERT_EQUAL(parse_list(buf, &l), BB_OK);
	CU_ASSERT_EQUAL(l.n == 1 ? strlen(l.objs[0].key) : 0, BB_S3_KEY_MAX);
	bb_s3_list_free(&l);
	memset(buf + n, 'k', BB_S3_KEY_MAX + 1);
	strcpy(buf + n + BB_S3_KEY_MAX + 1, tail);
	CU_ASSERT_EQUAL(parse_list(buf, &l), BB_ERANGE);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "longer than 1024 bytes"));
	bb_s3_list_free(&l);
	/* far too long: stopped while reading, not after */
	memset(buf + n, 'k', 4 * BB_S3_KEY_MAX);
	strcpy(buf + n + 4 * BB_S3_KEY_MAX, tail);
	CU_ASSERT_EQUAL(parse_list(buf, &l), BB_ERANGE);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "text of <Key> longer than"));
	bb_s3_list_free(&l);
	free(buf);

	/* 100,000 entries pass, 100,001 do not */
	buf = malloc(20 + (BB_S3_LIST_MAX + 1) * (sizeof(one) - 1) + 24);
	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	n = (size_t)sprintf(buf, "<ListBucketResult>");
	for (int i = 0; i < BB_S3_LIST_MAX; i++) {
		memcpy(buf + n, one, sizeof(one) - 1);
		n += sizeof(one) - 1;
	}
	strcpy(buf + n, "</ListBucketResult>");
	CU_ASSERT_EQUAL(parse_list(buf, &l), BB_OK);
	CU_ASSERT_EQUAL(l.n, BB_S3_LIST_MAX);
	bb_s3_list_free(&l);
	strcpy(buf + n, "<CommonPrefixes><Prefix>p/</Prefix></CommonPrefixes></ListBucketResult>");
	CU_ASSERT_EQUAL(parse_list(buf, &l), BB_ERANGE);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "more than 100000 entries"));
	bb_s3_list_free(&l);
	free(buf);

	/* a long message is cut at BB_S3_TEXT_MAX, not buffered whole */
	buf = malloc(BB_S3_TEXT_MAX + 128);
	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	n = (size_t)sprintf(buf, "<ListBucketResult><NextContinuationToken>");
	memset(buf + n, 't', BB_S3_TEXT_MAX + 1);
	strcpy(buf + n + BB_S3_TEXT_MAX + 1, "</NextContinuationToken></ListBucketResult>");
	CU_ASSERT_EQUAL(parse_list(buf, &l), BB_ERANGE);
	bb_s3_list_free(&l);
	free(buf);

	/* arguments */
	CU_ASSERT_EQUAL(bb_s3_parse_list(fx_list_empty, strlen(fx_list_empty), NULL, err,
					 sizeof(err)), BB_EINVAL);
	CU_ASSERT_EQUAL(bb_s3_parse_list(fx_list_empty, strlen(fx_list_empty), &l, NULL, 0),
			BB_OK);
	bb_s3_list_free(&l);
	CU_ASSERT_EQUAL(bb_s3_parse_list(NULL, 0, &l, err, sizeof(err)), BB_EPARSE);
	bb_s3_list_free(&l);
	/* len is honoured: the same text cut short is malformed */
	CU_ASSERT_EQUAL(bb_s3_parse_list(fx_list_page1, 100, &l, err, sizeof(err)), BB_EPARSE);
	bb_s3_list_free(&l);
}

static void test_error_doc(void)
{
	char code[32], msg[128], small[8];

	CU_ASSERT_EQUAL(bb_s3_parse_error(fx_nosuchkey, strlen(fx_nosuchkey), code, sizeof(code),
					  msg, sizeof(msg)), BB_OK);
	CU_ASSERT_STRING_EQUAL(code, "NoSuchKey");
	CU_ASSERT_STRING_EQUAL(msg, "The specified key does not exist.");
	CU_ASSERT_EQUAL(bb_s3_parse_error(fx_nosuchbucket, strlen(fx_nosuchbucket), code,
					  sizeof(code), NULL, 0), BB_OK);
	CU_ASSERT_STRING_EQUAL(code, "NoSuchBucket");
	CU_ASSERT_EQUAL(bb_s3_parse_error(fx_aws_complete_error, strlen(fx_aws_complete_error),
					  code, sizeof(code), small, sizeof(small)), BB_OK);
	CU_ASSERT_STRING_EQUAL(code, "InternalError");
	CU_ASSERT_STRING_EQUAL(small, "We enco");	/* truncated */
	/* not an error document, or one without a Code */
	CU_ASSERT_EQUAL(bb_s3_parse_error(fx_list_page1, strlen(fx_list_page1), code,
					  sizeof(code), msg, sizeof(msg)), BB_EPARSE);
	CU_ASSERT_STRING_EQUAL(code, "");
	CU_ASSERT_EQUAL(bb_s3_parse_error("<Error><Message>m</Message></Error>", 35, code,
					  sizeof(code), msg, sizeof(msg)), BB_EPARSE);
	CU_ASSERT_EQUAL(bb_s3_parse_error("<html>502 Bad Gateway</html>", 28, code, sizeof(code),
					  msg, sizeof(msg)), BB_EPARSE);
	CU_ASSERT_EQUAL(bb_s3_parse_error("", 0, code, sizeof(code), msg, sizeof(msg)),
			BB_EPARSE);
	/* the first Code counts; a nested one does not */
	static const char two[] = "<Error><X><Code>no</Code></X><Code>A</Code><Code>B</Code></Error>";

	CU_ASSERT_EQUAL(bb_s3_parse_error(two, strlen(two), code, sizeof(code), NULL, 0), BB_OK);
	CU_ASSERT_STRING_EQUAL(code, "A");
}

static void test_multipart(void)
{
	char id[64], etag[64], code[32], tiny[4];

	CU_ASSERT_EQUAL(bb_s3_parse_upload_id(fx_initiate, strlen(fx_initiate), id, sizeof(id)),
			BB_OK);
	CU_ASSERT_STRING_EQUAL(id, "062afd469330742b1ea53e31a5202989");
	CU_ASSERT_EQUAL(bb_s3_parse_upload_id(fx_initiate, strlen(fx_initiate), tiny,
					      sizeof(tiny)), BB_ERANGE);
	CU_ASSERT_EQUAL(bb_s3_parse_upload_id(fx_nosuchbucket, strlen(fx_nosuchbucket), id,
					      sizeof(id)), BB_EPARSE);
	CU_ASSERT_EQUAL(bb_s3_parse_upload_id("<InitiateMultipartUploadResult/>", 32, id,
					      sizeof(id)), BB_EPARSE);
	CU_ASSERT_EQUAL(bb_s3_parse_upload_id(fx_initiate, strlen(fx_initiate), NULL, 0),
			BB_EINVAL);

	CU_ASSERT_EQUAL(bb_s3_parse_complete(fx_complete, strlen(fx_complete), etag, sizeof(etag),
					     code, sizeof(code)), BB_OK);
	CU_ASSERT_STRING_EQUAL(etag, "a09f2dca1956fdece7cf092981e0f109");
	CU_ASSERT_STRING_EQUAL(code, "");
	CU_ASSERT_EQUAL(bb_s3_parse_complete(fx_aws_complete, strlen(fx_aws_complete), etag,
					     sizeof(etag), NULL, 0), BB_OK);
	CU_ASSERT_STRING_EQUAL(etag, "3858f62230ac3c915f300c664312c11f-9");
	CU_ASSERT_EQUAL(bb_s3_parse_complete(fx_aws_complete, strlen(fx_aws_complete), tiny,
					     sizeof(tiny), NULL, 0), BB_ERANGE);
	/* an Error in a 200, after keep-alive blanks */
	CU_ASSERT_EQUAL(bb_s3_parse_complete(fx_aws_complete_error, strlen(fx_aws_complete_error),
					     etag, sizeof(etag), code, sizeof(code)), BB_EFILL);
	CU_ASSERT_STRING_EQUAL(code, "InternalError");
	CU_ASSERT_STRING_EQUAL(etag, "");
	CU_ASSERT_EQUAL(bb_s3_parse_complete(fx_internal, strlen(fx_internal), etag, sizeof(etag),
					     code, sizeof(code)), BB_EFILL);
	CU_ASSERT_EQUAL(bb_s3_parse_complete("<Error/>", 8, etag, sizeof(etag), code,
					     sizeof(code)), BB_EFILL);
	CU_ASSERT_STRING_EQUAL(code, "InternalError");
	/* An empty <Code> is no code either (found by fuzz_s3xml). */
	CU_ASSERT_EQUAL(bb_s3_parse_complete("<Error><Code></Code></Error>", 28, etag,
					     sizeof(etag), code, sizeof(code)), BB_EFILL);
	CU_ASSERT_STRING_EQUAL(code, "InternalError");
	CU_ASSERT_EQUAL(bb_s3_parse_complete("  \n  ", 5, etag, sizeof(etag), code, sizeof(code)),
			BB_EPARSE);
	CU_ASSERT_EQUAL(bb_s3_parse_complete(fx_initiate, strlen(fx_initiate), etag,
					     sizeof(etag), code, sizeof(code)), BB_EPARSE);
	CU_ASSERT_EQUAL(bb_s3_parse_complete("<CompleteMultipartUploadResult><ETag>\"\"</ETag>"
					     "</CompleteMultipartUploadResult>", 78, etag,
					     sizeof(etag), code, sizeof(code)), BB_EPARSE);
}

static void test_build_complete(void)
{
	const char *etags[] = {"\"764efa883dda1e11db47671c4a3bbd9e\"", "abc-2", "a&<>\"b"};
	const char *bad[] = {"x", NULL};
	const char *empty[] = {"\"\""};
	const char *ctl[] = {"a\nb"};
	char *xml = NULL;
	size_t len = 0;

	CU_ASSERT_EQUAL_FATAL(bb_s3_build_complete(etags, 3, &xml, &len), BB_OK);
	CU_ASSERT_EQUAL(len, strlen(xml));
	CU_ASSERT_STRING_EQUAL(xml,
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
		"<Part><PartNumber>1</PartNumber>"
		"<ETag>&quot;764efa883dda1e11db47671c4a3bbd9e&quot;</ETag></Part>"
		"<Part><PartNumber>2</PartNumber><ETag>&quot;abc-2&quot;</ETag></Part>"
		"<Part><PartNumber>3</PartNumber>"
		"<ETag>&quot;a&amp;&lt;&gt;&quot;b&quot;</ETag></Part>"
		"</CompleteMultipartUpload>");
	free(xml);

	CU_ASSERT_EQUAL(bb_s3_build_complete(etags, 0, &xml, &len), BB_EINVAL);
	CU_ASSERT_PTR_NULL(xml);
	CU_ASSERT_EQUAL(bb_s3_build_complete(etags, BB_S3_PARTS_MAX + 1, &xml, &len), BB_EINVAL);
	CU_ASSERT_EQUAL(bb_s3_build_complete(bad, 2, &xml, &len), BB_EINVAL);
	CU_ASSERT_PTR_NULL(xml);
	CU_ASSERT_EQUAL(bb_s3_build_complete(empty, 1, &xml, &len), BB_EINVAL);
	CU_ASSERT_EQUAL(bb_s3_build_complete(ctl, 1, &xml, &len), BB_EINVAL);
	CU_ASSERT_EQUAL(bb_s3_build_complete(NULL, 1, &xml, &len), BB_EINVAL);
	CU_ASSERT_EQUAL(bb_s3_build_complete(etags, 1, NULL, &len), BB_EINVAL);
}

static void test_uri_encode(void)
{
	static const char all[] = "AZaz09-_.~ /+=&?%\xc3\xa9";
	char out[128], small[4];

	CU_ASSERT_EQUAL(bb_uri_encode(all, strlen(all), 0, out, sizeof(out)), BB_OK);
	CU_ASSERT_STRING_EQUAL(out, "AZaz09-_.~%20/%2B%3D%26%3F%25%C3%A9");
	CU_ASSERT_EQUAL(bb_uri_encode(all, strlen(all), 1, out, sizeof(out)), BB_OK);
	CU_ASSERT_STRING_EQUAL(out, "AZaz09-_.~%20%2F%2B%3D%26%3F%25%C3%A9");
	/* inlen is honoured, NUL bytes included */
	CU_ASSERT_EQUAL(bb_uri_encode("a\0b", 3, 1, out, sizeof(out)), BB_OK);
	CU_ASSERT_STRING_EQUAL(out, "a%00b");
	CU_ASSERT_EQUAL(bb_uri_encode("", 0, 1, out, sizeof(out)), BB_OK);
	CU_ASSERT_STRING_EQUAL(out, "");
	/* exactly fitting, one byte short */
	CU_ASSERT_EQUAL(bb_uri_encode("abc", 3, 1, small, sizeof(small)), BB_OK);
	CU_ASSERT_STRING_EQUAL(small, "abc");
	CU_ASSERT_EQUAL(bb_uri_encode("abcd", 4, 1, small, sizeof(small)), BB_ERANGE);
	CU_ASSERT_STRING_EQUAL(small, "");
	CU_ASSERT_EQUAL(bb_uri_encode(" ", 1, 1, small, sizeof(small)), BB_OK);
	CU_ASSERT_STRING_EQUAL(small, "%20");
	CU_ASSERT_EQUAL(bb_uri_encode("a ", 2, 1, small, sizeof(small)), BB_ERANGE);
	CU_ASSERT_EQUAL(bb_uri_encode("a", 1, 1, NULL, 0), BB_EINVAL);
	CU_ASSERT_EQUAL(bb_uri_encode(NULL, 1, 1, out, sizeof(out)), BB_EINVAL);
}

static void test_iso8601(void)
{
	int64_t ns = 42;

	CU_ASSERT_EQUAL(ns_of("1970-01-01T00:00:00Z"), 0);
	CU_ASSERT_EQUAL(ns_of("2026-11-25T10:39:44.000Z"), 1795603184000000000LL);
	CU_ASSERT_EQUAL(ns_of("2026-11-25T10:39:44Z"), 1795603184000000000LL);
	CU_ASSERT_EQUAL(ns_of("2026-11-25 10:39:44"), 1795603184000000000LL);
	CU_ASSERT_EQUAL(ns_of("2026-11-25t10:39:44z"), 1795603184000000000LL);
	CU_ASSERT_EQUAL(ns_of("2026-11-25T11:39:44+01:00"), 1795603184000000000LL);
	CU_ASSERT_EQUAL(ns_of("2026-11-25T05:09:44-0530"), 1795603184000000000LL);
	CU_ASSERT_EQUAL(ns_of("2026-11-25T10:39:44.5Z"), 1795603184500000000LL);
	CU_ASSERT_EQUAL(ns_of("2026-11-25T10:39:44,123456789999Z"), 1795603184123456789LL);
	CU_ASSERT_EQUAL(ns_of("1969-12-31T23:59:59.999999999Z"), -1);
	CU_ASSERT_EQUAL(ns_of("2000-02-29T00:00:00Z"), 951782400000000000LL);
	CU_ASSERT_EQUAL(ns_of("2016-12-31T23:59:60Z"), 1483228800000000000LL);
	CU_ASSERT_EQUAL(ns_of("2262-04-11T23:47:16.854775807Z"), INT64_MAX);
	CU_ASSERT_EQUAL(ns_of("1677-09-21T00:12:43.145224192Z"), INT64_MIN);

	CU_ASSERT_EQUAL(bb_parse_iso8601("2262-04-11T23:47:16.854775808Z", &ns), BB_ERANGE);
	CU_ASSERT_EQUAL(bb_parse_iso8601("9999-12-31T23:59:59Z", &ns), BB_ERANGE);
	CU_ASSERT_EQUAL(bb_parse_iso8601("0000-01-01T00:00:00Z", &ns), BB_ERANGE);
	static const char *const bad[] = {
		"", "2026", "2026-11-25", "2026-11-25T10:39Z", "2026-13-01T00:00:00Z",
		"2026-00-01T00:00:00Z", "2026-02-29T00:00:00Z", "1900-02-29T00:00:00Z",
		"2026-04-31T00:00:00Z", "2026-11-25T24:00:00Z", "2026-11-25T10:60:00Z",
		"2026-11-25T10:39:61Z", "2026-11-25T10:39:44.Z", "2026-11-25T10:39:44ZZ",
		"2026-11-25T10:39:44+1", "2026-11-25T10:39:44+24:00", " 2026-11-25T10:39:44Z",
		"2026-11-25T10:39:44Z ", "+2026-11-25T10:39:44Z", "2026-1-25T10:39:44Z",
		"2026-11-25X10:39:44Z", "2026-11-25T1a:39:44Z",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ns = 42;
		CU_ASSERT_EQUAL(bb_parse_iso8601(bad[i], &ns), BB_EPARSE);
		CU_ASSERT_EQUAL(ns, 42);
	}
	CU_ASSERT_EQUAL(bb_parse_iso8601(NULL, &ns), BB_EINVAL);
	CU_ASSERT_EQUAL(bb_parse_iso8601("2026-11-25T10:39:44Z", NULL), BB_EINVAL);
}

static void test_http_date(void)
{
	const int64_t want = 1795603184000000000LL;
	int64_t ns = 42;

	CU_ASSERT_EQUAL(bb_parse_http_date("Wed, 25 Nov 2026 10:39:44 GMT", &ns), BB_OK);
	CU_ASSERT_EQUAL(ns, want);
	/* what s3rver sent as Last-Modified for a.txt, and the listing's time */
	CU_ASSERT_EQUAL(bb_parse_http_date("Wed, 25 Nov 2026 11:34:41 GMT", &ns), BB_OK);
	CU_ASSERT_EQUAL(ns, ns_of("2026-11-25T11:34:41.000Z"));
	ns = 0;
	CU_ASSERT_EQUAL(bb_parse_http_date("Wednesday, 25-Nov-26 10:39:44 GMT", &ns), BB_OK);
	CU_ASSERT_EQUAL(ns, want);
	ns = 0;
	CU_ASSERT_EQUAL(bb_parse_http_date("Wed Nov 25 10:39:44 2026", &ns), BB_OK);
	CU_ASSERT_EQUAL(ns, want);
	CU_ASSERT_EQUAL(bb_parse_http_date("Sun Nov  6 08:49:37 1994", &ns), BB_OK);
	CU_ASSERT_EQUAL(ns, 784111777000000000LL);
	CU_ASSERT_EQUAL(bb_parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", &ns), BB_OK);
	CU_ASSERT_EQUAL(ns, 784111777000000000LL);
	CU_ASSERT_EQUAL(bb_parse_http_date("sun, 06 nov 1994 08:49:37 gmt", &ns), BB_OK);
	CU_ASSERT_EQUAL(ns, 784111777000000000LL);

	static const char *const bad[] = {
		"", "Wed", "Wed, 25 Nov 2026 10:39:44", "Wed, 25 Nov 2026 10:39:44 UTC",
		"Wed, 25 Nov 2026 10:39:44 GMT ", "Wed, 25 Foo 2026 10:39:44 GMT",
		"Wed, 31 Nov 2026 10:39:44 GMT", "Wed, 5 Nov 2026 10:39:44 GMT",
		"Wed, 25 Nov 26 10:39:44 GMT", "Wen, 25 Nov 2026 10:39:44 GMT",
		"Wednesday, 25 Nov 2026 10:39:44 GMT", "Wed, 25-Nov-26 10:39:44 GMT",
		"Wed Nov 25 10:39:44 2026 ", "Wed Nov 5 10:39:44 2026", "Wed Nov  5 10:39:44 26",
		"2026-11-25T10:39:44Z", "Wed, 25 Nov 2026 25:39:44 GMT",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ns = 42;
		CU_ASSERT_EQUAL(bb_parse_http_date(bad[i], &ns), BB_EPARSE);
		CU_ASSERT_EQUAL(ns, 42);
		if (ns != 42)
			fprintf(stderr, "\n  accepted: %s\n", bad[i]);
	}
	CU_ASSERT_EQUAL(bb_parse_http_date("Fri, 01 Jan 9999 00:00:00 GMT", &ns), BB_ERANGE);
	CU_ASSERT_EQUAL(bb_parse_http_date(NULL, &ns), BB_EINVAL);
}

int main(void)
{
	CU_pSuite s;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("s3xml", NULL, NULL);
	CU_add_test(s, "list pages (s3rver)", test_list_pages);
	CU_add_test(s, "list (AWS shape, namespaces, url encoding)", test_list_aws);
	CU_add_test(s, "list errors and hostile input", test_list_errors);
	CU_add_test(s, "list bounds", test_list_bounds);
	CU_add_test(s, "error documents", test_error_doc);
	CU_add_test(s, "multipart answers", test_multipart);
	CU_add_test(s, "CompleteMultipartUpload body", test_build_complete);
	CU_add_test(s, "SigV4 URI encoding", test_uri_encode);
	CU_add_test(s, "ISO 8601", test_iso8601);
	CU_add_test(s, "HTTP dates", test_http_date);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
