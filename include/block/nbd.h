/*
 * nbd.h: colo-secondary's NBD server (nbd/server.c), which the primary's
 * QEMU mirrors its disks to, and the protocol numbers it uses.
 *
 * The protocol is the NBD project's (doc/proto.md): fixed newstyle
 * handshake (NBD_OPT_GO, _INFO, _LIST, _EXPORT_NAME, _ABORT, _STARTTLS),
 * simple replies only; READ, WRITE (FUA), FLUSH, TRIM, WRITE_ZEROES,
 * DISC.  Structured replies, meta contexts and extended headers are
 * answered "unsupported", which QEMU's client, qemu-img and qemu-io
 * accept.
 *
 * Threads: start/add/remove/stop on the main thread; one thread per
 * client connection.
 */
#ifndef BLOCK_NBD_H
#define BLOCK_NBD_H

#include "qemu/osdep.h"

#include "block/blockdev.h"

#define NBD_INIT_MAGIC          0x4e42444d41474943ull   /* "NBDMAGIC" */
#define NBD_OPTS_MAGIC          0x49484156454f5054ull   /* "IHAVEOPT" */
#define NBD_REP_MAGIC           0x0003e889045565a9ull
#define NBD_REQUEST_MAGIC       0x25609513u
#define NBD_SIMPLE_REPLY_MAGIC  0x67446698u

#define NBD_FLAG_FIXED_NEWSTYLE 1u
#define NBD_FLAG_NO_ZEROES      2u
#define NBD_FLAG_C_FIXED_NEWSTYLE 1u
#define NBD_FLAG_C_NO_ZEROES    2u

enum {
    NBD_OPT_EXPORT_NAME = 1,
    NBD_OPT_ABORT = 2,
    NBD_OPT_LIST = 3,
    NBD_OPT_STARTTLS = 5,
    NBD_OPT_INFO = 6,
    NBD_OPT_GO = 7,
    NBD_OPT_STRUCTURED_REPLY = 8,
    NBD_OPT_LIST_META_CONTEXT = 9,
    NBD_OPT_SET_META_CONTEXT = 10,
    NBD_OPT_EXTENDED_HEADERS = 11,
};

#define NBD_REP_ERR(n)          ((1u << 31) | (n))
enum {
    NBD_REP_ACK = 1,
    NBD_REP_SERVER = 2,
    NBD_REP_INFO = 3,
    NBD_REP_ERR_UNSUP = NBD_REP_ERR(1),
    NBD_REP_ERR_POLICY = NBD_REP_ERR(2),
    NBD_REP_ERR_INVALID = NBD_REP_ERR(3),
    NBD_REP_ERR_TLS_REQD = NBD_REP_ERR(5),
    NBD_REP_ERR_UNKNOWN = NBD_REP_ERR(6),
    NBD_REP_ERR_TOO_BIG = NBD_REP_ERR(9),
};

enum {
    NBD_INFO_EXPORT = 0,
    NBD_INFO_NAME = 1,
    NBD_INFO_DESCRIPTION = 2,
    NBD_INFO_BLOCK_SIZE = 3,
};

/* transmission flags */
enum {
    NBD_FLAG_HAS_FLAGS = 1 << 0,
    NBD_FLAG_READ_ONLY = 1 << 1,
    NBD_FLAG_SEND_FLUSH = 1 << 2,
    NBD_FLAG_SEND_FUA = 1 << 3,
    NBD_FLAG_SEND_TRIM = 1 << 5,
    NBD_FLAG_SEND_WRITE_ZEROES = 1 << 6,
    NBD_FLAG_CAN_MULTI_CONN = 1 << 8,
};

/* The request types the server knows (the "type" field of a request);
 * 5 (CACHE) and 7 (BLOCK_STATUS) are neither offered nor taken. */
typedef enum NbdRequestType {
    NBD_CMD_READ,               /* 0: data in the reply */
    NBD_CMD_WRITE,              /* 1: data follows the request */
    NBD_CMD_DISC,               /* 2: the client is leaving */
    NBD_CMD_FLUSH,              /* 3: no range */
    NBD_CMD_TRIM,               /* 4: a range, no data */
    NBD_CMD_CACHE,              /* 5: not offered */
    NBD_CMD_WRITE_ZEROES,       /* 6: a range, no data */
} NbdRequestType;

/* Request flags taken: force unit access; NO_HOLE is accepted, since
 * zeroes are always written (or punched) either way. */
#define NBD_CMD_FLAG_FUA     0x1u
#define NBD_CMD_FLAG_NO_HOLE 0x2u

/* errors in replies (the protocol's own numbers) */
enum {
    NBD_EPERM = 1,
    NBD_EIO = 5,
    NBD_ENOMEM = 12,
    NBD_EINVAL = 22,
    NBD_ENOSPC = 28,
    NBD_EOVERFLOW = 75,
    NBD_ENOTSUP = 95,
    NBD_ESHUTDOWN = 108,
};

/* The largest request we take, and advertise as the maximum block size. */
#define NBD_MAX_REQUEST         (32u << 20)
/* Option data we read; larger options are refused. */
#define NBD_MAX_OPTION          4096u
/* Clients at once (more wait in the listen queue), and options one
 * client may send. */
#define NBD_MAX_CLIENTS         16
#define NBD_MAX_OPTIONS         64
/* Seconds a client has for its whole handshake, TLS included, from the
 * moment it is accepted until transmission begins. */
#define NBD_HANDSHAKE_TIMEOUT_S 10
/* Seconds a client has to send the whole payload of one WRITE. */
#define NBD_PAYLOAD_TIMEOUT_S   30
/* Each client's own buffer: READs are sent in pieces of this size, WRITEs
 * up to it are read into it. */
#define NBD_CLIENT_BUFFER       (1u << 20)
/* Larger WRITEs borrow their buffer from one budget shared by all
 * clients; a WRITE that cannot get it within NBD_PAYLOAD_TIMEOUT_S closes
 * its connection. */
#define NBD_SHARED_WRITE_BUDGET (64u << 20)

/* --- the wire format (nbd/protocol.c): pure functions on buffers ----- */

#define NBD_HELLO_LEN               18  /* magic, IHAVEOPT, flags */
#define NBD_OPTION_LEN              16  /* IHAVEOPT, option, length */
#define NBD_OPTION_REPLY_LEN        20
#define NBD_INFO_EXPORT_LEN         12
#define NBD_INFO_BLOCK_SIZE_LEN     14
#define NBD_EXPORT_NAME_REPLY_LEN   (10 + 124)  /* 10 with NO_ZEROES */
#define NBD_REQUEST_LEN             28
#define NBD_SIMPLE_REPLY_LEN        16

typedef struct NbdOption {
    uint64_t magic;
    uint32_t opt;
    uint32_t len;               /* of the data that follows */
} NbdOption;

typedef struct NbdRequest {
    uint32_t magic;
    uint16_t flags;
    uint16_t type;
    uint64_t cookie;
    uint64_t offset;
    uint32_t len;
} NbdRequest;

void nbd_put_hello(uint8_t out[NBD_HELLO_LEN]);
/* False if the magic is not IHAVEOPT (the fields are filled anyway). */
bool nbd_get_option(const uint8_t in[NBD_OPTION_LEN], NbdOption *o);
void nbd_put_option_reply(uint8_t out[NBD_OPTION_REPLY_LEN], uint32_t opt,
                          uint32_t type, uint32_t len);
/* NBD_OPT_INFO / NBD_OPT_GO data: a u32-counted name at @data + 4 and a
 * u16-counted list of information requests, filling @len exactly; false
 * if malformed. */
bool nbd_get_info_request(const uint8_t *data, uint32_t len,
                          uint32_t *name_len);
void nbd_put_info_export(uint8_t out[NBD_INFO_EXPORT_LEN], uint64_t size,
                         uint16_t flags);
void nbd_put_info_block_size(uint8_t out[NBD_INFO_BLOCK_SIZE_LEN],
                             uint32_t min, uint32_t preferred, uint32_t max);
void nbd_put_export_name_reply(uint8_t out[NBD_EXPORT_NAME_REPLY_LEN],
                               uint64_t size, uint16_t flags);
/* False if the magic is not the request magic. */
bool nbd_get_request(const uint8_t in[NBD_REQUEST_LEN], NbdRequest *r);
void nbd_put_simple_reply(uint8_t out[NBD_SIMPLE_REPLY_LEN], uint32_t error,
                          uint64_t cookie);
/* The protocol's error number for an errno. */
uint32_t nbd_errno_to_wire(int err);
const char *nbd_cmd_name(uint16_t type);
/* Requests whose offset and length address the export. */
bool nbd_request_has_range(uint16_t type);

/* --- the server (nbd/server.c) ------------------------------------- */

typedef struct NbdServer NbdServer;

typedef struct NbdListenAddress {
    bool is_unix;
    char *host, *port;          /* inet */
    char *path;                 /* unix */
} NbdListenAddress;

typedef struct NbdExportInfo {
    char *name;
    char *node;
    bool writable;
    guint clients;
} NbdExportInfo;

NbdServer *nbd_server_new(BlockDevices *bd);
void nbd_server_free(NbdServer *s);

/* nbd-server-start: listens on @addr; @tls_creds (or NULL) is a
 * tls-creds-x509 object with endpoint=server that every client must
 * then use (NBD_OPT_STARTTLS), @tls_authz who may connect. */
bool nbd_server_start(NbdServer *s, const NbdListenAddress *addr,
                      const char *tls_creds, const char *tls_authz,
                      GError **errp);
bool nbd_server_running(NbdServer *s);
/* The port the server listens on (inet), for tests that ask for port 0. */
int nbd_server_port(NbdServer *s);
/* nbd-server-add: @name defaults to the node name. */
bool nbd_server_add(NbdServer *s, const char *node, const char *name,
                    bool writable, GError **errp);
/* nbd-server-remove: @hard drops the export's clients; otherwise an
 * export in use is not removed. */
bool nbd_server_remove(NbdServer *s, const char *name, bool hard,
                       GError **errp);
/* nbd-server-stop: closes the listener and every client connection and
 * forgets the exports; waits for the connection threads. */
void nbd_server_stop(NbdServer *s);
/* A snapshot of the exports (free with nbd_export_info_free). */
GPtrArray *nbd_server_exports(NbdServer *s);
void nbd_export_info_free(gpointer p);

void nbd_listen_address_clear(NbdListenAddress *a);

/* Serves one client on the connected socket @fd in the calling thread,
 * until it disconnects (the fuzzer's way in; the caller closes @fd). */
void nbd_server_serve_fd(NbdServer *s, int fd);

#endif /* BLOCK_NBD_H */
