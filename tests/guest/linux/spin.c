/*
 * spin: the guest's CPU left for its own work (bench/net_buffer.py).
 * Reads a number of seconds on stdin, spins that long on a little
 * arithmetic and prints how many rounds it did, per second.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void)
{
    char line[32];
    double secs, start, end;
    uint64_t rounds = 0;
    volatile uint32_t x = 1;

    if (!fgets(line, sizeof(line), stdin)) {
        return 1;
    }
    secs = atof(line);
    if (secs <= 0 || secs > 600) {
        return 1;
    }
    start = now();
    end = start + secs;
    while (now() < end) {
        for (int i = 0; i < 1000; i++) {
            x = x * 1103515245u + 12345u;
        }
        rounds++;
    }
    printf("%.0f\n", rounds / (now() - start));
    fflush(stdout);
    return 0;
}
