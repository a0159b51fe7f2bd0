/*
 * log.h: what colo-standby writes to stderr about its peers.
 *
 * A peer chooses export names, section names, certificate names and the
 * bytes we complain about; none of that may reach the log as it is (a
 * newline forges a line, an escape sequence drives the terminal), and
 * one peer must not fill the log.  So:
 *   - qemu_escape() makes any peer-chosen bytes printable ASCII, bounded
 *     in length, before they go into a message;
 *   - log_peer() writes one line for one peer: control bytes are
 *     neutralised again, the line is cut at LOG_LINE_MAX, each peer gets
 *     LOG_PEER_LINES lines, and all peers together LOG_BURST_LINES per
 *     LOG_WINDOW_S seconds; what is held back is counted and said once.
 */
#ifndef QEMU_LOG_H
#define QEMU_LOG_H

#include "qemu/osdep.h"

#define LOG_LINE_MAX      512   /* bytes of one line, before "\n" */
#define LOG_PEER_LINES    32    /* lines one connection may cause */
#define LOG_BURST_LINES   200   /* lines all peers may cause per window */
#define LOG_WINDOW_S      10

/*
 * @len bytes at @s (stopping at a NUL) as printable ASCII: '\\' doubled,
 * other bytes outside 0x20..0x7e as "\xNN"; at most @max input bytes,
 * then "...".  The caller frees the result.
 */
char *qemu_escape(const char *s, size_t len, size_t max);

/* The log budget of one peer (one connection); zero-initialised. */
typedef struct LogPeer {
    unsigned lines;
} LogPeer;

/* One line "colo-secondary: @fmt..." on stderr, within the budgets. */
void log_peer(LogPeer *peer, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* Lines held back so far (for tests and query commands). */
uint64_t log_suppressed_lines(void);

#endif /* QEMU_LOG_H */
