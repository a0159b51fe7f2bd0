/*
 * qemu-file.h: a buffered, big-endian byte stream over a file descriptor or
 * a memory buffer.
 *
 * A QEMUFile is either for reading or for writing.  Errors are sticky: the
 * first failure is kept (with the byte offset where it happened) and every
 * later call is a no-op that returns zeros, so a parser can read a group of
 * fields and test qemu_file_get_error() once.
 *
 * Owner: the thread that created it; a QEMUFile is not thread safe.
 */
#ifndef MIGRATION_QEMU_FILE_H
#define MIGRATION_QEMU_FILE_H

#include "qemu/osdep.h"

typedef struct QEMUFile QEMUFile;

/* Reading from an fd (socket, pipe, regular file).  The fd stays owned by
 * the caller unless @close_fd. */
QEMUFile *qemu_file_new_input_fd(int fd, bool close_fd);
/* Reading from memory; @bytes is referenced, not copied. */
QEMUFile *qemu_file_new_input_bytes(GBytes *bytes);
/* Writing to an fd. */
QEMUFile *qemu_file_new_output_fd(int fd, bool close_fd);
/* Writing into a growing memory buffer; see qemu_file_steal_output(). */
QEMUFile *qemu_file_new_output_buffer(void);

void qemu_fclose(QEMUFile *f);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QEMUFile, qemu_fclose)

int qemu_file_fd(QEMUFile *f);
/* Input from a TCP socket: acknowledge what arrives at once (COLO's small
 * messages from a sender that keeps Nagle's algorithm on). */
void qemu_file_set_quickack(QEMUFile *f, bool on);
/*
 * Input from a peer: while a read waits in the middle of the stream, at
 * least @min_bytes must arrive in every @window_ms milliseconds, or the read
 * fails naming the rate (a source that stalls or trickles cannot hold
 * the stream forever).  @min_bytes 0 turns it off (the default).
 */
void qemu_file_set_progress_floor(QEMUFile *f, size_t min_bytes,
                                  int window_ms);
/* The reader waits at a message boundary, where a silent source is fine
 * (COLO between checkpoints); false again once the message begins. */
void qemu_file_set_idle(QEMUFile *f, bool idle);

/* Bytes consumed (input) or produced (output) so far. */
uint64_t qemu_file_tell(QEMUFile *f);

/* 0 or a negative errno; the message is kept in the GError. */
int qemu_file_get_error(QEMUFile *f);
const GError *qemu_file_peek_gerror(QEMUFile *f);
/* True if @f has no error; else false with the (sticky) error copied
 * into *@errp, unless that is already set. */
bool qemu_file_propagate_error(QEMUFile *f, GError **errp);
/* Record an error found by a parser; only the first one sticks. */
void qemu_file_set_error(QEMUFile *f, int err, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);
/* Sets @errp to "WHAT: MESSAGE (at byte offset AT)" and returns false: the
 * one form every parser uses to report a defect of the stream. */
bool stream_error_at(GError **errp, uint64_t at, const char *what,
                     const char *fmt, ...) G_GNUC_PRINTF(4, 5);

/* Reading.  On error or end of stream they return 0 and set the error. */
uint8_t qemu_get_byte(QEMUFile *f);
uint16_t qemu_get_be16(QEMUFile *f);
uint32_t qemu_get_be32(QEMUFile *f);
uint64_t qemu_get_be64(QEMUFile *f);
/* Reads exactly @size bytes; false (and error set) if that is impossible. */
bool qemu_get_buffer(QEMUFile *f, void *buf, size_t size);
/* Pointer to the next @size bytes inside the buffer, consumed; valid until
 * the next read call.  NULL on error. */
const uint8_t *qemu_get_ptr(QEMUFile *f, size_t size);
/* Reads a str8 (u8 length + bytes) into @buf as a NUL-terminated string;
 * @buf must hold 256 bytes.  Returns the length, -1 on error. */
int qemu_get_str8(QEMUFile *f, char buf[256]);
/* Peek without consuming: NULL if the stream ends first (error not set when
 * the stream simply ended cleanly; check qemu_file_get_error). */
const uint8_t *qemu_peek(QEMUFile *f, size_t size);
/* Number of bytes buffered right now, reading more (blocking) only if the
 * buffer is empty.  0 means end of stream or error. */
size_t qemu_file_fill(QEMUFile *f, size_t want);
void qemu_file_skip(QEMUFile *f, size_t size);
/* Bytes buffered right now: reading at most this many more bytes will not
 * move the buffer, so pointers from qemu_get_ptr() stay valid. */
size_t qemu_file_buffered(QEMUFile *f);
/* True at a clean end of stream (nothing buffered and the source is done). */
bool qemu_file_at_eof(QEMUFile *f);

/* Writing. */
void qemu_put_byte(QEMUFile *f, uint8_t v);
void qemu_put_be16(QEMUFile *f, uint16_t v);
void qemu_put_be32(QEMUFile *f, uint32_t v);
void qemu_put_be64(QEMUFile *f, uint64_t v);
void qemu_put_buffer(QEMUFile *f, const void *buf, size_t size);
void qemu_put_str8(QEMUFile *f, const char *s);
/* Push everything buffered to the fd; returns qemu_file_get_error(). */
int qemu_fflush(QEMUFile *f);
/* For memory outputs: the bytes written so far; the file keeps none. */
GBytes *qemu_file_steal_output(QEMUFile *f);

#endif /* MIGRATION_QEMU_FILE_H */
