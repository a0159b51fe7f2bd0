/*
 * test-remote-syscall: a system call run inside a child process's thread
 * from outside (remote-syscall.h), with the child in the states QEMU's
 * main thread can be in: blocked in a system call (its poll loop), busy
 * in user space, asleep with a restart block, traced by someone else,
 * gone.  The child must not notice: its blocked call completes with the
 * right data, its loop keeps counting, its sleep still ends.
 */
#include "qemu/osdep.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "tools/colo-primary/remote-syscall.h"


static void reap(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* Blocked in read(): the call runs, then the read gets its data. */
static void test_blocked_in_a_system_call(void)
{
    int to_child[2], from_child[2];
    int64_t ret = 0;
    char buf[8] = "";
    pid_t pid;

    g_assert_cmpint(pipe(to_child), ==, 0);
    g_assert_cmpint(pipe(from_child), ==, 0);
    pid = fork();
    g_assert_cmpint(pid, >=, 0);
    if (pid == 0) {
        char b[8];
        ssize_t n = read(to_child[0], b, sizeof(b));

        _exit(n == 5 && write(from_child[1], b, 5) == 5 ? 0 : 1);
    }
    g_usleep(100 * 1000);           /* let it block */
    for (int i = 0; i < 20; i++) {
        g_autoptr(GError) err = NULL;

        g_assert_true(remote_syscall(pid, SYS_getpid, NULL, 0, &ret, &err));
        g_assert_no_error(err);
        g_assert_cmpint(ret, ==, pid);
    }
    g_assert_cmpint(write(to_child[1], "hello", 5), ==, 5);
    g_assert_cmpint(read(from_child[0], buf, 5), ==, 5);
    g_assert_cmpstr(buf, ==, "hello");
    {
        int status;

        g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
        g_assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    close(to_child[0]);
    close(to_child[1]);
    close(from_child[0]);
    close(from_child[1]);
}

/* Busy in user space: the call runs through an instruction found in its
 * mappings, and the loop goes on counting. */
static void test_busy_in_user_space(void)
{
    volatile uint64_t *counter = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    uint64_t before;
    pid_t pid;

    g_assert_true(counter != MAP_FAILED);
    pid = fork();
    g_assert_cmpint(pid, >=, 0);
    if (pid == 0) {
        for (;;) {
            (*counter)++;
        }
    }
    while (*counter < 1000) {
        g_usleep(1000);
    }
    for (int i = 0; i < 20; i++) {
        g_autoptr(GError) err = NULL;
        uint64_t arg = 0;
        int64_t ret = 0;

        /* getppid: our pid, seen from the child */
        g_assert_true(remote_syscall(pid, SYS_getppid, &arg, 0, &ret, &err));
        g_assert_no_error(err);
        g_assert_cmpint(ret, ==, getpid());
    }
    before = *counter;
    g_usleep(50 * 1000);
    g_assert_cmpuint(*counter, >, before);
    reap(pid);
    munmap((void *)counter, 4096);
}

/* Asleep in nanosleep (restarted through a restart block): the sleep
 * still ends on time. */
static void test_asleep(void)
{
    int64_t t0 = g_get_monotonic_time(), ret = 0;
    int status;
    pid_t pid = fork();

    g_assert_cmpint(pid, >=, 0);
    if (pid == 0) {
        struct timespec ts = { .tv_sec = 0, .tv_nsec = 400 * 1000 * 1000 };

        _exit(nanosleep(&ts, NULL) == 0 ? 0 : 1);
    }
    g_usleep(100 * 1000);
    g_assert_true(remote_syscall(pid, SYS_getpid, NULL, 0, &ret, NULL));
    g_assert_cmpint(ret, ==, pid);
    g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
    g_assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    g_assert_cmpint(g_get_monotonic_time() - t0, <, 5 * G_USEC_PER_SEC);
}

/* Traced by another process: refused, naming the tracer. */
static void test_already_traced(void)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *want = NULL;
    int ready[2];
    pid_t target, tracer;
    int64_t ret;
    char c;

    target = fork();
    g_assert_cmpint(target, >=, 0);
    if (target == 0) {
        for (;;) {
            pause();
        }
    }
    g_assert_cmpint(pipe(ready), ==, 0);
    tracer = fork();
    g_assert_cmpint(tracer, >=, 0);
    if (tracer == 0) {
        if (ptrace(PTRACE_SEIZE, target, NULL, NULL) < 0 ||
            write(ready[1], "k", 1) != 1) {
            _exit(1);
        }
        for (;;) {
            pause();
        }
    }
    g_assert_cmpint(read(ready[0], &c, 1), ==, 1);
    g_assert_false(remote_syscall(target, SYS_getpid, NULL, 0, &ret, &err));
    want = g_strdup_printf("already traced by process %d", tracer);
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(err->message, want));
    g_assert_cmpint(remote_syscall_tracer_of(target), ==, tracer);
    reap(tracer);
    reap(target);
    close(ready[0]);
    close(ready[1]);
}

/* Gone: refused. */
static void test_gone(void)
{
    g_autoptr(GError) err = NULL;
    int64_t ret;
    pid_t pid = fork();

    if (pid == 0) {
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    g_assert_false(remote_syscall(pid, SYS_getpid, NULL, 0, &ret, &err));
    g_assert_nonnull(err);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/remote-syscall/blocked-in-a-system-call",
                    test_blocked_in_a_system_call);
    g_test_add_func("/remote-syscall/busy-in-user-space",
                    test_busy_in_user_space);
    g_test_add_func("/remote-syscall/asleep", test_asleep);
    g_test_add_func("/remote-syscall/already-traced", test_already_traced);
    g_test_add_func("/remote-syscall/gone", test_gone);
    return g_test_run();
}
