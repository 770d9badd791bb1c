//! `--cgroup`: the processes of cgroup directories (a container, a systemd
//! service) and of the cgroups below them. Those there at the start are
//! traced with the forks they make; a process that joins later (moved in,
//! not forked by a traced one) is found by a look at the directories every
//! RESCAN and traced from then on.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC};

/// How often the directories are read again for processes that joined.
const RESCAN: Duration = Duration::from_millis(100);

/// Where cgroup v2 is mounted, from mountinfo's lines: relative --cgroup
/// paths are taken from there.
fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        // "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER"
        let (fields, after) = line.split_once(" - ")?;
        let mount_point = fields.split(' ').nth(4)?;
        (after.split(' ').next()? == "cgroup2").then(|| PathBuf::from(mount_point))
    })
}

/// Whether `path` is written relative to the current directory (`.`,
/// `..`, `./x`, `../x`), not to the cgroup v2 mount.
fn from_current_directory(path: &Path) -> bool {
    matches!(
        path.components().next(),
        Some(Component::CurDir | Component::ParentDir)
    )
}

/// The directory `path` names: as given when absolute, from the current
/// directory when it starts with `.` or `..`, else under the cgroup v2
/// mount. It must be a directory of a cgroup file system.
fn resolve(path: &Path) -> Result<PathBuf> {
    let dir = if path.is_absolute() {
        path.to_path_buf()
    } else if from_current_directory(path) {
        std::env::current_dir()
            .context("the current directory cannot be read")?
            .join(path)
    } else {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo")
            .context("reading /proc/self/mountinfo failed")?;
        match cgroup2_mount(&mountinfo) {
            Some(mount) => mount.join(path),
            None => bail!(
                "--cgroup {}: no cgroup v2 hierarchy is mounted here: give the directory's full path",
                path.display()
            ),
        }
    };
    let on_cgroup_fs = statfs(&dir)
        .is_ok_and(|fs| [CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC].contains(&fs.filesystem_type()));
    if !on_cgroup_fs || !dir.join("cgroup.procs").is_file() {
        bail!(
            "--cgroup {}: {} is not a cgroup directory (a directory of a cgroup file system, \
             with cgroup.procs)",
            path.display(),
            dir.display()
        );
    }
    // Absolute and without `.` or `..`: as the report names it.
    dir.canonicalize().with_context(|| {
        format!(
            "--cgroup {}: {} cannot be read",
            path.display(),
            dir.display()
        )
    })
}

/// The process ids listed in `dir/cgroup.procs` and in those of the
/// directories below it (a cgroup removed meanwhile lists nothing).
fn processes_under(dir: &Path, pids: &mut Vec<u32>) {
    if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
        pids.extend(
            procs
                .lines()
                .filter_map(|line| line.trim().parse::<u32>().ok()),
        );
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            processes_under(&entry.path(), pids);
        }
    }
}

#[derive(Debug)]
pub struct Cgroups {
    dirs: Vec<PathBuf>,
    /// Every process found so far.
    seen: RefCell<HashSet<u32>>,
    last_scan: Cell<Instant>,
}

impl Cgroups {
    /// The directories `paths` name; an error names one that is not a
    /// cgroup.
    pub fn open(paths: &[PathBuf]) -> Result<Self> {
        let dirs = paths
            .iter()
            .map(|path| resolve(path))
            .collect::<Result<_>>()?;
        Ok(Self::of(dirs))
    }

    /// The cgroups of directories `dirs`, as they are.
    fn of(dirs: Vec<PathBuf>) -> Self {
        Cgroups {
            dirs,
            seen: RefCell::default(),
            last_scan: Cell::new(Instant::now()),
        }
    }

    /// Their directories, as the report names them.
    pub fn names(&self) -> Vec<String> {
        self.dirs
            .iter()
            .map(|dir| dir.display().to_string())
            .collect()
    }

    /// The processes in them now, each once.
    pub fn processes(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        for dir in &self.dirs {
            processes_under(dir, &mut pids);
        }
        // kernel-delay may run in one of them: it does not trace itself.
        let mut once = HashSet::from([std::process::id()]);
        pids.retain(|pid| once.insert(*pid));
        pids
    }

    /// The processes there at the start (remembered as found).
    pub fn initial(&self) -> Vec<u32> {
        let pids = self.processes();
        self.seen.borrow_mut().extend(&pids);
        pids
    }

    /// The processes that joined since the last look (none until RESCAN
    /// has passed since it).
    pub fn joined(&self) -> Vec<u32> {
        if self.last_scan.get().elapsed() < RESCAN {
            return Vec::new();
        }
        self.last_scan.set(Instant::now());
        let mut seen = self.seen.borrow_mut();
        self.processes()
            .into_iter()
            .filter(|pid| seen.insert(*pid))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount() {
        let mountinfo = "\
25 30 0:23 / /sys rw,nosuid shared:7 - sysfs sysfs rw
33 25 0:28 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate
40 33 0:35 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
";
        assert_eq!(
            cgroup2_mount(mountinfo),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        // A hybrid system: v2 under "unified", after the v1 controllers.
        let hybrid = "\
40 33 0:35 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
41 33 0:36 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
";
        assert_eq!(
            cgroup2_mount(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(cgroup2_mount("40 33 0:35 / /x rw - cgroup cgroup rw"), None);
    }

    #[test]
    fn a_directory_without_cgroup_procs_is_refused() {
        let err = Cgroups::open(&[PathBuf::from("/proc/self")]).unwrap_err();
        assert!(err.to_string().contains("not a cgroup directory"), "{err}");
        // A file named cgroup.procs elsewhere does not make a cgroup.
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("cgroup.procs"), "1\n").unwrap();
        let err = Cgroups::open(&[dir.path().to_path_buf()]).unwrap_err();
        assert!(err.to_string().contains("not a cgroup directory"), "{err}");
    }

    #[test]
    fn dot_paths_are_from_the_current_directory() {
        for path in [".", "..", "./a", "../a/b"] {
            assert!(from_current_directory(Path::new(path)), "{path}");
        }
        for path in ["system.slice", "a/./b", "/sys/fs/cgroup", ".hidden"] {
            assert!(!from_current_directory(Path::new(path)), "{path}");
        }
    }

    #[test]
    fn reads_processes_in_the_tree_each_once() {
        let dir = std::env::temp_dir().join(format!("kd-cgroup-test-{}", std::process::id()));
        let below = dir.join("below");
        fs::create_dir_all(&below).unwrap();
        fs::write(dir.join("cgroup.procs"), "10\n11\n").unwrap();
        fs::write(below.join("cgroup.procs"), "12\n10\n").unwrap();
        let cgroups = Cgroups::of(vec![dir.clone()]);
        let mut pids = cgroups.initial();
        pids.sort_unstable();
        assert_eq!(pids, [10, 11, 12]);
        // Nothing new until a process joins, and no look before RESCAN.
        fs::write(below.join("cgroup.procs"), "12\n10\n13\n").unwrap();
        assert_eq!(cgroups.joined(), Vec::<u32>::new());
        cgroups.last_scan.set(Instant::now() - RESCAN);
        assert_eq!(cgroups.joined(), [13]);
        cgroups.last_scan.set(Instant::now() - RESCAN);
        assert_eq!(cgroups.joined(), Vec::<u32>::new());
        fs::write(dir.join("cgroup.procs"), "").unwrap();
        fs::write(below.join("cgroup.procs"), "").unwrap();
        assert!(cgroups.processes().is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }
}
