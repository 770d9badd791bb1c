/* A workload for kernel-delay's trigger tests: ROUNDS times, a pause of
 * PAUSE milliseconds (default 20), then begin(), one sleep of MS
 * milliseconds, end(); the USDT probes kd:begin and kd:end mark the same
 * places, and the thread renames itself (the task:task_rename tracepoint)
 * before the first round. MS may be a list, MS1,MS2,..., one per round in
 * turn. A sleep or pause of 0 is still a call to clock_nanosleep. */
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/sdt.h>
#include <time.h>

static void sleep_ms(long ms)
{
	struct timespec duration = { .tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000L };

	clock_nanosleep(CLOCK_MONOTONIC, 0, &duration, NULL);
}

__attribute__((noinline)) void begin(void)
{
	DTRACE_PROBE(kd, begin);
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void end(void)
{
	DTRACE_PROBE(kd, end);
	__asm__ volatile("" ::: "memory");
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 1;
	char *lengths = argc > 2 ? strdup(argv[2]) : strdup("100");
	long pause = argc > 3 ? atol(argv[3]) : 20;
	long ms[64];
	int n = 0;

	for (char *length = strtok(lengths, ","); length && n < 64; length = strtok(NULL, ","))
		ms[n++] = atol(length);
	prctl(PR_SET_NAME, "kd-triggered");
	for (int i = 0; i < rounds; i++) {
		sleep_ms(pause);
		begin();
		sleep_ms(ms[i % n]);
		end();
	}
	return 0;
}
