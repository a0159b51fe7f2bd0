/*
 * log.c: see include/qemu/log.h.
 *
 * Owner: any thread; the shared window is under its own lock.
 */
#include "qemu/osdep.h"

#include "qemu/log.h"

static GMutex window_lock;
static gint64 window_start_us;
static unsigned window_lines;
static uint64_t window_held;     /* held back in this window, not yet said */
static uint64_t total_held;

char *qemu_escape(const char *s, size_t len, size_t max)
{
    GString *out = g_string_sized_new(MIN(len, max) + 8);
    size_t i;

    for (i = 0; i < len && i < max && s[i]; i++) {
        unsigned char c = s[i];

        if (c == '\\') {
            g_string_append(out, "\\\\");
        } else if (c >= 0x20 && c < 0x7f) {
            g_string_append_c(out, c);
        } else {
            g_string_append_printf(out, "\\x%02x", c);
        }
    }
    if (i < len && s[i]) {
        g_string_append(out, "...");
    }
    return g_string_free(out, FALSE);
}

/* Takes a line from the shared window; false if it is spent.  Says once
 * per window how many lines the last one held back. */
static bool window_take(void)
{
    gint64 now = g_get_monotonic_time();
    uint64_t said_held = 0;
    bool ok;

    g_mutex_lock(&window_lock);
    if (now - window_start_us >= LOG_WINDOW_S * G_USEC_PER_SEC) {
        said_held = window_held;
        window_start_us = now;
        window_lines = 0;
        window_held = 0;
    }
    ok = window_lines < LOG_BURST_LINES;
    if (ok) {
        window_lines++;
    } else {
        window_held++;
        total_held++;
    }
    g_mutex_unlock(&window_lock);
    if (said_held) {
        fprintf(stderr, "colo-secondary: %" PRIu64 " log lines about peers "
                "were held back (more than %d in %d s)\n", said_held,
                LOG_BURST_LINES, LOG_WINDOW_S);
    }
    return ok;
}

void log_peer(LogPeer *peer, const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;
    size_t len;

    if (peer && peer->lines > LOG_PEER_LINES) {
        g_mutex_lock(&window_lock);
        total_held++;
        g_mutex_unlock(&window_lock);
        return;
    }
    if (!window_take()) {
        return;
    }
    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    /* whatever a caller forgot to escape cannot forge a line */
    for (char *p = msg; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            *p = '?';
        }
    }
    len = strlen(msg);
    if (len > LOG_LINE_MAX) {
        len = LOG_LINE_MAX;
    }
    if (peer && ++peer->lines > LOG_PEER_LINES) {
        fprintf(stderr, "colo-secondary: %.*s [no more lines about this "
                "peer]\n", (int)len, msg);
        return;
    }
    fprintf(stderr, "colo-secondary: %.*s%s\n", (int)len, msg,
            len < strlen(msg) ? "..." : "");
}

uint64_t log_suppressed_lines(void)
{
    uint64_t n;

    g_mutex_lock(&window_lock);
    n = total_held;
    g_mutex_unlock(&window_lock);
    return n;
}
