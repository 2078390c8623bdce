/* The agent protocol: what a local client (the LD_PRELOAD interposer, the
 * bbcache CLI) says to the job's bbcached over its UNIX socket.
 *
 * The socket is SOCK_SEQPACKET, so one send is one message.  Every message
 * is a 24-byte header and a payload of at most BBP_MAX_PAYLOAD bytes, all
 * integers little-endian.  A request gets exactly one reply, with the same
 * seq and op | BBP_REPLY; replies start with an int32 rc (common/error.h).
 * docs/agent-protocol.md is the reference.  libc only: the interposer links
 * it.
 */
#ifndef BB_COMMON_PROTO_H
#define BB_COMMON_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define BBP_MAGIC 0x31434242u /* "BBC1" */
#define BBP_VERSION 1u
#define BBP_HDR_SIZE 24u
#define BBP_MAX_PAYLOAD 65536u
#define BBP_MAX_MSG (BBP_HDR_SIZE + BBP_MAX_PAYLOAD)
#define BBP_REPLY 0x8000u

enum bbp_op {
	BBP_HELLO = 1,  /* req: u32 client version; rep: rc, u32 version, u64 job id */
	BBP_FETCH = 2,  /* req: u64 file id, u64 block, u32 flags; rep: rc, u32 tier */
	BBP_FILE = 3,   /* req: u64 file id; rep: rc once the file is whole and verified on NVMe */
	BBP_STATUS = 4, /* req: u32 flags (BBP_STATUS_JSON); rep: rc, then UTF-8 text */
	BBP_STOP = 5,   /* req: empty; rep: rc, then the agent shuts down */
	BBP_READ = 6,   /* req: u64 file id, u64 block, u32 flags, u32 len, u64 off;
			   rep: rc, u32 tier, then (tier INLINE) the bytes [off, off+len)
			   of the block, sent as soon as they arrive from the origin */
};

/* BBP_FETCH flags */
#define BBP_FETCH_NOWAIT 0x1 /* only queue it (readahead); reply at once */

/* Where a BBP_FETCH was served from (reply's tier) */
enum bbp_tier {
	BBP_TIER_SHM = 1,    /* was already READY in shm */
	BBP_TIER_NVME = 2,   /* filled into shm from the job's NVMe copy */
	BBP_TIER_ORIGIN = 3, /* fetched from the origin into shm */
	BBP_TIER_DISK = 4,   /* not in shm (it is full): read the NVMe file, now whole */
	BBP_TIER_INLINE = 5, /* READ: the bytes are in the reply; the block is still
				being filled into shm */
};

/* The most data a READ reply carries. */
#define BBP_MAX_INLINE (BBP_MAX_PAYLOAD - 8)

#define BBP_STATUS_JSON 0x1

/* A file id names one file of one dataset of the job: the dataset's index
 * in the namespace (common/ns.h) and the file's manifest entry. */
static inline uint64_t bbp_file_id(uint32_t dataset, uint32_t entry)
{
	return ((uint64_t)dataset << 32) | entry;
}

struct bbp_hdr {
	uint32_t magic, version;
	uint16_t op, flags; /* flags: 0 */
	uint32_t seq;
	uint32_t len; /* payload bytes */
	uint32_t reserved; /* 0 */
};

/* A decoded message: the header and the fields the op defines. */
struct bbp_msg {
	struct bbp_hdr h;
	int32_t rc;         /* replies */
	uint32_t u32;       /* HELLO version, FETCH flags / tier, STATUS flags */
	uint64_t a, b;      /* FETCH/READ/FILE file id, FETCH/READ block; HELLO reply job id */
	uint64_t off;       /* READ: offset in the block */
	uint32_t len;       /* READ: bytes wanted */
	const char *text;   /* STATUS reply text, READ reply data: text_len bytes */
	uint32_t text_len;
};

/* Encode m (its h.op, h.seq and fields) into buf (at least BBP_MAX_MSG bytes);
 * returns the message length, or 0 if the text does not fit. */
size_t bbp_encode(const struct bbp_msg *m, void *buf, size_t cap);
/* Decode len bytes at buf.  BB_OK, or BB_EPROTO for a bad magic, version,
 * length, unknown op or a payload of the wrong size for its op; m->text
 * points into buf. */
int bbp_decode(const void *buf, size_t len, struct bbp_msg *m);

/* ---- a client ------------------------------------------------------------ */

/* Connect to the agent's socket (SOCK_SEQPACKET, close-on-exec).  BB_OK;
 * BB_ENOENT (no socket: no agent), BB_EAGAIN (a socket but nobody
 * listening: the agent died or is restarting), BB_EPERM, BB_ERANGE (path
 * too long), BB_ESYS. */
int bbp_connect(const char *path, int *fd);
/* Send req (its seq set by the caller) and wait for its reply into rep,
 * whose text (STATUS) points into buf (cap >= BBP_MAX_MSG).  timeout_ms < 0:
 * no limit.  BB_OK (the call went through: look at rep->rc), BB_EDEAD (the
 * agent closed the connection), BB_ETIMEDOUT, BB_EPROTO (a reply that is
 * not the one to req), BB_ESYS. */
int bbp_call(int fd, const struct bbp_msg *req, struct bbp_msg *rep, void *buf, size_t cap,
	     int timeout_ms);

#endif
