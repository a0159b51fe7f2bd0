/*
 * crash-test.h: the crash points of the commit tests.
 *
 * Test hook (tests/functional/test_colo_journal.py, test_disk.py): with
 * COLO_TEST_CRASH=N:PHASE[:K] in the environment, colo-secondary kills
 * itself with SIGKILL when the commit of checkpoint N reaches PHASE
 * ("journal-tmp", "journal", "apply" after K pages, "disk" after K disk
 * pages, "applied", "committed").  Costs one branch when unset.
 */
#ifndef QEMU_CRASH_TEST_H
#define QEMU_CRASH_TEST_H

#include "qemu/osdep.h"

void colo_test_crash_point(uint64_t number, const char *phase, uint64_t k);
bool colo_test_crash_armed(uint64_t number, const char *phase);

#endif /* QEMU_CRASH_TEST_H */
