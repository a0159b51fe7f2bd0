/*
 * qemu-file.c: buffered big-endian stream over an fd or memory.
 *
 * Input files keep a window [pos, len) of unread bytes in @buf.  Reads that
 * need more than the window refill it from the fd (compacting first, and
 * growing the buffer only when a caller asks to peek further than it holds).
 * Memory inputs simply point the window at the caller's bytes, so parsing
 * a captured stream copies nothing.
 *
 * Output files collect bytes in @buf and write them out when it is full or
 * on qemu_fflush(); memory outputs grow a GByteArray instead.
 */
#include "qemu/osdep.h"

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <poll.h>
#include <sys/socket.h>

#include "migration/qemu-file.h"

#define QEMU_FILE_BUF_SIZE     (256 * 1024)
/* Peeks are for delimiting headers and device state: never above this. */
#define QEMU_FILE_PEEK_MAX     (512 * 1024 * 1024)

struct QEMUFile {
    bool writable;
    int fd;                 /* -1 for memory files */
    bool close_fd;
    bool source_done;       /* input: read() returned 0 */
    bool quickack;          /* input: acknowledge each read at once */

    uint8_t *buf;           /* owned, unless @bytes is set */
    size_t cap;
    size_t pos;             /* input: next unread byte */
    size_t len;             /* input: end of valid data; output: used */
    GBytes *bytes;          /* memory input */
    GByteArray *out;        /* memory output */

    uint64_t base;          /* stream offset of buf[0] (input) / bytes flushed */
    size_t floor_bytes;     /* input: progress floor, 0: none */
    int floor_window_ms;
    bool idle;              /* input: waiting at a message boundary */
    int64_t window_start_us;
    size_t window_bytes;
    int last_error;
    GError *error;
};

G_DEFINE_QUARK(colo-standby-error-quark, colo_error)

/*
 * A sender that writes small messages with Nagle's algorithm on (QEMU as
 * COLO primary) holds each one until the last is acknowledged; Linux
 * delays ACKs up to 40 ms, and leaves quick-ACK mode on its own, so the
 * reader asks again after every read.
 */
static void qemu_file_ack_now(QEMUFile *f)
{
    int one = 1;

    if (setsockopt(f->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one)) < 0) {
        f->quickack = false;    /* not TCP */
    }
}

void qemu_file_set_quickack(QEMUFile *f, bool on)
{
    f->quickack = on && !f->writable && f->fd >= 0;
    if (f->quickack) {
        qemu_file_ack_now(f);
    }
}

void qemu_file_set_progress_floor(QEMUFile *f, size_t min_bytes,
                                  int window_ms)
{
    f->floor_bytes = min_bytes;
    f->floor_window_ms = window_ms;
    f->window_start_us = g_get_monotonic_time();
    f->window_bytes = 0;
}

void qemu_file_set_idle(QEMUFile *f, bool idle)
{
    if (f->idle && !idle) {
        /* the message began: a fresh window for it */
        f->window_start_us = g_get_monotonic_time();
        f->window_bytes = 0;
    }
    f->idle = idle;
}

/*
 * Before a blocking read: waits for input, and fails (error set) if the
 * progress floor was not met over a whole window.
 */
static bool qemu_file_wait_input(QEMUFile *f)
{
    while (f->floor_bytes && !f->idle) {
        int64_t now = g_get_monotonic_time();
        int64_t left = f->window_start_us +
                       (int64_t)f->floor_window_ms * 1000 - now;
        struct pollfd p = { .fd = f->fd, .events = POLLIN };
        int rc;

        if (left <= 0) {
            if (f->window_bytes < f->floor_bytes) {
                qemu_file_set_error(f, -ETIMEDOUT, "the peer sent %zu "
                                    "bytes in %.1f s in the middle of a "
                                    "message (at least %zu wanted) at byte "
                                    "offset %" PRIu64 ": stalled or too "
                                    "slow", f->window_bytes,
                                    f->floor_window_ms / 1000.0,
                                    f->floor_bytes, f->base + f->len);
                return false;
            }
            f->window_start_us = now;
            f->window_bytes = 0;
            continue;
        }
        rc = poll(&p, 1, (int)(left / 1000 + 1));
        if (rc > 0 || (rc < 0 && errno != EINTR)) {
            return true;        /* read() tells what it is */
        }
    }
    return true;
}

/*
 * One read of up to @len bytes from the fd, as read() returns it.  With a
 * progress floor the data that is already there is taken without waiting
 * (no poll per read on a busy stream); only an empty socket waits, until
 * the floor's window says the source is too slow (-1, error set).
 */
static ssize_t qemu_file_read_some(QEMUFile *f, void *buf, size_t len)
{
    ssize_t n;

    if (!f->floor_bytes || f->idle) {
        return read(f->fd, buf, len);
    }
    for (;;) {
        n = recv(f->fd, buf, len, MSG_DONTWAIT);
        if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            return n;
        }
        if (!qemu_file_wait_input(f)) {
            errno = ETIMEDOUT;
            return -1;
        }
    }
}

static QEMUFile *qemu_file_alloc(bool writable, int fd, bool close_fd)
{
    QEMUFile *f = g_new0(QEMUFile, 1);

    f->writable = writable;
    f->fd = fd;
    f->close_fd = close_fd;
    return f;
}

QEMUFile *qemu_file_new_input_fd(int fd, bool close_fd)
{
    QEMUFile *f = qemu_file_alloc(false, fd, close_fd);

    f->cap = QEMU_FILE_BUF_SIZE;
    f->buf = g_malloc(f->cap);
    return f;
}

QEMUFile *qemu_file_new_input_bytes(GBytes *bytes)
{
    QEMUFile *f = qemu_file_alloc(false, -1, false);
    gsize size;

    f->bytes = g_bytes_ref(bytes);
    f->buf = (uint8_t *)g_bytes_get_data(f->bytes, &size);
    f->len = size;
    f->cap = size;
    f->source_done = true;
    return f;
}

QEMUFile *qemu_file_new_output_fd(int fd, bool close_fd)
{
    QEMUFile *f = qemu_file_alloc(true, fd, close_fd);

    f->cap = QEMU_FILE_BUF_SIZE;
    f->buf = g_malloc(f->cap);
    return f;
}

QEMUFile *qemu_file_new_output_buffer(void)
{
    QEMUFile *f = qemu_file_alloc(true, -1, false);

    f->out = g_byte_array_new();
    return f;
}

void qemu_fclose(QEMUFile *f)
{
    if (!f) {
        return;
    }
    if (f->writable && f->fd >= 0) {
        qemu_fflush(f);
    }
    if (f->close_fd && f->fd >= 0) {
        close(f->fd);
    }
    if (f->bytes) {
        g_bytes_unref(f->bytes);
    } else {
        g_free(f->buf);
    }
    if (f->out) {
        g_byte_array_unref(f->out);
    }
    g_clear_error(&f->error);
    g_free(f);
}

int qemu_file_fd(QEMUFile *f)
{
    return f->fd;
}

uint64_t qemu_file_tell(QEMUFile *f)
{
    if (f->writable) {
        return f->base + (f->out ? f->out->len : f->len);
    }
    return f->base + f->pos;
}

int qemu_file_get_error(QEMUFile *f)
{
    return f->last_error;
}

const GError *qemu_file_peek_gerror(QEMUFile *f)
{
    return f->error;
}

bool qemu_file_propagate_error(QEMUFile *f, GError **errp)
{
    if (!f->last_error) {
        return true;
    }
    if (errp && !*errp) {
        *errp = g_error_copy(f->error);
    }
    return false;
}

void qemu_file_set_error(QEMUFile *f, int err, const char *fmt, ...)
{
    va_list ap;

    if (f->last_error) {
        return;
    }
    f->last_error = err < 0 ? err : -EIO;
    va_start(ap, fmt);
    f->error = g_error_new_valist(COLO_ERROR, -f->last_error, fmt, ap);
    va_end(ap);
}

bool stream_error_at(GError **errp, uint64_t at, const char *what,
                     const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(errp, COLO_ERROR, EINVAL, "%s: %s (at byte offset %" PRIu64
                ")", what, msg, at);
    return false;
}

/* Input side ------------------------------------------------------------ */

/*
 * Make at least @want bytes available in the window, reading from the fd.
 * Returns the number available (may be less than @want at end of stream).
 */
static size_t qemu_file_ensure(QEMUFile *f, size_t want)
{
    size_t avail = f->len - f->pos;

    if (avail >= want || f->last_error || f->source_done || f->fd < 0) {
        return avail;
    }
    if (want > QEMU_FILE_PEEK_MAX) {
        qemu_file_set_error(f, -EINVAL, "internal: read window of %zu bytes "
                            "requested", want);
        return avail;
    }
    if (f->pos > 0) {
        memmove(f->buf, f->buf + f->pos, avail);
        f->base += f->pos;
        f->len = avail;
        f->pos = 0;
    }
    if (want > f->cap) {
        f->cap = MAX(want, f->cap * 2);
        f->buf = g_realloc(f->buf, f->cap);
    }
    while (f->len < want) {
        ssize_t n;

        n = qemu_file_read_some(f, f->buf + f->len, f->cap - f->len);
        if (n < 0 && f->last_error) {
            break;              /* the progress floor said why */
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            qemu_file_set_error(f, -errno, "read error at byte offset %"
                                PRIu64 ": %s", f->base + f->len,
                                g_strerror(errno));
            break;
        }
        if (n == 0) {
            f->source_done = true;
            break;
        }
        f->len += n;
        f->window_bytes += n;
        if (f->quickack) {
            qemu_file_ack_now(f);
        }
    }
    return f->len - f->pos;
}

static bool qemu_file_need(QEMUFile *f, size_t size)
{
    size_t avail;

    if (f->last_error) {
        return false;
    }
    avail = qemu_file_ensure(f, size);
    if (avail < size) {
        qemu_file_set_error(f, -EPIPE, "stream truncated at byte offset %"
                            PRIu64 " (needed %zu more bytes, %zu left)",
                            qemu_file_tell(f), size, avail);
        return false;
    }
    return true;
}

const uint8_t *qemu_get_ptr(QEMUFile *f, size_t size)
{
    const uint8_t *p;

    if (!qemu_file_need(f, size)) {
        return NULL;
    }
    p = f->buf + f->pos;
    f->pos += size;
    return p;
}

const uint8_t *qemu_peek(QEMUFile *f, size_t size)
{
    if (f->last_error || qemu_file_ensure(f, size) < size) {
        return NULL;
    }
    return f->buf + f->pos;
}

size_t qemu_file_fill(QEMUFile *f, size_t want)
{
    size_t avail = f->len - f->pos;

    if (avail >= want) {
        return avail;
    }
    return qemu_file_ensure(f, want);
}

size_t qemu_file_buffered(QEMUFile *f)
{
    return f->len - f->pos;
}

void qemu_file_skip(QEMUFile *f, size_t size)
{
    qemu_get_ptr(f, size);
}

bool qemu_file_at_eof(QEMUFile *f)
{
    return !f->last_error && qemu_file_ensure(f, 1) == 0;
}

uint8_t qemu_get_byte(QEMUFile *f)
{
    const uint8_t *p = qemu_get_ptr(f, 1);

    return p ? p[0] : 0;
}

uint16_t qemu_get_be16(QEMUFile *f)
{
    const uint8_t *p = qemu_get_ptr(f, 2);

    return p ? (uint16_t)((p[0] << 8) | p[1]) : 0;
}

uint32_t qemu_get_be32(QEMUFile *f)
{
    const uint8_t *p = qemu_get_ptr(f, 4);

    return p ? ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
               ((uint32_t)p[2] << 8) | p[3] : 0;
}

uint64_t qemu_get_be64(QEMUFile *f)
{
    const uint8_t *p = qemu_get_ptr(f, 8);
    uint64_t v = 0;

    if (!p) {
        return 0;
    }
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

bool qemu_get_buffer(QEMUFile *f, void *buf, size_t size)
{
    uint8_t *dst = buf;
    size_t avail;

    if (f->last_error) {
        return false;
    }
    /* Large reads go straight from the fd into the destination. */
    avail = f->len - f->pos;
    if (size <= avail || f->fd < 0 || size < f->cap / 2) {
        const uint8_t *p = qemu_get_ptr(f, size);

        if (p) {
            memcpy(dst, p, size);
        }
        return p != NULL;
    }
    memcpy(dst, f->buf + f->pos, avail);
    f->pos += avail;
    dst += avail;
    size -= avail;
    while (size > 0) {
        ssize_t n;

        n = qemu_file_read_some(f, dst, size);
        if (n < 0 && f->last_error) {
            return false;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            if (n == 0) {
                f->source_done = true;
                qemu_file_set_error(f, -EPIPE, "stream truncated at byte "
                                    "offset %" PRIu64 " (needed %zu more "
                                    "bytes)", qemu_file_tell(f), size);
            } else {
                qemu_file_set_error(f, -errno, "read error at byte offset %"
                                    PRIu64 ": %s", qemu_file_tell(f),
                                    g_strerror(errno));
            }
            return false;
        }
        dst += n;
        size -= n;
        f->base += n;
        f->window_bytes += n;
    }
    return true;
}

int qemu_get_str8(QEMUFile *f, char buf[256])
{
    uint8_t len = qemu_get_byte(f);

    if (f->last_error || !qemu_get_buffer(f, buf, len)) {
        buf[0] = '\0';
        return -1;
    }
    buf[len] = '\0';
    return len;
}

/* Output side ----------------------------------------------------------- */

static void qemu_file_write_out(QEMUFile *f, const uint8_t *p, size_t size)
{
    while (size > 0 && !f->last_error) {
        ssize_t n = write(f->fd, p, size);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            qemu_file_set_error(f, -errno, "write error at byte offset %"
                                PRIu64 ": %s", f->base, g_strerror(errno));
            return;
        }
        p += n;
        size -= n;
        f->base += n;
    }
}

int qemu_fflush(QEMUFile *f)
{
    if (f->writable && f->fd >= 0 && f->len > 0) {
        qemu_file_write_out(f, f->buf, f->len);
        f->len = 0;
    }
    return f->last_error;
}

void qemu_put_buffer(QEMUFile *f, const void *buf, size_t size)
{
    if (f->last_error) {
        return;
    }
    if (f->out) {
        g_byte_array_append(f->out, buf, size);
        return;
    }
    if (f->len + size > f->cap) {
        qemu_fflush(f);
        if (size >= f->cap / 2) {
            qemu_file_write_out(f, buf, size);
            return;
        }
    }
    memcpy(f->buf + f->len, buf, size);
    f->len += size;
}

void qemu_put_byte(QEMUFile *f, uint8_t v)
{
    qemu_put_buffer(f, &v, 1);
}

void qemu_put_be16(QEMUFile *f, uint16_t v)
{
    uint8_t b[2] = { v >> 8, v };

    qemu_put_buffer(f, b, sizeof(b));
}

void qemu_put_be32(QEMUFile *f, uint32_t v)
{
    uint8_t b[4] = { v >> 24, v >> 16, v >> 8, v };

    qemu_put_buffer(f, b, sizeof(b));
}

void qemu_put_be64(QEMUFile *f, uint64_t v)
{
    uint8_t b[8];

    for (int i = 7; i >= 0; i--) {
        b[i] = v;
        v >>= 8;
    }
    qemu_put_buffer(f, b, sizeof(b));
}

void qemu_put_str8(QEMUFile *f, const char *s)
{
    size_t len = strlen(s);

    g_assert(len <= 255);
    qemu_put_byte(f, len);
    qemu_put_buffer(f, s, len);
}

GBytes *qemu_file_steal_output(QEMUFile *f)
{
    GByteArray *a = f->out;

    if (!a) {
        return NULL;    /* not a memory output */
    }
    f->base += a->len;
    f->out = g_byte_array_new();
    return g_byte_array_free_to_bytes(a);
}
