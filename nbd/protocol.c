/*
 * protocol.c: the NBD wire format as pure functions on buffers (see
 * include/block/nbd.h).  No I/O and no state: nbd/server.c reads and
 * writes the bytes, this file says what they are.  Every decoder checks
 * what it can check without knowing the server's exports.
 */
#include "qemu/osdep.h"

#include "block/nbd.h"
#include "qemu/bswap.h"

void nbd_put_hello(uint8_t out[NBD_HELLO_LEN])
{
    stq_be_p(out, NBD_INIT_MAGIC);
    stq_be_p(out + 8, NBD_OPTS_MAGIC);
    stw_be_p(out + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
}

bool nbd_get_option(const uint8_t in[NBD_OPTION_LEN], NbdOption *o)
{
    o->magic = ldq_be_p(in);
    o->opt = ldl_be_p(in + 8);
    o->len = ldl_be_p(in + 12);
    return o->magic == NBD_OPTS_MAGIC;
}

void nbd_put_option_reply(uint8_t out[NBD_OPTION_REPLY_LEN], uint32_t opt,
                          uint32_t type, uint32_t len)
{
    stq_be_p(out, NBD_REP_MAGIC);
    stl_be_p(out + 8, opt);
    stl_be_p(out + 12, type);
    stl_be_p(out + 16, len);
}

bool nbd_get_info_request(const uint8_t *data, uint32_t len,
                          uint32_t *name_len)
{
    uint32_t nl;

    if (len < 6) {
        return false;
    }
    nl = ldl_be_p(data);
    /* the name, then a count of information requests, 2 bytes each */
    if (nl > len - 6 || lduw_be_p(data + 4 + nl) * 2u != len - 6 - nl) {
        return false;
    }
    *name_len = nl;
    return true;
}

void nbd_put_info_export(uint8_t out[NBD_INFO_EXPORT_LEN], uint64_t size,
                         uint16_t flags)
{
    stw_be_p(out, NBD_INFO_EXPORT);
    stq_be_p(out + 2, size);
    stw_be_p(out + 10, flags);
}

void nbd_put_info_block_size(uint8_t out[NBD_INFO_BLOCK_SIZE_LEN],
                             uint32_t min, uint32_t preferred, uint32_t max)
{
    stw_be_p(out, NBD_INFO_BLOCK_SIZE);
    stl_be_p(out + 2, min);
    stl_be_p(out + 6, preferred);
    stl_be_p(out + 10, max);
}

void nbd_put_export_name_reply(uint8_t out[NBD_EXPORT_NAME_REPLY_LEN],
                               uint64_t size, uint16_t flags)
{
    memset(out, 0, NBD_EXPORT_NAME_REPLY_LEN);
    stq_be_p(out, size);
    stw_be_p(out + 8, flags);
}

bool nbd_get_request(const uint8_t in[NBD_REQUEST_LEN], NbdRequest *r)
{
    r->magic = ldl_be_p(in);
    r->flags = lduw_be_p(in + 4);
    r->type = lduw_be_p(in + 6);
    r->cookie = ldq_be_p(in + 8);
    r->offset = ldq_be_p(in + 16);
    r->len = ldl_be_p(in + 24);
    return r->magic == NBD_REQUEST_MAGIC;
}

void nbd_put_simple_reply(uint8_t out[NBD_SIMPLE_REPLY_LEN], uint32_t error,
                          uint64_t cookie)
{
    stl_be_p(out, NBD_SIMPLE_REPLY_MAGIC);
    stl_be_p(out + 4, error);
    stq_be_p(out + 8, cookie);
}

uint32_t nbd_errno_to_wire(int err)
{
    switch (err) {
    case EPERM:
    case EROFS:
        return NBD_EPERM;
    case ENOMEM:
        return NBD_ENOMEM;
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
        return NBD_ENOSPC;
    case EINVAL:
        return NBD_EINVAL;
    case EOVERFLOW:
        return NBD_EOVERFLOW;
    case ENOTSUP:
        return NBD_ENOTSUP;
    case ESHUTDOWN:
        return NBD_ESHUTDOWN;
    default:
        return NBD_EIO;
    }
}

const char *nbd_cmd_name(uint16_t type)
{
    static const char *const names[] = {
        [NBD_CMD_READ] = "READ", [NBD_CMD_WRITE] = "WRITE",
        [NBD_CMD_DISC] = "DISC", [NBD_CMD_FLUSH] = "FLUSH",
        [NBD_CMD_TRIM] = "TRIM", [NBD_CMD_WRITE_ZEROES] = "WRITE_ZEROES",
    };

    return type < G_N_ELEMENTS(names) && names[type] ? names[type]
                                                     : "unknown";
}

bool nbd_request_has_range(uint16_t type)
{
    return type == NBD_CMD_READ || type == NBD_CMD_WRITE ||
           type == NBD_CMD_TRIM || type == NBD_CMD_WRITE_ZEROES;
}
