//! The processes being traced: existing ones (`--pid`), or a command
//! started by us and held before exec until the probes are attached.

pub mod cgroup;
pub mod procfs;

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{access, execvp, fork, pipe2, read, write, AccessFlags, ForkResult, Pid};

use crate::processes::cgroup::Cgroups;
use crate::processes::procfs::{has_live_thread, processes_named, thread_group};
use crate::signals;

pub struct Target {
    /// The processes given, or the launched command's, each with a
    /// descriptor that is readable once it has exited.
    processes: Vec<(u32, OwnedFd)>,
    /// With --cgroup: where more processes may come from.
    cgroups: Option<Cgroups>,
    child: Option<Launched>,
    /// Its executable: where triggers are looked for.
    executable: PathBuf,
}

struct Launched {
    /// Closing it (or writing to it) lets the child exec.
    gate: Option<OwnedFd>,
    /// The child writes its exec errno here; end-of-file means exec worked.
    exec_report: OwnedFd,
    program: String,
    reaped: bool,
}

impl Target {
    /// Existing processes, by their process ids, and those of `cgroups`.
    pub fn existing(pids: Vec<u32>, cgroups: Option<Cgroups>) -> Result<Self> {
        let mut processes: Vec<(u32, OwnedFd)> = pids
            .iter()
            .map(|&pid| Ok((pid, watch_existing(pid)?)))
            .collect::<Result<_>>()?;
        if let Some(cgroups) = &cgroups {
            for pid in cgroups.initial() {
                // One that exited since it was listed is no error.
                if processes.iter().all(|(given, _)| *given != pid) {
                    if let Ok(pidfd) = watch_existing(pid) {
                        processes.push((pid, pidfd));
                    }
                }
            }
            if processes.is_empty() {
                bail!("no process is in cgroup {}", cgroups.names().join(", "));
            }
        }
        let executable = PathBuf::from(format!("/proc/{}/exe", processes[0].0));
        Ok(Target {
            processes,
            cgroups,
            child: None,
            executable,
        })
    }

    pub fn cgroups(&self) -> Option<&Cgroups> {
        self.cgroups.as_ref()
    }

    /// Forks a child that waits for `release` before it execs `command`.
    pub fn launch(command: &[OsString]) -> Result<Self> {
        let args: Vec<CString> = command
            .iter()
            .map(|arg| CString::new(arg.as_bytes()))
            .collect::<Result<_, _>>()
            .context("the command contains a NUL byte")?;
        let program = command[0].to_string_lossy().into_owned();
        let executable =
            find_runnable(&command[0]).with_context(|| format!("cannot run {program:?}"))?;
        let (gate_read, gate_write) = pipe2(OFlag::O_CLOEXEC)?;
        let (report_read, report_write) = pipe2(OFlag::O_CLOEXEC)?;

        // SAFETY: single-threaded so far; the child only reads, execs,
        // writes and exits.
        match unsafe { fork() }.context("fork failed")? {
            ForkResult::Child => {
                drop(gate_write);
                drop(report_read);
                restore_signals();
                let mut byte = [0u8; 1];
                if matches!(read(gate_read.as_fd(), &mut byte), Ok(1)) {
                    let errno = execvp(&args[0], &args).unwrap_err();
                    let _ = write(&report_write, &(errno as i32).to_ne_bytes());
                }
                // SAFETY: leaves without running the parent's exit handlers.
                unsafe { nix::libc::_exit(127) }
            }
            ForkResult::Parent { child } => {
                drop(gate_read);
                drop(report_write);
                let pid = child.as_raw() as u32;
                let launched = Launched {
                    gate: Some(gate_write),
                    exec_report: report_read,
                    program,
                    reaped: false,
                };
                let pidfd = pidfd_open(pid).context("cannot watch the launched command")?;
                Ok(Target {
                    processes: vec![(pid, pidfd)],
                    cgroups: None,
                    child: Some(launched),
                    executable,
                })
            }
        }
    }

    /// Whether a launched command was let go to exec (given processes
    /// always run).
    pub fn released(&self) -> bool {
        self.child.as_ref().is_none_or(|child| child.gate.is_none())
    }

    /// The executable of the (first) process given, or the command's.
    pub fn executable(&self) -> &Path {
        &self.executable
    }

    /// The processes given, or the launched command's.
    pub fn pids(&self) -> Vec<u32> {
        self.processes.iter().map(|(pid, _)| *pid).collect()
    }

    /// The launched command's process.
    fn command_pid(&self) -> Option<u32> {
        self.child.as_ref().map(|_| self.processes[0].0)
    }

    pub fn is_launched(&self) -> bool {
        self.child.is_some()
    }

    /// The name process `pid` has (or, for a launched command, will have).
    pub fn comm(&self, pid: u32) -> Vec<u8> {
        match &self.child {
            Some(child) => {
                let base = child.program.rsplit('/').next().unwrap_or_default();
                base.as_bytes().iter().take(15).copied().collect()
            }
            None => std::fs::read(format!("/proc/{pid}/comm"))
                .map(|mut c| {
                    c.pop();
                    c
                })
                .unwrap_or_default(),
        }
    }

    /// Lets a launched command exec, and checks that exec worked.
    pub fn release(&mut self) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        let gate = child.gate.take().expect("released once");
        write(&gate, &[1]).context("cannot start the command")?;
        drop(gate);
        let mut errno = [0u8; 4];
        let n = read_full(&child.exec_report, &mut errno);
        if n == errno.len() {
            let errno = Errno::from_raw(i32::from_ne_bytes(errno));
            let program = child.program.clone();
            self.reap();
            bail!("cannot run {program:?}: {}", errno.desc());
        }
        Ok(())
    }

    /// Whether the processes given have all exited, and no process is left
    /// in the cgroups given (the launched command: whether it has).
    pub fn has_exited(&self) -> bool {
        self.processes.iter().all(|(_, pidfd)| {
            let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
            matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
        }) && self
            .cgroups
            .as_ref()
            .is_none_or(|cgroups| cgroups.processes().is_empty())
    }

    /// Passes a signal that asks to stop on to a launched command, as a
    /// shell would (unless the terminal sent it to the command too).
    pub fn forward(&self, received: signals::Received) {
        let (Some(pid), Some(signal)) = (self.command_pid(), received.forwarded()) else {
            return;
        };
        if !self.has_exited() {
            let _ = kill(Pid::from_raw(pid as i32), signal);
        }
    }

    /// Waits for a launched command to end; its exit code as a shell
    /// reports it (128 + signal when killed). None for `--pid`.
    pub fn wait(&mut self) -> Result<Option<u8>> {
        let Some(pid) = self.command_pid() else {
            return Ok(None);
        };
        let status = loop {
            match waitpid(Pid::from_raw(pid as i32), None) {
                Err(Errno::EINTR) => {
                    if let Some(signal) = signals::take() {
                        self.forward(signal);
                    }
                }
                other => break other.context("waiting for the command failed")?,
            }
        };
        if let Some(child) = self.child.as_mut() {
            child.reaped = true;
        }
        Ok(Some(match status {
            WaitStatus::Exited(_, code) => code as u8,
            WaitStatus::Signaled(_, signal, _) => 128u8.wrapping_add(signal as u8),
            _ => 1,
        }))
    }

    fn reap(&mut self) {
        if let Some(pid) = self.command_pid() {
            let _ = waitpid(Pid::from_raw(pid as i32), None);
        }
        if let Some(child) = self.child.as_mut() {
            child.reaped = true;
        }
    }
}

impl Drop for Target {
    /// A command that never got to exec (tracing failed to start) is killed.
    fn drop(&mut self) {
        let unreleased = self
            .child
            .as_ref()
            .is_some_and(|child| child.gate.is_some() && !child.reaped);
        if let (true, Some(pid)) = (unreleased, self.command_pid()) {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            self.reap();
        }
    }
}

/// The processes `pids` and those named `names`, each once; a name that
/// no process has is an error (kernel-delay itself is left out).
pub fn with_named(mut pids: Vec<u32>, names: &[String]) -> Result<Vec<u32>> {
    for name in names {
        let named: Vec<u32> = processes_named(name)
            .into_iter()
            .filter(|&pid| pid != std::process::id())
            .collect();
        if named.is_empty() {
            bail!("no process is named {name:?}");
        }
        for pid in named {
            if !pids.contains(&pid) {
                pids.push(pid);
            }
        }
    }
    Ok(pids)
}

/// A running process to trace: checked, and watched for its exit.
fn watch_existing(pid: u32) -> Result<OwnedFd> {
    if pid == std::process::id() {
        bail!("{pid} is kernel-delay itself, which cannot trace its own reading");
    }
    let tgid = thread_group(pid).map_err(|_| anyhow!("no process with pid {pid}"))?;
    if tgid != pid {
        bail!("{pid} is a thread of process {tgid}: use --pid {tgid}");
    }
    // Its main thread may have exited while others run on.
    if !has_live_thread(pid) {
        bail!("process {pid} has already exited");
    }
    pidfd_open(pid).with_context(|| format!("cannot watch process {pid}"))
}

/// The command starts with every signal at its default disposition (Rust's
/// runtime ignores SIGPIPE, our parent may have ignored others, and exec
/// keeps what is ignored) and nothing blocked.
fn restore_signals() {
    // The kernel's struct sigaction, all zero: SIG_DFL, no flags, no mask.
    let default = [0u64; 4];
    for signal in 1..=64 {
        if signal == nix::libc::SIGKILL || signal == nix::libc::SIGSTOP {
            continue;
        }
        // SAFETY: rt_sigaction with a valid, zeroed struct; the raw call
        // also reaches the signals glibc keeps for itself (32, 33).
        unsafe {
            nix::libc::syscall(
                nix::libc::SYS_rt_sigaction,
                signal,
                default.as_ptr(),
                std::ptr::null::<u64>(),
                8usize,
            );
        }
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// Finds `program` as execvp would, so that a typo fails before tracing.
fn find_runnable(program: &OsStr) -> Result<PathBuf> {
    let runnable = |path: &Path| path.is_file() && access(path, AccessFlags::X_OK).is_ok();
    if program.as_bytes().contains(&b'/') {
        let path = Path::new(program);
        if !path.exists() {
            bail!("no such file");
        }
        if !runnable(path) {
            bail!("not an executable file");
        }
        return Ok(path.to_path_buf());
    }
    let search = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&search)
        .map(|dir| dir.join(program))
        .find(|path| runnable(path))
        .context("command not found")
}

fn read_full(fd: &OwnedFd, buf: &mut [u8]) -> usize {
    let mut done = 0;
    while done < buf.len() {
        match read(fd.as_fd(), &mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(Errno::EINTR) => continue,
            Err(_) => break,
        }
    }
    done
}

fn pidfd_open(pid: u32) -> Result<OwnedFd> {
    // SAFETY: plain system call; the returned descriptor is ours.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid as nix::libc::pid_t, 0) };
    if fd < 0 {
        return Err(Errno::last().into());
    }
    // SAFETY: a fresh, valid descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
