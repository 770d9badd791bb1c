//! Triggers that open and close the window (--start-trigger,
//! --stop-trigger), in the Open vSwitch tool's syntax: what the user names,
//! parsed and checked before anything is attached.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use libbpf_rs::btf::types::Typedef;
use libbpf_rs::btf::Btf;
use libbpf_rs::{Link, ProgramMut, UprobeOpts};

/// A probe whose hit, in a traced process, moves the window on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// A USDT probe of the target's executable, or of `library`.
    Usdt {
        provider: String,
        name: String,
        library: Option<PathBuf>,
    },
    /// Entry to (return from, `ret`) a function of the target's executable,
    /// or of `library`.
    Uprobe {
        function: String,
        library: Option<PathBuf>,
        ret: bool,
    },
    /// A kernel tracepoint.
    Tracepoint { system: String, event: String },
    /// Entry to (return from) a kernel function.
    Kprobe { function: String, ret: bool },
}

/// A trigger as the user gave it, and what it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub spec: String,
    pub probe: Probe,
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spec)
    }
}

const SYNTAX: &str = "a trigger is u:PROVIDER:PROBE[@PATH] or u:PATH:PROVIDER:PROBE (USDT), \
     up:FUNCTION[@PATH] or ur:FUNCTION[@PATH] (uprobe, uretprobe), t:SYSTEM:EVENT (tracepoint), \
     k:FUNCTION or kr:FUNCTION (kprobe, kretprobe)";

/// Parses SPEC: `KIND:WHAT`, KIND short or long (`up` or `uprobe`).
pub fn parse(spec: &str) -> Result<Trigger, String> {
    let (kind, what) = spec.split_once(':').ok_or_else(|| SYNTAX.to_string())?;
    let nonempty = |part: &str| !part.is_empty() && !part.contains(char::is_whitespace);
    // A function's (mangled) name has no colon.
    let name = |part: &str| nonempty(part) && !part.contains(':');
    // `NAME@PATH`: in a library, not the target's executable.
    let in_file = |what: &str| -> Result<(String, Option<PathBuf>), String> {
        match what.split_once('@') {
            Some((name, path)) if nonempty(name) && !path.is_empty() => {
                Ok((name.to_string(), Some(PathBuf::from(path))))
            }
            None if nonempty(what) => Ok((what.to_string(), None)),
            _ => Err(SYNTAX.to_string()),
        }
    };
    let probe = match kind {
        // bpftrace's form, the file first: a path has a slash.
        "u" | "usdt" if what.contains('/') && !what.contains('@') => {
            let parts: Vec<&str> = what.split(':').collect();
            match parts[..] {
                [path, provider, probe] if name(provider) && name(probe) && nonempty(path) => {
                    Probe::Usdt {
                        provider: provider.to_string(),
                        name: probe.to_string(),
                        library: Some(PathBuf::from(path)),
                    }
                }
                _ => return Err(SYNTAX.to_string()),
            }
        }
        "u" | "usdt" => {
            let (probe, library) = in_file(what)?;
            match probe.split_once(':') {
                Some((provider, probe)) if name(provider) && name(probe) => Probe::Usdt {
                    provider: provider.to_string(),
                    name: probe.to_string(),
                    library,
                },
                _ => return Err(SYNTAX.to_string()),
            }
        }
        "up" | "uprobe" | "ur" | "uretprobe" => {
            let (function, library) = in_file(what)?;
            if !name(&function) {
                return Err(SYNTAX.to_string());
            }
            Probe::Uprobe {
                function,
                library,
                ret: matches!(kind, "ur" | "uretprobe"),
            }
        }
        "t" | "trace" | "tracepoint" => match what.split_once(':') {
            Some((system, event)) if nonempty(system) && nonempty(event) => Probe::Tracepoint {
                system: system.to_string(),
                event: event.to_string(),
            },
            _ => return Err(SYNTAX.to_string()),
        },
        "k" | "kprobe" | "kr" | "kretprobe" if nonempty(what) => Probe::Kprobe {
            function: what.to_string(),
            ret: matches!(kind, "kr" | "kretprobe"),
        },
        _ => return Err(SYNTAX.to_string()),
    };
    Ok(Trigger {
        spec: spec.to_string(),
        probe,
    })
}

/// The programs one trigger can be attached as: a kprobe-type program
/// (uprobes, uretprobes, kprobes, kretprobes), a USDT one, a raw
/// tracepoint one.
pub struct Programs<'a, 'obj> {
    pub probe: &'a ProgramMut<'obj>,
    pub usdt: &'a ProgramMut<'obj>,
    pub tracepoint: &'a ProgramMut<'obj>,
}

/// Which of them `probe` needs loaded: (probe, usdt, tracepoint).
pub fn needs(probe: Option<&Probe>) -> (bool, bool, bool) {
    match probe {
        None => (false, false, false),
        Some(Probe::Uprobe { .. } | Probe::Kprobe { .. }) => (true, false, false),
        Some(Probe::Usdt { .. }) => (false, true, false),
        Some(Probe::Tracepoint { .. }) => (false, false, true),
    }
}

/// Attaches `trigger` (in the target's `executable` unless it names a
/// library), checked first: a probe that does not exist is a clear error.
pub fn attach(
    trigger: &Trigger,
    programs: &Programs<'_, '_>,
    executable: &Path,
    btf: &Btf<'_>,
) -> Result<Link> {
    let failed = || format!("cannot attach the trigger {trigger}");
    match &trigger.probe {
        Probe::Uprobe {
            function,
            library,
            ret,
        } => {
            let file = library.as_deref().unwrap_or(executable);
            let opts = UprobeOpts {
                retprobe: *ret,
                func_name: Some(function.clone()),
                ..Default::default()
            };
            // Every process that maps the file: the programs keep to the
            // traced ones (forks and all).
            programs
                .probe
                .attach_uprobe_with_opts(-1, file, 0, opts)
                .with_context(|| format!("no function {function} in {}", file.display()))
                .with_context(failed)
        }
        Probe::Usdt {
            provider,
            name,
            library,
        } => {
            let file = library.as_deref().unwrap_or(executable);
            programs
                .usdt
                .attach_usdt(-1, file, provider, name)
                .with_context(|| format!("no USDT probe {provider}:{name} in {}", file.display()))
                .with_context(failed)
        }
        Probe::Tracepoint { system, event } => {
            // Raw tracepoints are named by event alone and need no tracefs;
            // the kernel's BTF tells whether it has one.
            if btf
                .type_by_name::<Typedef>(&format!("btf_trace_{event}"))
                .is_none()
            {
                bail!(
                    "{}: this kernel has no tracepoint {system}:{event}",
                    failed()
                );
            }
            programs
                .tracepoint
                .attach_raw_tracepoint(event)
                .with_context(failed)
        }
        Probe::Kprobe { function, ret } => {
            if !Path::new(KPROBE_PMU).exists() {
                bail!(
                    "{}: this kernel has no kprobes (CONFIG_KPROBES is off: no {KPROBE_PMU})",
                    failed()
                );
            }
            programs
                .probe
                .attach_kprobe(*ret, function)
                .with_context(|| format!("no kernel function {function} to probe"))
                .with_context(failed)
        }
    }
}

/// Where a kernel with kprobes lists their event source.
const KPROBE_PMU: &str = "/sys/bus/event_source/devices/kprobe";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_in_short_and_long_form() {
        let probe = |spec: &str| parse(spec).unwrap().probe;
        assert_eq!(
            probe("u:myapp:loop_start"),
            Probe::Usdt {
                provider: "myapp".into(),
                name: "loop_start".into(),
                library: None
            }
        );
        assert_eq!(probe("usdt:a:b@/lib/x.so"), {
            Probe::Usdt {
                provider: "a".into(),
                name: "b".into(),
                library: Some("/lib/x.so".into()),
            }
        });
        assert_eq!(
            probe("up:begin"),
            Probe::Uprobe {
                function: "begin".into(),
                library: None,
                ret: false
            }
        );
        assert_eq!(
            probe("uretprobe:malloc@/usr/lib/x86_64-linux-gnu/libc.so.6"),
            Probe::Uprobe {
                function: "malloc".into(),
                library: Some("/usr/lib/x86_64-linux-gnu/libc.so.6".into()),
                ret: true
            }
        );
        assert_eq!(
            probe("t:sched:sched_process_exec"),
            Probe::Tracepoint {
                system: "sched".into(),
                event: "sched_process_exec".into()
            }
        );
        assert_eq!(
            probe("kr:do_sys_openat2"),
            Probe::Kprobe {
                function: "do_sys_openat2".into(),
                ret: true
            }
        );
        assert_eq!(
            probe("u:/usr/sbin/ovs-vswitchd:udpif_revalidator:start_dump"),
            Probe::Usdt {
                provider: "udpif_revalidator".into(),
                name: "start_dump".into(),
                library: Some("/usr/sbin/ovs-vswitchd".into()),
            }
        );
        assert_eq!(parse("ur:end").unwrap().to_string(), "ur:end");
    }

    #[test]
    fn malformed_specs_say_the_syntax() {
        for spec in [
            "",
            "begin",
            "x:begin",
            "up:",
            "u:only",
            "u::b",
            "t:sched",
            "k:",
            "up:@/x",
            "up:a@",
            "up:two words",
            "up::",
            "up:a:b",
            "u:/bin/prog:probe",
            "u:/bin/prog:a:b:c",
            "u:./prog::b",
            "u:a:b:c",
        ] {
            let err = parse(spec).expect_err(spec);
            assert!(
                err.starts_with("a trigger is u:PROVIDER:PROBE"),
                "{spec}: {err}"
            );
        }
    }
}
