/*
 * crash-test.c: see include/qemu/crash-test.h.
 */
#include "qemu/osdep.h"

#include <signal.h>

#include "qemu/crash-test.h"

typedef struct CrashPlan {
    bool parsed, armed;
    uint64_t number;
    char phase[16];
    uint64_t k;
} CrashPlan;

static CrashPlan crash_plan;

static const CrashPlan *crash_plan_get(void)
{
    if (!crash_plan.parsed) {
        const char *spec = g_getenv("COLO_TEST_CRASH");
        g_auto(GStrv) p = spec ? g_strsplit(spec, ":", 3) : NULL;

        crash_plan.parsed = true;
        if (p && p[0] && p[1] && strlen(p[1]) < sizeof(crash_plan.phase)) {
            crash_plan.armed = true;
            crash_plan.number = g_ascii_strtoull(p[0], NULL, 10);
            g_strlcpy(crash_plan.phase, p[1], sizeof(crash_plan.phase));
            crash_plan.k = p[2] ? g_ascii_strtoull(p[2], NULL, 10) : 0;
        }
    }
    return &crash_plan;
}

bool colo_test_crash_armed(uint64_t number, const char *phase)
{
    const CrashPlan *cp = crash_plan_get();

    return cp->armed && cp->number == number && !strcmp(cp->phase, phase);
}

void colo_test_crash_point(uint64_t number, const char *phase, uint64_t k)
{
    if (colo_test_crash_armed(number, phase) && k >= crash_plan.k) {
        raise(SIGKILL);
    }
}
