/*
 * fuzz-common.h: helpers shared by the libFuzzer harnesses: a private RAM
 * folder per process, emptied after every input.
 */
#ifndef TESTS_FUZZ_COMMON_H
#define TESTS_FUZZ_COMMON_H

#include "qemu/osdep.h"

#include <glib/gstdio.h>

#include "exec/ram_addr.h"

/* RAM announced by one input may not exceed this. */
#define FUZZ_RAM_LIMIT   (64 << 20)

const char *fuzz_ram_dir(void);
void fuzz_clear_ram_dir(void);
RAMList *fuzz_ram_list(void);
/* Aborts (a finding) unless @err carries a non-empty message. */
void fuzz_check_error(const GError *err);

#endif
