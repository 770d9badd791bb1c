//! Interrupts: their names, and the system-wide softirq account that shows
//! what ran outside the target's threads.

use serde::{Deserialize, Serialize};

use crate::kernel::skel::types::{irq_vector, softirq_totals, softirq_vectors};

/// Softirq vectors, as bpf/kernel_delay.h counts them.
const SOFTIRQ_VECTORS: usize = softirq_vectors::SOFTIRQ_VECTORS.0 as usize;

/// include/linux/interrupt.h, in vector order.
const SOFTIRQ_NAMES: [&str; SOFTIRQ_VECTORS] = [
    "HI", "TIMER", "NET_TX", "NET_RX", "BLOCK", "IRQ_POLL", "TASKLET", "SCHED", "HRTIMER", "RCU",
];

pub fn softirq_name(vec: u32) -> String {
    SOFTIRQ_NAMES
        .get(vec as usize)
        .map_or_else(|| format!("softirq_{vec}"), |name| name.to_string())
}

/// The name of an x86 system vector (enum irq_vector of
/// bpf/kernel_delay.h), as arch/x86's irq_vectors tracepoints call it.
pub fn vector_name(id: u32) -> String {
    let name = match irq_vector(id) {
        irq_vector::VECTOR_LOCAL_TIMER => "LOCAL_TIMER",
        irq_vector::VECTOR_RESCHEDULE => "RESCHEDULE",
        irq_vector::VECTOR_CALL_FUNCTION => "CALL_FUNCTION",
        irq_vector::VECTOR_CALL_FUNCTION_SINGLE => "CALL_FUNCTION_SINGLE",
        irq_vector::VECTOR_IRQ_WORK => "IRQ_WORK",
        irq_vector::VECTOR_THERMAL_APIC => "THERMAL_APIC",
        irq_vector::VECTOR_X86_PLATFORM_IPI => "X86_PLATFORM_IPI",
        irq_vector::VECTOR_ERROR_APIC => "ERROR_APIC",
        irq_vector::VECTOR_SPURIOUS_APIC => "SPURIOUS_APIC",
        _ => return format!("vector_{id}"),
    };
    name.to_string()
}

/// What interrupted a thread, as its report lists it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum HardIrq {
    /// A device IRQ line, by number and handler name (raw, untrusted).
    Line { irq: i32, handler: Vec<u8> },
    /// An x86 system vector (enum irq_vector).
    Vector(u32),
}

/// Softirq time per vector over the window, on the CPUs the target ran on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemSoftirqs {
    pub cpus: Vec<usize>,
    pub vectors: Vec<SystemSoftirq>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemSoftirq {
    pub vec: u32,
    pub name: String,
    /// In any context.
    pub count: u64,
    pub total_ns: u64,
    /// Of which deferred to ksoftirqd, charged to no thread of the target.
    pub ksoftirqd_count: u64,
    pub ksoftirqd_ns: u64,
}

impl SystemSoftirqs {
    /// The difference between two snapshots of the BPF side's per-CPU
    /// counters (index = CPU), over the CPUs the target ran on by the end;
    /// vectors that never ran are left out.
    pub fn between(start: &[softirq_totals], end: &[softirq_totals]) -> Self {
        let cpus: Vec<usize> = end
            .iter()
            .enumerate()
            .filter(|(_, cpu)| cpu.target_ran != 0)
            .map(|(i, _)| i)
            .collect();
        let zero = softirq_totals::default();
        let delta = |vec: usize, field: fn(&softirq_totals) -> &[u64; SOFTIRQ_VECTORS]| -> u64 {
            cpus.iter()
                .map(|&i| {
                    field(&end[i])[vec].saturating_sub(field(start.get(i).unwrap_or(&zero))[vec])
                })
                .sum()
        };
        let vectors = (0..SOFTIRQ_VECTORS)
            .map(|vec| SystemSoftirq {
                vec: vec as u32,
                name: SOFTIRQ_NAMES[vec].to_string(),
                count: delta(vec, |c| &c.count),
                total_ns: delta(vec, |c| &c.ns),
                ksoftirqd_count: delta(vec, |c| &c.ksoftirqd_count),
                ksoftirqd_ns: delta(vec, |c| &c.ksoftirqd_ns),
            })
            .filter(|v| v.count > 0)
            .collect();
        SystemSoftirqs { cpus, vectors }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(softirq_name(3), "NET_RX");
        assert_eq!(softirq_name(9), "RCU");
        assert_eq!(softirq_name(42), "softirq_42");
        assert_eq!(vector_name(0), "LOCAL_TIMER");
        assert_eq!(vector_name(8), "SPURIOUS_APIC");
        assert_eq!(vector_name(99), "vector_99");
    }

    #[test]
    fn system_softirqs_over_the_target_cpus_only() {
        let mut start = vec![softirq_totals::default(); 3];
        start[0].count[3] = 10;
        start[0].ns[3] = 1_000;
        let mut end = start.clone();
        end[0].count[3] = 15;
        end[0].ns[3] = 1_600;
        end[0].ksoftirqd_count[3] = 2;
        end[0].ksoftirqd_ns[3] = 300;
        end[0].target_ran = 1;
        end[1].count[1] = 99; // the target never ran on CPU 1
        end[2].count[9] = 4;
        end[2].ns[9] = 40;
        end[2].target_ran = 1;
        let system = SystemSoftirqs::between(&start, &end);
        assert_eq!(system.cpus, vec![0, 2]);
        assert_eq!(
            system.vectors,
            vec![
                SystemSoftirq {
                    vec: 3,
                    name: "NET_RX".into(),
                    count: 5,
                    total_ns: 600,
                    ksoftirqd_count: 2,
                    ksoftirqd_ns: 300
                },
                SystemSoftirq {
                    vec: 9,
                    name: "RCU".into(),
                    count: 4,
                    total_ns: 40,
                    ksoftirqd_count: 0,
                    ksoftirqd_ns: 0
                },
            ]
        );
    }
}
