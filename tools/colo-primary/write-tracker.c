/*
 * write-tracker.c: what the kinds of write tracker share (see
 * write-tracker.h).
 */
#include "qemu/osdep.h"

#include "migration/wire.h"
#include "tools/colo-primary/write-tracker.h"

bool write_tracker_init(WriteTracker *t, const WriteTrackerOps *ops,
                        uint64_t addr, uint64_t size, GError **errp)
{
    if (addr % TARGET_PAGE_SIZE || size == 0 || size % TARGET_PAGE_SIZE) {
        g_set_error(errp, COLO_ERROR, EINVAL, "QEMU's RAM mapping at 0x%"
                    PRIx64 " (%" PRIu64 " bytes) is not whole pages", addr,
                    size);
        return false;
    }
    t->ops = ops;
    t->npages = size / TARGET_PAGE_SIZE;
    return true;
}
