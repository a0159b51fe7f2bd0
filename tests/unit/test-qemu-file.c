/*
 * test-qemu-file.c: big-endian reads and writes, sticky errors with byte
 * offsets, peeks, and the fd path (a pipe fed in small pieces).
 */
#include "qemu/osdep.h"

#include "migration/qemu-file.h"

static void test_round_trip(void)
{
    g_autoptr(QEMUFile) out = qemu_file_new_output_buffer();
    g_autoptr(QEMUFile) in = NULL;
    g_autoptr(GBytes) bytes = NULL;
    char s[256];

    qemu_put_byte(out, 0xab);
    qemu_put_be16(out, 0x1234);
    qemu_put_be32(out, 0x5145564d);
    qemu_put_be64(out, UINT64_C(0x0102030405060708));
    qemu_put_str8(out, "pc.ram");
    bytes = qemu_file_steal_output(out);
    g_assert_cmpuint(g_bytes_get_size(bytes), ==, 1 + 2 + 4 + 8 + 7);

    in = qemu_file_new_input_bytes(bytes);
    g_assert_cmphex(qemu_get_byte(in), ==, 0xab);
    g_assert_cmphex(qemu_get_be16(in), ==, 0x1234);
    g_assert_cmphex(qemu_get_be32(in), ==, 0x5145564d);
    g_assert_cmphex(qemu_get_be64(in), ==, UINT64_C(0x0102030405060708));
    g_assert_cmpint(qemu_get_str8(in, s), ==, 6);
    g_assert_cmpstr(s, ==, "pc.ram");
    g_assert_cmpint(qemu_file_get_error(in), ==, 0);
    g_assert_true(qemu_file_at_eof(in));
}

static void test_truncation_is_sticky(void)
{
    static const uint8_t data[] = { 1, 2, 3 };
    g_autoptr(GBytes) bytes = g_bytes_new_static(data, sizeof(data));
    g_autoptr(QEMUFile) in = qemu_file_new_input_bytes(bytes);
    const GError *err;

    g_assert_cmpuint(qemu_get_byte(in), ==, 1);
    g_assert_cmpuint(qemu_get_be32(in), ==, 0);
    g_assert_cmpint(qemu_file_get_error(in), <, 0);
    err = qemu_file_peek_gerror(in);
    g_assert_nonnull(strstr(err->message, "truncated at byte offset 1"));
    /* later reads stay failed and return 0 */
    g_assert_cmpuint(qemu_get_byte(in), ==, 0);
}

static gpointer writer(gpointer opaque)
{
    int fd = GPOINTER_TO_INT(opaque);

    for (int i = 0; i < 1000; i++) {
        uint8_t b[3] = { i >> 8, i, 0x7e };

        g_assert_cmpint(write(fd, b, sizeof(b)), ==, 3);
    }
    close(fd);
    return NULL;
}

static void test_pipe_and_peek(void)
{
    int fds[2];
    GThread *t;
    g_autoptr(QEMUFile) in = NULL;
    g_autofree uint8_t *big = g_malloc(3000);

    g_assert_cmpint(pipe(fds), ==, 0);
    t = g_thread_new("writer", writer, GINT_TO_POINTER(fds[1]));
    in = qemu_file_new_input_fd(fds[0], true);
    /* a peek far ahead has to wait for many small writes */
    g_assert_nonnull(qemu_peek(in, 2999));
    g_assert_cmphex(qemu_peek(in, 3)[2], ==, 0x7e);
    g_assert_true(qemu_get_buffer(in, big, 3000));
    g_assert_cmphex(big[2997], ==, 999 >> 8);
    g_assert_cmphex(big[2998], ==, 999 & 0xff);
    g_assert_cmpuint(qemu_file_tell(in), ==, 3000);
    g_assert_true(qemu_file_at_eof(in));
    g_thread_join(t);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qemu-file/round-trip", test_round_trip);
    g_test_add_func("/qemu-file/truncation", test_truncation_is_sticky);
    g_test_add_func("/qemu-file/pipe-and-peek", test_pipe_and_peek);
    return g_test_run();
}
