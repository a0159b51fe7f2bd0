/*
 * remote-syscall.c: a system call inside another process's thread (see
 * remote-syscall.h).
 */
#include "qemu/osdep.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#if defined(__x86_64__)
#include <sys/user.h>
#endif

#include "tools/colo-primary/remote-syscall.h"

/* Stops of the thread we accept before giving up (signals that keep
 * arriving while we single-step). */
#define MAX_STEP_TRIES  16
/* How much of each executable mapping is searched for an instruction. */
#define SEARCH_BYTES    (1 << 20)

int remote_syscall_tracer_of(int pid)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/status", pid);
    g_autofree char *text = NULL;
    const char *p;

    if (!g_file_get_contents(path, &text, NULL, NULL) ||
        !(p = strstr(text, "\nTracerPid:"))) {
        return -1;
    }
    return (int)g_ascii_strtoll(p + 11, NULL, 10);
}

#if defined(__x86_64__)

static const uint8_t SYSCALL_INSN[2] = { 0x0f, 0x05 };

/* Reads @len bytes at @addr of @tid's memory (we trace it). */
static bool peek(int memfd, uint64_t addr, void *buf, size_t len)
{
    return pread(memfd, buf, len, (off_t)addr) == (ssize_t)len;
}

/*
 * The address of a `syscall` instruction in @tid: the one its stopped
 * system call used if it was in one, else the first two bytes 0f 05 in an
 * executable mapping (the vDSO first).  Any such pair will do: we execute
 * exactly one instruction there, whatever the code around it means.
 */
static bool find_syscall_site(int tid, int memfd,
                              const struct user_regs_struct *regs,
                              uint64_t *site, GError **errp)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/maps", tid);
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    uint8_t two[2], *buf;
    bool found = false;

    if ((int64_t)regs->orig_rax >= 0 && regs->rip >= 2 &&
        peek(memfd, regs->rip - 2, two, 2) && !memcmp(two, SYSCALL_INSN, 2)) {
        *site = regs->rip - 2;
        return true;
    }
    if (!g_file_get_contents(path, &text, NULL, errp)) {
        return false;
    }
    lines = g_strsplit(text, "\n", -1);
    buf = g_malloc(SEARCH_BYTES);
    for (int pass = 0; pass < 2 && !found; pass++) {
        for (int i = 0; lines[i] && !found; i++) {
            unsigned long long start, end;
            char perms[5];
            size_t len;

            if (sscanf(lines[i], "%llx-%llx %4s", &start, &end, perms) != 3 ||
                perms[0] != 'r' || perms[2] != 'x' ||
                (pass == 0) != (strstr(lines[i], "[vdso]") != NULL)) {
                continue;
            }
            len = MIN(end - start, (unsigned long long)SEARCH_BYTES);
            if (!peek(memfd, start, buf, len)) {
                continue;
            }
            for (size_t k = 0; k + 1 < len && !found; k++) {
                if (buf[k] == SYSCALL_INSN[0] && buf[k + 1] == SYSCALL_INSN[1]) {
                    *site = start + k;
                    found = true;
                }
            }
        }
    }
    g_free(buf);
    if (!found) {
        g_set_error(errp, COLO_ERROR, ENOENT, "no syscall instruction found "
                    "in the executable mappings of thread %d", tid);
    }
    return found;
}

/* Waits for the next stop of @tid; false (error set) if it ended. */
static bool wait_stop(int tid, int *status, GError **errp)
{
    for (;;) {
        pid_t r = waitpid(tid, status, __WALL);

        if (r == tid) {
            break;
        }
        if (r < 0 && errno == EINTR) {
            continue;
        }
        g_set_error(errp, COLO_ERROR, errno, "waiting for thread %d: %s",
                    tid, g_strerror(errno));
        return false;
    }
    if (!WIFSTOPPED(*status)) {
        g_set_error(errp, COLO_ERROR, ESRCH, "thread %d ended (%s %d) while "
                    "a system call was injected", tid,
                    WIFEXITED(*status) ? "exit status" : "signal",
                    WIFEXITED(*status) ? WEXITSTATUS(*status) :
                    WTERMSIG(*status));
        return false;
    }
    return true;
}

static bool set_regs(int tid, const struct user_regs_struct *r,
                     GError **errp)
{
    if (ptrace(PTRACE_SETREGS, tid, NULL, r) < 0) {
        g_set_error(errp, COLO_ERROR, errno, "setting the registers of "
                    "thread %d: %s", tid, g_strerror(errno));
        return false;
    }
    return true;
}

/* Steps @tid through the instruction at @site; signals that stop it on
 * the way are kept in *@pending, to be delivered at the end. */
static bool step_over(int tid, uint64_t site, int *pending,
                      struct user_regs_struct *after, GError **errp)
{
    for (int i = 0; i < MAX_STEP_TRIES; i++) {
        int status;

        if (ptrace(PTRACE_SINGLESTEP, tid, NULL, NULL) < 0) {
            g_set_error(errp, COLO_ERROR, errno, "single-stepping thread "
                        "%d: %s", tid, g_strerror(errno));
            return false;
        }
        if (!wait_stop(tid, &status, errp)) {
            return false;
        }
        if (ptrace(PTRACE_GETREGS, tid, NULL, after) < 0) {
            g_set_error(errp, COLO_ERROR, errno, "reading the registers of "
                        "thread %d: %s", tid, g_strerror(errno));
            return false;
        }
        if (after->rip == site + 2) {
            return true;         /* the system call ran */
        }
        if (WSTOPSIG(status) != SIGTRAP && (status >> 16) == 0) {
            *pending = WSTOPSIG(status);
        }
        if (after->rip != site) {
            g_set_error(errp, COLO_ERROR, EIO, "thread %d went to 0x%llx "
                        "instead of executing the system call at 0x%" PRIx64,
                        tid, (unsigned long long)after->rip, site);
            return false;
        }
    }
    g_set_error(errp, COLO_ERROR, EAGAIN, "thread %d kept stopping (signals) "
                "before it executed the system call", tid);
    return false;
}

static bool inject(int tid, long nr, const uint64_t *args, unsigned nargs,
                   int64_t *ret, int *pending, GError **errp)
{
    g_autofree char *mem_path = g_strdup_printf("/proc/%d/mem", tid);
    struct user_regs_struct saved, regs, after;
    uint64_t site;
    int status, memfd;
    bool ok;

    if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) < 0) {
        g_set_error(errp, COLO_ERROR, errno, "interrupting thread %d: %s",
                    tid, g_strerror(errno));
        return false;
    }
    if (!wait_stop(tid, &status, errp)) {
        return false;
    }
    if ((status >> 16) == PTRACE_EVENT_STOP &&
        WSTOPSIG(status) != SIGTRAP) {
        g_set_error(errp, COLO_ERROR, EAGAIN, "QEMU is stopped (signal %s); "
                    "nothing is injected into a stopped process",
                    strsignal(WSTOPSIG(status)));
        return false;
    }
    if ((status >> 16) == 0) {
        /* a signal was on its way: deliver it when we let go (the
         * interrupt's own stop then never comes: detaching clears it) */
        *pending = WSTOPSIG(status);
    }
    if (ptrace(PTRACE_GETREGS, tid, NULL, &saved) < 0) {
        g_set_error(errp, COLO_ERROR, errno, "reading the registers of "
                    "thread %d: %s", tid, g_strerror(errno));
        return false;
    }
    memfd = open(mem_path, O_RDONLY | O_CLOEXEC);
    if (memfd < 0) {
        g_set_error(errp, COLO_ERROR, errno, "%s: %s", mem_path,
                    g_strerror(errno));
        return false;
    }
    ok = find_syscall_site(tid, memfd, &saved, &site, errp);
    close(memfd);
    if (!ok) {
        return false;
    }
    regs = saved;
    regs.rip = site;
    regs.rax = (unsigned long long)nr;
    regs.orig_rax = (unsigned long long)-1;
    regs.rdi = nargs > 0 ? args[0] : 0;
    regs.rsi = nargs > 1 ? args[1] : 0;
    regs.rdx = nargs > 2 ? args[2] : 0;
    regs.r10 = nargs > 3 ? args[3] : 0;
    regs.r8 = nargs > 4 ? args[4] : 0;
    regs.r9 = nargs > 5 ? args[5] : 0;
    if (!set_regs(tid, &regs, errp)) {
        return false;
    }
    ok = step_over(tid, site, pending, &after, errp);
    /* whatever happened, the thread gets its own registers back */
    if (!set_regs(tid, &saved, ok ? errp : NULL)) {
        return false;
    }
    if (ok) {
        *ret = (int64_t)after.rax;
    }
    return ok;
}

bool remote_syscall(int tid, long nr, const uint64_t *args, unsigned nargs,
                    int64_t *ret, GError **errp)
{
    int pending = 0;
    bool ok;

    g_assert(nargs <= REMOTE_SYSCALL_MAX_ARGS);
    if (ptrace(PTRACE_SEIZE, tid, NULL, NULL) < 0) {
        int e = errno, tracer = remote_syscall_tracer_of(tid);

        if (e == EPERM && tracer > 0) {
            g_set_error(errp, COLO_ERROR, e, "QEMU (thread %d) is already "
                        "traced by process %d", tid, tracer);
        } else {
            g_set_error(errp, COLO_ERROR, e, "cannot trace QEMU (thread %d): "
                        "%s", tid, g_strerror(e));
        }
        return false;
    }
    ok = inject(tid, nr, args, nargs, ret, &pending, errp);
    if (ptrace(PTRACE_DETACH, tid, NULL, (void *)(uintptr_t)pending) < 0 &&
        ok) {
        /* only possible if the thread is gone: the call itself ran */
        g_set_error(errp, COLO_ERROR, errno, "letting thread %d go: %s", tid,
                    g_strerror(errno));
        return false;
    }
    return ok;
}

#else

bool remote_syscall(int tid, long nr, const uint64_t *args, unsigned nargs,
                    int64_t *ret, GError **errp)
{
    g_set_error(errp, COLO_ERROR, ENOTSUP, "injecting a system call into "
                "QEMU is only implemented for x86-64");
    return false;
}

#endif
