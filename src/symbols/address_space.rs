//! The address spaces slow calls were made in (--syscall-events): each
//! process's memory map, read while it is in that address space (the
//! programs number a process's address spaces: a new one after each exec),
//! and the files mapped there, held open when the map is read, so that a
//! file replaced, changed or unlinked since, or one of another mount
//! namespace, is never taken for the one that ran.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// Files held open at most (below the descriptor limit).
const MAX_HELD_FILES: usize = 16_384;

pub const NOT_MAPPED: &str = "not mapped";
const NOT_READ: &str = "the process exited or exec'd before its memory map was read";

/// One range of a process's memory map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    /// Offset in the file of `start`.
    pub offset: u64,
    /// The file, or the kernel's name for the range; empty if anonymous.
    pub name: String,
    /// Code (`x` in its permissions).
    pub executable: bool,
    /// The file's device and inode (0 for none).
    pub file: FileId,
}

/// A file as the kernel tells it apart: device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// One address space: its map (None: the process had left it, by exit or
/// exec, before it was read).
#[derive(Debug)]
struct Space {
    maps: Option<Vec<Mapping>>,
}

/// A mapped file, held open from when its mapping was seen, with its size
/// and modification time then.
#[derive(Debug)]
struct HeldFile {
    file: File,
    size: u64,
    mtime: (i64, i64),
}

/// Where a mapping's file can be read for its symbols.
#[derive(Debug, PartialEq, Eq)]
pub enum FileToRead {
    Path(PathBuf),
    /// It cannot be read as it was mapped: why.
    Not(&'static str),
    /// Nothing to read (anonymous, the vDSO, a file deleted before).
    Nothing,
}

pub struct AddressSpaces {
    /// The address space a process is in now, as the programs number
    /// them.
    current: Box<dyn Fn(u32) -> Option<u64>>,
    /// By process id and the programs' address-space id.
    spaces: HashMap<(u32, u64), Space>,
    files: HashMap<FileId, HeldFile>,
    /// How many files may be held (past it, they are checked by path):
    /// known once the first is.
    max_held: Option<usize>,
}

impl AddressSpaces {
    /// `current`: the programs' numbering of address spaces, looked up.
    pub fn new(current: Box<dyn Fn(u32) -> Option<u64>>) -> Self {
        AddressSpaces {
            current,
            spaces: HashMap::new(),
            files: HashMap::new(),
            max_held: None,
        }
    }

    /// Process `pid` made a slow call in address space `id`: its map is
    /// read, the first time, if the process is still in it.
    pub fn note(&mut self, pid: u32, id: u64) {
        if !self.spaces.contains_key(&(pid, id)) {
            let mut space = self.read(pid);
            if self.current_of(pid) != Some(id) {
                space.maps = None; // it exec'd (or exited) since
            }
            self.spaces.insert((pid, id), space);
        }
    }

    fn current_of(&self, pid: u32) -> Option<u64> {
        (self.current)(pid)
    }

    /// Reads `pid`'s map now, and holds the files of its code.
    fn read(&mut self, pid: u32) -> Space {
        // An exiting process's map reads empty: as good as gone.
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
            .ok()
            .map(|text| text.lines().filter_map(parse_maps_line).collect::<Vec<_>>())
            .filter(|maps| !maps.is_empty());
        for mapping in maps.iter().flatten() {
            self.hold(pid, mapping);
        }
        Space { maps }
    }

    fn hold(&mut self, pid: u32, mapping: &Mapping) {
        if !mapping.executable || mapping.file.ino == 0 || self.files.contains_key(&mapping.file) {
            return;
        }
        if self.files.len() >= *self.max_held.get_or_insert_with(held_files_allowed) {
            return;
        }
        // The file the process mapped, whatever its path names now.
        let path = format!(
            "/proc/{pid}/map_files/{:x}-{:x}",
            mapping.start, mapping.end
        );
        let Ok(file) = File::open(path) else {
            return;
        };
        let Ok(meta) = file.metadata() else {
            return;
        };
        if (FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }) == mapping.file
        {
            let held = HeldFile {
                file,
                size: meta.size(),
                mtime: (meta.mtime(), meta.mtime_nsec()),
            };
            self.files.insert(mapping.file, held);
        }
    }

    /// The mapping of address space `id` of `pid` that holds `address`.
    /// Its map is read again when none does and the process is still in
    /// it: it mapped a library since.
    pub fn mapping(&mut self, pid: u32, id: u64, address: u64) -> Result<&Mapping, &'static str> {
        let holds = |space: &Space| {
            space
                .maps
                .as_ref()
                .is_some_and(|maps| maps.iter().any(|m| (m.start..m.end).contains(&address)))
        };
        let stale = self.spaces.get(&(pid, id)).is_some_and(|space| {
            !holds(space) && space.maps.is_some() && self.current_of(pid) == Some(id)
        });
        if stale {
            let fresh = self.read(pid);
            if fresh.maps.is_some() && self.current_of(pid) == Some(id) {
                self.spaces.insert((pid, id), fresh);
            }
        }
        match self
            .spaces
            .get(&(pid, id))
            .and_then(|space| space.maps.as_ref())
        {
            Some(maps) => maps
                .iter()
                .find(|m| (m.start..m.end).contains(&address))
                .ok_or(NOT_MAPPED),
            None => Err(NOT_READ),
        }
    }

    /// The map of address space `id` of `pid`, as last read; None when it
    /// could not be read while the process was in it.
    pub fn maps(&self, pid: u32, id: u64) -> Option<&[Mapping]> {
        self.spaces.get(&(pid, id))?.maps.as_deref()
    }

    /// Where to read `mapping`'s file (of process `pid`): the one held
    /// open, unless it changed since; else the path, through the process's
    /// root while it lives (its mount namespace), if it is still that file.
    pub fn file_of(&self, pid: u32, mapping: &Mapping) -> FileToRead {
        if !mapping.name.starts_with('/') {
            return FileToRead::Nothing;
        }
        // Held: readable even if it was unlinked since.
        if let Some(held) = self.files.get(&mapping.file) {
            let unchanged = held.file.metadata().is_ok_and(|meta| {
                (meta.size(), (meta.mtime(), meta.mtime_nsec())) == (held.size, held.mtime)
            });
            return match unchanged {
                true => FileToRead::Path(format!("/proc/self/fd/{}", held.file.as_raw_fd()).into()),
                false => FileToRead::Not("file changed since it was mapped"),
            };
        }
        if mapping.name.ends_with(" (deleted)") {
            return FileToRead::Nothing;
        }
        let through_root = PathBuf::from(format!("/proc/{pid}/root{}", mapping.name));
        for path in [through_root, PathBuf::from(&mapping.name)] {
            if let Ok(meta) = std::fs::metadata(&path) {
                let id = FileId {
                    dev: meta.dev(),
                    ino: meta.ino(),
                };
                return match id == mapping.file {
                    true => FileToRead::Path(path),
                    false => FileToRead::Not("file replaced since it was mapped"),
                };
            }
        }
        FileToRead::Nothing
    }
}

/// Raises the soft limit on open files to the hard one, and says how many
/// mapped files may be held open: half of it, MAX_HELD_FILES at most.
fn held_files_allowed() -> usize {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 0;
    };
    let soft = match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => hard,
        Err(_) => getrlimit(Resource::RLIMIT_NOFILE).map_or(0, |(soft, _)| soft),
    };
    usize::try_from(soft / 2).map_or(MAX_HELD_FILES, |half| half.min(MAX_HELD_FILES))
}

/// `start-end perms offset major:minor inode [name]`
pub fn parse_maps_line(line: &str) -> Option<Mapping> {
    let mut fields = line.splitn(6, ' ');
    let (start, end) = fields.next()?.split_once('-')?;
    let perms = fields.next()?;
    let offset = fields.next()?;
    let (major, minor) = fields.next()?.split_once(':')?;
    let ino = fields.next()?.parse().ok()?;
    let name = fields.next().unwrap_or("").trim_start();
    Some(Mapping {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        offset: u64::from_str_radix(offset, 16).ok()?,
        name: name.to_string(),
        executable: perms.contains('x'),
        file: FileId {
            dev: nix::sys::stat::makedev(
                u64::from_str_radix(major, 16).ok()?,
                u64::from_str_radix(minor, 16).ok()?,
            ),
            ino,
        },
    })
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
                executable: true,
                file: FileId {
                    dev: nix::sys::stat::makedev(0xfd, 1),
                    ino: 1234
                },
            })
        );
        let anonymous = parse_maps_line("7ffd1000-7ffd2000 rw-p 00000000 00:00 0").unwrap();
        assert_eq!((anonymous.name.as_str(), anonymous.executable), ("", false));
        assert_eq!(parse_maps_line("garbage"), None);
    }

    #[test]
    fn this_process_s_code_is_held_and_read_through_its_descriptor() {
        let mut spaces = AddressSpaces::new(Box::new(|_| Some(1)));
        let pid = std::process::id();
        spaces.note(pid, 1);
        let here = maps_lines as fn() as usize as u64;
        let mapping = spaces.mapping(pid, 1, here).unwrap().clone();
        assert!(mapping.executable);
        let FileToRead::Path(path) = spaces.file_of(pid, &mapping) else {
            panic!("{mapping:?}");
        };
        assert!(path.starts_with("/proc/self/fd/"), "{path:?}");
        // Another address space of the process, never read while it was
        // in it: not this one's map.
        assert_eq!(spaces.mapping(pid, 0, here), Err(NOT_READ));
        // One the process left before its map was read.
        spaces.note(pid, 2);
        assert_eq!(spaces.mapping(pid, 2, here), Err(NOT_READ));
        // A file at the mapping's path that is another file.
        let other = Mapping {
            file: FileId { dev: 0, ino: 1 },
            ..mapping
        };
        assert_eq!(
            spaces.file_of(pid, &other),
            FileToRead::Not("file replaced since it was mapped")
        );
    }
}
