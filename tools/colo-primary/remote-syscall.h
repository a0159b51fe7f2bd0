/*
 * remote-syscall.h: one system call executed by a thread of another
 * process (QEMU's main thread), driven from outside with ptrace.
 *
 * How, on x86-64: the thread is seized and interrupted (it stops where it
 * was: usually just after the `syscall` instruction of its poll loop),
 * its registers are saved, the instruction pointer is set to a `syscall`
 * instruction (the one it was stopped after, or any found in its
 * executable mappings), the number and arguments go into the registers,
 * orig_rax is set to -1 so the kernel does not restart the interrupted
 * call onto ours, one instruction is single-stepped, the result is read,
 * the saved registers are put back (the interrupted call then restarts as
 * it would after any signal) and the thread is let go.  About 0.1 ms; the
 * other threads (the vCPUs) never stop.  Nothing is written into the
 * process's memory, so only calls whose arguments are plain numbers can
 * be made (userfaultfd, close).
 *
 * What can go wrong, each an error naming it: no rights to trace (another
 * tracer already, a policy, another user), the thread stopped by a signal
 * (SIGSTOP), the process dying meanwhile, another architecture.  A signal
 * that arrives for the thread while we hold it is delivered when we let
 * go.  If this process is killed in the ~0.1 ms between setting and
 * restoring the registers, the thread runs on with the injected ones:
 * the one window this cannot close.
 *
 * Owner: the calling thread (ptrace binds the tracee to the thread that
 * seized it; everything happens inside one call).
 */
#ifndef COLO_PRIMARY_REMOTE_SYSCALL_H
#define COLO_PRIMARY_REMOTE_SYSCALL_H

#include "qemu/osdep.h"

#define REMOTE_SYSCALL_MAX_ARGS 6

/* Runs system call @nr with @nargs (≤ 6) plain-number arguments in thread
 * @tid; *@ret gets its return value (-errno on failure, as the kernel
 * returns it).  False (error set) if the call could not be made at all. */
bool remote_syscall(int tid, long nr, const uint64_t *args, unsigned nargs,
                    int64_t *ret, GError **errp);

/* The pid of the process tracing @pid, 0 if none, -1 if unknown. */
int remote_syscall_tracer_of(int pid);

#endif /* COLO_PRIMARY_REMOTE_SYSCALL_H */
