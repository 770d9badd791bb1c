//! Stacks of slow calls (--syscall-events) as function names, files and
//! lines: kernel frames from kallsyms, user frames from the target's ELF
//! files and their DWARF (blazesym). A process's memory map is read while
//! it lives, when its first slow call arrives; the files are read once the
//! window has closed, each distinct stack once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use blazesym::symbolize::source::{Elf, Kernel, Source};
use blazesym::symbolize::{Input, Symbolized, Symbolizer};

use crate::records::{SlowCall, NO_STACK};
use crate::sanitize::sanitize;

/// A slow call with its stacks, innermost frame first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolizedCall {
    pub call: SlowCall,
    pub kernel_stack: Vec<String>,
    pub user_stack: Vec<String>,
}

/// One file-backed (or named: `[vdso]`, `[stack]`) range of a process's
/// memory map.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mapping {
    start: u64,
    end: u64,
    /// Offset in the file of `start`.
    offset: u64,
    /// The file, or the kernel's name for the range; empty if anonymous.
    name: String,
}

/// The memory maps of the processes that made slow calls, read while they
/// lived (None: it had exited before).
#[derive(Debug, Default)]
pub struct AddressSpaces {
    maps: HashMap<u32, Option<Vec<Mapping>>>,
}

impl AddressSpaces {
    /// Process `pid` made a slow call: its map is read, the first time.
    pub fn note(&mut self, pid: u32) {
        self.maps.entry(pid).or_insert_with(|| read_maps(pid));
    }

    /// The mapping of `pid` that holds `address`; the map is read again
    /// when none does and the process lives (it mapped a library since).
    fn mapping(&mut self, pid: u32, address: u64) -> Result<&Mapping, &'static str> {
        let holds = |maps: &Option<Vec<Mapping>>| {
            maps.as_ref()
                .is_some_and(|maps| maps.iter().any(|m| (m.start..m.end).contains(&address)))
        };
        if !self.maps.get(&pid).is_some_and(holds) {
            if let Some(fresh) = read_maps(pid) {
                self.maps.insert(pid, Some(fresh));
            }
        }
        match self.maps.get(&pid) {
            Some(Some(maps)) => maps
                .iter()
                .find(|m| (m.start..m.end).contains(&address))
                .ok_or("not mapped"),
            _ => Err("process exited before its memory map was read"),
        }
    }
}

fn read_maps(pid: u32) -> Option<Vec<Mapping>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    Some(text.lines().filter_map(parse_maps_line).collect())
}

/// `start-end perms offset dev inode [name]`
fn parse_maps_line(line: &str) -> Option<Mapping> {
    let mut fields = line.splitn(6, ' ');
    let (start, end) = fields.next()?.split_once('-')?;
    let offset = fields.nth(1)?;
    let name = fields.nth(2).unwrap_or("").trim_start();
    Some(Mapping {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        offset: u64::from_str_radix(offset, 16).ok()?,
        name: name.to_string(),
    })
}

/// Symbolizes the stacks of `calls`; `stack` reads a stack's frames from
/// the kernel's map by id.
pub fn symbolize(
    calls: Vec<SlowCall>,
    stack: impl Fn(i32) -> Option<Vec<u64>>,
    spaces: &mut AddressSpaces,
) -> Vec<SymbolizedCall> {
    let symbolizer = Symbolizer::new();
    let modules = kernel_modules();
    let mut kernel_stacks: HashMap<i32, Vec<String>> = HashMap::new();
    let mut user_stacks: HashMap<(u32, i32), Vec<String>> = HashMap::new();
    calls
        .into_iter()
        .map(|call| {
            let kernel_stack = kernel_stacks
                .entry(call.kernel_stack)
                .or_insert_with(|| {
                    frames_of(call.kernel_stack, &stack, |addresses| {
                        kernel_frames(&symbolizer, &modules, addresses)
                    })
                })
                .clone();
            let user_stack = user_stacks
                .entry((call.pid, call.user_stack))
                .or_insert_with(|| {
                    frames_of(call.user_stack, &stack, |addresses| {
                        user_frames(&symbolizer, spaces, call.pid, addresses)
                    })
                })
                .clone();
            SymbolizedCall {
                call,
                kernel_stack,
                user_stack,
            }
        })
        .collect()
}

/// The frames of stack `id`, or why there are none.
fn frames_of(
    id: i32,
    stack: impl Fn(i32) -> Option<Vec<u64>>,
    symbolize: impl FnOnce(&[u64]) -> Vec<String>,
) -> Vec<String> {
    match id {
        NO_STACK => Vec::new(),
        id if id < 0 => vec![format!("[stack not recorded: {}]", why_not_recorded(-id))],
        id => match stack(id) {
            Some(addresses) => symbolize(&addresses),
            None => vec!["[stack not found in the stack map]".to_string()],
        },
    }
}

/// What bpf_get_stackid()'s error `errno` means here.
fn why_not_recorded(errno: i32) -> String {
    match nix::errno::Errno::from_raw(errno) {
        nix::errno::Errno::EEXIST | nix::errno::Errno::ENOMEM => {
            "the stack map was full or another stack held its slot: raise --stack-trace-size"
                .to_string()
        }
        nix::errno::Errno::EFAULT => "the stack could not be read".to_string(),
        other => other.desc().to_string(),
    }
}

/// The addresses to look up: all but the innermost frame are return
/// addresses, and the call they return from is the byte before.
fn call_sites(addresses: &[u64]) -> Vec<u64> {
    addresses
        .iter()
        .enumerate()
        .map(|(i, &a)| if i == 0 { a } else { a.saturating_sub(1) })
        .collect()
}

/// `function+0xoff [kernel]`, `[module]` for a module's.
fn kernel_frames(
    symbolizer: &Symbolizer,
    modules: &[(u64, u64, String)],
    addresses: &[u64],
) -> Vec<String> {
    let sites = call_sites(addresses);
    let source = Source::Kernel(Kernel::default());
    let symbols = symbolizer
        .symbolize(&source, Input::AbsAddr(&sites))
        .unwrap_or_default();
    let name = |i: usize| match symbols.get(i) {
        Some(Symbolized::Sym(sym)) => Some(sym.name.as_ref()),
        _ => None,
    };
    // The innermost frames are the BPF program that took the stack.
    let tracer_frames = (0..addresses.len())
        .take_while(|&i| name(i).is_some_and(is_tracer_frame))
        .count();
    addresses
        .iter()
        .enumerate()
        .skip(tracer_frames)
        .map(|(i, &address)| {
            let module = modules
                .iter()
                .find(|(base, size, _)| (*base..base + size).contains(&address))
                .map_or("kernel", |(_, _, name)| name.as_str());
            match symbols.get(i) {
                Some(Symbolized::Sym(sym)) => format!(
                    "{}+{:#x} [{module}]",
                    sanitize(sym.name.as_bytes()),
                    sym.offset + usize::from(i > 0)
                ),
                _ => format!("{address:#x} [{module}]"),
            }
        })
        .collect()
}

/// Frames of the BPF program and of the tracepoint that ran it.
fn is_tracer_frame(name: &str) -> bool {
    [
        "bpf_prog_",
        "bpf_trace_run",
        "__bpf_trace_",
        "bpf_get_stackid",
    ]
    .iter()
    .any(|prefix| name.starts_with(prefix))
}

/// `function+0xoff (file:line) [path]`; a frame with no symbol shows its
/// address and the mapping it falls in.
fn user_frames(
    symbolizer: &Symbolizer,
    spaces: &mut AddressSpaces,
    pid: u32,
    addresses: &[u64],
) -> Vec<String> {
    let sites = call_sites(addresses);
    addresses
        .iter()
        .zip(sites)
        .enumerate()
        .map(|(i, (&address, site))| {
            let mapping = match spaces.mapping(pid, site) {
                Ok(mapping) => mapping.clone(),
                Err(why) => return format!("{address:#x} [{why}]"),
            };
            let shown = if mapping.name.is_empty() {
                "anonymous".to_string()
            } else {
                sanitize(mapping.name.as_bytes())
            };
            let Some(file) = readable_file(pid, &mapping.name) else {
                return format!("{address:#x} [{shown}]");
            };
            let offset = site - mapping.start + mapping.offset;
            let source = Source::Elf(Elf::new(file));
            let symbol = symbolizer
                .symbolize(&source, Input::FileOffset(&[offset]))
                .ok()
                .and_then(|mut found| found.pop());
            match symbol {
                Some(Symbolized::Sym(sym)) => {
                    let line = sym
                        .code_info
                        .as_ref()
                        .map(|code| {
                            let file = sanitize(code.file.as_encoded_bytes());
                            match code.line {
                                Some(line) => format!(" ({file}:{line})"),
                                None => format!(" ({file})"),
                            }
                        })
                        .unwrap_or_default();
                    format!(
                        "{}+{:#x}{line} [{shown}]",
                        sanitize(sym.name.as_bytes()),
                        sym.offset + usize::from(i > 0)
                    )
                }
                _ => format!("{address:#x} [{shown}]"),
            }
        })
        .collect()
}

/// Where a mapped file can be read: through the process's root while it
/// lives (its own mount namespace, in a container), else by its path.
fn readable_file(pid: u32, name: &str) -> Option<PathBuf> {
    if !name.starts_with('/') || name.ends_with(" (deleted)") {
        return None;
    }
    let through_root = PathBuf::from(format!("/proc/{pid}/root{name}"));
    [through_root, PathBuf::from(name)]
        .into_iter()
        .find(|path| Path::new(path).is_file())
}

/// (base, size, name) of each kernel module, from /proc/modules.
fn kernel_modules() -> Vec<(u64, u64, String)> {
    let text = std::fs::read_to_string("/proc/modules").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let size = fields.get(1)?.parse().ok()?;
            let base = u64::from_str_radix(fields.get(5)?.trim_start_matches("0x"), 16).ok()?;
            Some((base, size, fields[0].to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines() {
        assert_eq!(
            parse_maps_line(
                "55d1c0a00000-55d1c0a21000 r-xp 00002000 fd:01 1234   /usr/bin/my prog"
            ),
            Some(Mapping {
                start: 0x55d1_c0a0_0000,
                end: 0x55d1_c0a2_1000,
                offset: 0x2000,
                name: "/usr/bin/my prog".into(),
            })
        );
        let anonymous = parse_maps_line("7ffd1000-7ffd2000 rw-p 00000000 00:00 0").unwrap();
        assert_eq!(anonymous.name, "");
        assert_eq!(parse_maps_line("garbage"), None);
    }

    #[test]
    fn the_tracers_own_frames_are_left_out() {
        assert!(is_tracer_frame("bpf_prog_3aef7913da4e79a7_sched_switch"));
        assert!(is_tracer_frame("bpf_trace_run4"));
        assert!(!is_tracer_frame("__schedule"));
    }

    #[test]
    fn return_addresses_are_looked_up_at_their_call() {
        assert_eq!(call_sites(&[100, 200, 300]), vec![100, 199, 299]);
    }

    #[test]
    fn this_process_is_symbolized() {
        let mut spaces = AddressSpaces::default();
        let pid = std::process::id();
        spaces.note(pid);
        let here = this_process_is_symbolized as fn() as usize as u64;
        let frames = user_frames(&Symbolizer::new(), &mut spaces, pid, &[here]);
        assert!(
            frames[0].contains("this_process_is_symbolized+0x0"),
            "{frames:?}"
        );
        let gone = user_frames(&Symbolizer::new(), &mut spaces, u32::MAX, &[here]);
        assert_eq!(
            gone,
            [format!(
                "{here:#x} [process exited before its memory map was read]"
            )]
        );
    }

    #[test]
    fn unrecorded_stacks_say_why() {
        let none = |_| None;
        assert!(frames_of(NO_STACK, none, |_| Vec::new()).is_empty());
        assert_eq!(
            frames_of(-17, none, |_| Vec::new()),
            ["[stack not recorded: the stack map was full or another stack held its slot: raise --stack-trace-size]"]
        );
        assert_eq!(
            frames_of(3, none, |_| Vec::new()),
            ["[stack not found in the stack map]"]
        );
    }
}
