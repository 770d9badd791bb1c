/* SPDX-License-Identifier: GPL-2.0 */
/* Per-CPU pairing of interrupt entries and exits, and the nesting rule: a
 * hard IRQ that interrupts a softirq is charged as a hard IRQ, and its time
 * is taken out of the softirq's. Pure arithmetic on one CPU's state, so that
 * the host can unit-test it (tests/irq_nesting_test.c) as the BPF programs
 * run it. */
#ifndef __IRQ_NESTING_H
#define __IRQ_NESTING_H

#include "kernel_delay.h"

struct irq_cpu_state {
	__u64 softirq_start[SOFTIRQ_VECTORS];
	__u64 hardirq_start;	/* device IRQ handler */
	__u64 vector_start;	/* x86 system vector */
	__u64 in_softirq;
	__u64 nested_hardirq_ns;	/* hard IRQ time inside the running softirq */
	/* What runs while its start is set: what a wakeup there came from. */
	__s32 hardirq;		/* IRQ number */
	__u32 vector;		/* enum irq_vector */
	__u32 softirq_vec;
	__u32 pad;
};

static __always_inline void softirq_entered(struct irq_cpu_state *state, __u32 vec, __u64 now)
{
	state->softirq_start[vec] = now;
	state->in_softirq = 1;
	state->softirq_vec = vec;
	state->nested_hardirq_ns = 0;
}

/* The softirq's own time, without the hard IRQs inside it; 0 when its
 * entry was not seen (it began before tracing). */
static __always_inline __u64 softirq_exited(struct irq_cpu_state *state, __u32 vec, __u64 now)
{
	__u64 start = state->softirq_start[vec], duration;

	state->softirq_start[vec] = 0;
	state->in_softirq = 0;
	if (!start || now < start)
		return 0;
	duration = now - start;
	return duration - (state->nested_hardirq_ns < duration ? state->nested_hardirq_ns : duration);
}

/* A hard IRQ (device handler or system vector) that began at *start ended:
 * its duration, or 0 when its entry was not seen. */
static __always_inline __u64 hardirq_exited(struct irq_cpu_state *state, __u64 *start, __u64 now)
{
	__u64 began = *start, duration;

	*start = 0;
	if (!began || now < began)
		return 0;
	duration = now - began;
	if (state->in_softirq)
		state->nested_hardirq_ns += duration;
	return duration;
}

#endif /* __IRQ_NESTING_H */
