// SPDX-License-Identifier: GPL-2.0
/* Unit tests of bpf/irq_nesting.h, the interrupt pairing and nesting rule
 * the BPF programs run, compiled for the host. `make test` runs it. */
#include <linux/types.h>
#include <stdio.h>
#include <string.h>

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#include "irq_nesting.h"

static int passed, failed;

#define EXPECT_EQ(got, want)                                                                  \
	do {                                                                                  \
		unsigned long long g = (got), w = (want);                                     \
		if (g == w) {                                                                 \
			passed++;                                                             \
		} else {                                                              \
			failed++;                                                             \
			fprintf(stderr, "%s:%d: %s = %llu, want %llu\n", __FILE__, __LINE__, \
				#got, g, w);                                                  \
		}                                                                             \
	} while (0)

static struct irq_cpu_state fresh(void)
{
	struct irq_cpu_state state;

	memset(&state, 0, sizeof(state));
	return state;
}

static void softirq_alone(void)
{
	struct irq_cpu_state s = fresh();

	softirq_entered(&s, 3, 1000);
	EXPECT_EQ(softirq_exited(&s, 3, 1500), 500);
	EXPECT_EQ(s.in_softirq, 0);
}

static void hardirq_inside_softirq_is_not_counted_twice(void)
{
	struct irq_cpu_state s = fresh();

	softirq_entered(&s, 3, 1000);
	s.hardirq_start = 1100;
	EXPECT_EQ(hardirq_exited(&s, &s.hardirq_start, 1300), 200);
	s.vector_start = 1400;
	EXPECT_EQ(hardirq_exited(&s, &s.vector_start, 1450), 50);
	/* 1000 ns of softirq, 250 of them hard IRQs charged as such */
	EXPECT_EQ(softirq_exited(&s, 3, 2000), 750);
	EXPECT_EQ(s.hardirq_start, 0);
	EXPECT_EQ(s.vector_start, 0);
}

static void hardirq_outside_softirq_leaves_the_next_softirq_alone(void)
{
	struct irq_cpu_state s = fresh();

	s.vector_start = 100;
	EXPECT_EQ(hardirq_exited(&s, &s.vector_start, 180), 80);
	softirq_entered(&s, 1, 200);
	EXPECT_EQ(softirq_exited(&s, 1, 260), 60);
	/* after that softirq, hard IRQs no longer count against one */
	s.hardirq_start = 300;
	EXPECT_EQ(hardirq_exited(&s, &s.hardirq_start, 340), 40);
	softirq_entered(&s, 9, 400);
	EXPECT_EQ(softirq_exited(&s, 9, 500), 100);
}

static void exits_without_a_seen_entry_are_ignored(void)
{
	struct irq_cpu_state s = fresh();

	EXPECT_EQ(softirq_exited(&s, 3, 500), 0);
	EXPECT_EQ(hardirq_exited(&s, &s.hardirq_start, 500), 0);
	/* with no softirq running, a hard IRQ is just itself */
	s.hardirq_start = 600;
	EXPECT_EQ(hardirq_exited(&s, &s.hardirq_start, 700), 100);
	/* an entry pairs with one exit only */
	softirq_entered(&s, 3, 1000);
	EXPECT_EQ(softirq_exited(&s, 3, 1100), 100);
	EXPECT_EQ(softirq_exited(&s, 3, 1200), 0);
}

static void nested_time_never_exceeds_the_softirq(void)
{
	struct irq_cpu_state s = fresh();

	softirq_entered(&s, 3, 1000);
	s.nested_hardirq_ns = 5000; /* clocks that disagree must not wrap */
	EXPECT_EQ(softirq_exited(&s, 3, 1100), 0);
	EXPECT_EQ(softirq_exited(&s, 4, 900), 0);
}

static void vectors_pair_per_softirq_vector(void)
{
	struct irq_cpu_state s = fresh();

	softirq_entered(&s, 1, 100);
	EXPECT_EQ(softirq_exited(&s, 2, 150), 0); /* no entry for vector 2 */
	softirq_entered(&s, 1, 200);
	EXPECT_EQ(softirq_exited(&s, 1, 230), 30);
}

int main(void)
{
	softirq_alone();
	hardirq_inside_softirq_is_not_counted_twice();
	hardirq_outside_softirq_leaves_the_next_softirq_alone();
	exits_without_a_seen_entry_are_ignored();
	nested_time_never_exceeds_the_softirq();
	vectors_pair_per_softirq_vector();
	printf("irq_nesting: %d passed, %d failed\n", passed, failed);
	return failed != 0;
}
