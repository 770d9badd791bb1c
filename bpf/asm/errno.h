/* SPDX-License-Identifier: GPL-2.0 */
/* libbpf's usdt.bpf.h includes <linux/errno.h>, which wants the target
 * architecture's <asm/errno.h>: for a BPF object that is the generic one
 * (every architecture the tool builds for uses it). */
#include <asm-generic/errno.h>
