//! kd-workload: processes with a known answer, for kernel-delay's tests,
//! benchmark and demo.
//!
//!   kd-workload serve          run commands read from stdin, one per line:
//!                                burst N        N getppid() on a new thread "burst"
//!                                sleep K MS     K sleeps of MS ms on a new thread "sleeper"
//!                                spin N MS      N threads "spin-I", all on one CPU, each
//!                                               spinning MS ms; each then prints
//!                                               "schedstat TID RUN_NS WAIT_NS TIMESLICES" (the kernel's
//!                                               own account of its life)
//!                                spin-read N MS as spin, but each spins inside the kernel:
//!                                               read()s of 1 MiB from /dev/zero
//!                                idle N         N threads "idler" that wait, forever, in
//!                                               futex()
//!                                badfd N        N read() of fd -1 (EBADF) on a new thread
//!                                               "bad-reader"
//!                                signals N      a thread "signalled" waits N times in
//!                                               rt_sigsuspend, each wait ended (EINTR) by a
//!                                               SIGUSR1 whose handler returns (rt_sigreturn)
//!                                udp N          N datagrams over loopback from a new thread
//!                                               "udp-sender" (NET_RX runs in its context)
//!                                crowded-sleep K MS
//!                                               a thread "sleeper" (nice 19) sleeps K times
//!                                               MS ms while a thread "spinner" spins
//!                                               beside it (pin the process to share a CPU)
//!                                udp-receive N  a thread "udp-receiver" binds a loopback UDP
//!                                               port, prints "port P", and blocks in
//!                                               recvfrom() until N datagrams came
//!                                fsync N        N 4 KiB writes, each fsync()ed, on a new
//!                                               thread "syncer" (waits in D state), which
//!                                               then prints its "schedstat" line
//!                                threads N K    N threads "crowd" alive at once, which start
//!                                               together and make K getppid() each
//!                                churn N K      N threads "churn", one after another, each
//!                                               making K getppid(): past pid_max, thread
//!                                               ids come back
//!                                poll N MS      a thread "poller" loops N times: poll() with
//!                                               a timeout of 0, then MS ms of spinning
//!                                epoll N MS     a thread "epoller" loops N times: epoll_wait()
//!                                               with a timeout of 1 ms, then MS ms of spinning
//!                                relay N        4 threads "relay-I", on any CPU, pass 2
//!                                               bytes around a ring of pipes: each reads,
//!                                               spins 20 us and writes N times; each then
//!                                               prints its "schedstat" line
//!                                fork N K       N child processes, one after another, each
//!                                               making K getppid(); prints "child PID" for
//!                                               each
//!                              answers "ready" at start and "done" after each command;
//!                              exits at end of input
//!   kd-workload run N CODE     N getppid() on the main thread, then exit with CODE
//!   kd-workload leaderless MS  the main thread exits at once; a thread "worker" calls
//!                              getppid() every 10 ms for MS ms
//!   kd-workload exec-from-thread N
//!                              a thread "execer" (not the main thread) execs
//!                              `kd-workload run N 0`
//!   kd-workload loop N         N getppid(), then print the mean ns per call
//!   kd-workload pingpong N     N round trips of a byte between two threads over
//!                              pipes, then print the mean ns per round trip
//!   kd-workload crowd N K      `threads N K`, then print the wall ns per call
//!   kd-workload churn N K      `churn N K`, then print the wall ns per call
//!                              (the timing modes also print the process's own CPU
//!                              seconds after the ns)
//!   kd-workload udp-send PORT N
//!                              N datagrams to 127.0.0.1:PORT, 1 ms apart
//!   kd-workload demo SECONDS   a few busy threads for SECONDS
//!   kd-workload wait MODE ...  reads a line from stdin, then runs MODE (so that
//!                              a tracer can attach to a known pid first)

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use nix::libc;

fn getppid_calls(n: u64) {
    for _ in 0..n {
        // SAFETY: getppid has no arguments and cannot fail; the raw system
        // call makes sure every iteration enters the kernel.
        unsafe { libc::syscall(libc::SYS_getppid) };
    }
}

fn on_thread(name: &str, work: impl FnOnce() + Send + 'static) {
    thread::Builder::new()
        .name(name.to_string())
        .spawn(work)
        .expect("spawning a thread")
        .join()
        .expect("worker thread panicked");
}

fn number(arg: Option<&str>, what: &str) -> u64 {
    arg.and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("kd-workload: {what} must be a number"))
}

/// Pins the calling thread (and the threads it creates) to the last CPU.
fn pin_to_last_cpu() {
    let cpu = thread::available_parallelism().map_or(0, |n| n.get() - 1);
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu).expect("cpu in range");
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).expect("pinning");
}

/// Where a spinner keeps its CPU busy.
#[derive(Clone, Copy)]
enum Busy {
    User,
    /// In read(): the kernel copies zeroes, and lets others run (on a
    /// kernel without full preemption too) from inside the call.
    InRead,
}

fn spin_on_one_cpu(threads: u64, spin: Duration, busy: Busy) {
    let spinners: Vec<_> = (0..threads)
        .map(|i| {
            thread::Builder::new()
                .name(format!("spin-{i}"))
                .spawn(move || {
                    pin_to_last_cpu();
                    match busy {
                        Busy::User => spin_for(spin),
                        Busy::InRead => read_zeroes_for(spin),
                    }
                    own_schedstat()
                })
                .expect("spawning a thread")
        })
        .collect();
    for spinner in spinners {
        println!("{}", spinner.join().expect("spinner panicked"));
    }
}

/// Two bytes passed around a ring of four threads, `laps` times each: the
/// CPUs switch from one of them to another, and wake each other's, so that
/// a thread's records come from both CPUs in either order.
fn relay(laps: u64) {
    const THREADS: usize = 4;
    let pipes: Vec<_> = (0..THREADS)
        .map(|_| nix::unistd::pipe().expect("pipe"))
        .collect();
    let (reads, writes): (Vec<_>, Vec<_>) = pipes.into_iter().unzip();
    let mut writes: Vec<Option<_>> = writes.into_iter().map(Some).collect();
    writes.rotate_left(1); // thread i reads pipe i, writes pipe i + 1
    let runners: Vec<_> = reads
        .into_iter()
        .zip(writes)
        .enumerate()
        .map(|(i, (from, to))| {
            let to = to.expect("a pipe per thread");
            thread::Builder::new()
                .name(format!("relay-{i}"))
                .spawn(move || {
                    // Every other thread starts with a byte, and takes
                    // one last at the end.
                    let holds = i % 2 == 0;
                    let mut byte = [0u8; 1];
                    for lap in 0..laps {
                        if !holds || lap > 0 {
                            nix::unistd::read(&from, &mut byte).expect("read");
                        }
                        spin_for(Duration::from_micros(20));
                        nix::unistd::write(&to, &byte).expect("write");
                    }
                    if holds {
                        nix::unistd::read(&from, &mut byte).expect("read");
                    }
                    own_schedstat()
                })
                .expect("spawning a thread")
        })
        .collect();
    for runner in runners {
        println!("{}", runner.join().expect("relay thread panicked"));
    }
}

/// "schedstat TID RUN_NS WAIT_NS TIMESLICES": the kernel's account of this
/// thread (TIMESLICES: the times it was given a CPU).
fn own_schedstat() -> String {
    let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat");
    format!("schedstat {} {}", nix::unistd::gettid(), schedstat.trim())
}

fn udp_datagrams(n: u64) {
    use std::net::UdpSocket;
    let receiver = UdpSocket::bind("127.0.0.1:0").expect("binding the receiver");
    let sender = UdpSocket::bind("127.0.0.1:0").expect("binding the sender");
    let to = receiver.local_addr().expect("receiver address");
    receiver
        .set_nonblocking(true)
        .expect("non-blocking receiver");
    let mut buf = [0u8; 64];
    for _ in 0..n {
        sender.send_to(&buf[..32], to).expect("sending a datagram");
        // Keep the receive queue short so that no datagram is dropped.
        while receiver.recv(&mut buf).is_ok() {}
    }
}

/// Binds a loopback port, says which, and receives `n` datagrams, each
/// waited for in recvfrom().
fn udp_receive(n: u64) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("binding the receiver");
    let port = socket.local_addr().expect("receiver address").port();
    println!("port {port}");
    let mut buf = [0u8; 64];
    for _ in 0..n {
        socket.recv_from(&mut buf).expect("receiving a datagram");
    }
}

fn udp_send(port: u64, n: u64) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("binding the sender");
    for _ in 0..n {
        socket
            .send_to(&[7u8; 32], ("127.0.0.1", port as u16))
            .expect("sending a datagram");
        thread::sleep(Duration::from_millis(1));
    }
}

/// A sleeper and a spinner of one process: where they share a CPU, the
/// sleeper waits behind its sibling.
fn crowded_sleep(k: u64, ms: u64) {
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spinning = done.clone();
    let spinner = thread::Builder::new()
        .name("spinner".into())
        .spawn(move || {
            while !spinning.load(std::sync::atomic::Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        })
        .expect("spawning a thread");
    on_thread("sleeper", move || {
        // Below its sibling: each wakeup waits out the spinner's turn.
        // SAFETY: setpriority() of the calling thread (who 0), no pointers.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
        for _ in 0..k {
            thread::sleep(Duration::from_millis(ms));
        }
    });
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    spinner.join().expect("spinner panicked");
}

fn fsync_writes(n: u64) {
    use std::io::Seek;
    let path = std::env::temp_dir().join(format!("kd-workload-fsync-{}", std::process::id()));
    let mut file = std::fs::File::create(&path).expect("creating the fsync file");
    let block = [7u8; 4096];
    for i in 0..n {
        if i % 64 == 0 {
            file.rewind().expect("rewind");
        }
        file.write_all(&block).expect("write");
        file.sync_all().expect("fsync");
    }
    drop(file);
    std::fs::remove_file(&path).expect("removing the fsync file");
    println!("{}", own_schedstat());
}

/// Small stacks: thousands of these threads live at once.
const CROWD_STACK: usize = 64 << 10;

fn crowd(threads: u64, calls: u64) {
    let start = std::sync::Arc::new(std::sync::Barrier::new(threads as usize));
    let crowd: Vec<_> = (0..threads)
        .map(|_| {
            let start = start.clone();
            thread::Builder::new()
                .name("crowd".into())
                .stack_size(CROWD_STACK)
                .spawn(move || {
                    start.wait();
                    getppid_calls(calls);
                })
                .expect("spawning a thread")
        })
        .collect();
    for thread in crowd {
        thread.join().expect("crowd thread panicked");
    }
}

fn churn(threads: u64, calls: u64) {
    for _ in 0..threads {
        thread::Builder::new()
            .name("churn".into())
            .stack_size(CROWD_STACK)
            .spawn(move || getppid_calls(calls))
            .expect("spawning a thread")
            .join()
            .expect("churn thread panicked");
    }
}

fn read_zeroes_for(duration: Duration) {
    use std::io::Read;
    let mut zeroes = std::fs::File::open("/dev/zero").expect("opening /dev/zero");
    let mut buffer = vec![0u8; 1 << 20];
    let start = Instant::now();
    while start.elapsed() < duration {
        zeroes.read_exact(&mut buffer).expect("reading /dev/zero");
    }
}

/// Threads that wait until the process ends.
fn idle_threads(n: u64) {
    for _ in 0..n {
        thread::Builder::new()
            .name("idler".to_string())
            .stack_size(CROWD_STACK)
            .spawn(|| loop {
                thread::park();
            })
            .expect("spawning a thread");
    }
}

fn bad_reads(n: u64) {
    let mut byte = 0u8;
    for _ in 0..n {
        // SAFETY: fd -1 is never open: each call fails with EBADF.
        let read = unsafe { libc::read(-1, (&raw mut byte).cast(), 1) };
        assert_eq!(read, -1);
    }
}

extern "C" fn on_sigusr1(_: libc::c_int) {}

/// `n` waits in rt_sigsuspend, each ended by a SIGUSR1 sent once the
/// thread has it blocked (so that none arrives outside the wait): each
/// wait fails with EINTR, and each handler returns through rt_sigreturn.
fn signalled_waits(n: u64) {
    use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let waiter = thread::Builder::new()
        .name("signalled".to_string())
        .spawn(move || {
            let mut usr1 = SigSet::empty();
            usr1.add(Signal::SIGUSR1);
            signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&usr1), None).expect("mask");
            let action = SigAction::new(
                SigHandler::Handler(on_sigusr1),
                SaFlags::empty(),
                SigSet::empty(),
            );
            // SAFETY: the handler does nothing.
            unsafe { signal::sigaction(Signal::SIGUSR1, &action) }.expect("sigaction");
            // SAFETY: gettid has no arguments and cannot fail.
            let tid = unsafe { libc::syscall(libc::SYS_gettid) } as libc::pid_t;
            for _ in 0..n {
                ready_tx.send(tid).expect("main thread");
                // Returns once the handler has run (nix takes its EINTR
                // for success).
                SigSet::empty().suspend().expect("sigsuspend");
            }
        })
        .expect("spawning a thread");
    for tid in ready_rx.iter() {
        // SAFETY: plain system call; the thread lives until its last wait.
        let sent = unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, libc::SIGUSR1) };
        assert_eq!(sent, 0, "tgkill");
    }
    waiter.join().expect("signalled thread panicked");
}

fn spin_for(duration: Duration) {
    let until = Instant::now() + duration;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// An event loop on poll(): each iteration runs `work` after the call.
fn poll_loop(iterations: u64, work: Duration) {
    for _ in 0..iterations {
        // SAFETY: no descriptors to watch: a plain poll() that returns at once.
        unsafe { libc::poll(std::ptr::null_mut(), 0, 0) };
        spin_for(work);
    }
}

/// An event loop on epoll_wait() with nothing registered: each wait times
/// out after 1 ms, then `work` runs.
fn epoll_loop(iterations: u64, work: Duration) {
    // SAFETY: plain system calls on a descriptor this function owns.
    unsafe {
        let epoll = libc::epoll_create1(libc::EPOLL_CLOEXEC);
        assert!(epoll >= 0, "epoll_create1");
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 1];
        for _ in 0..iterations {
            libc::epoll_wait(epoll, events.as_mut_ptr(), 1, 1);
            spin_for(work);
        }
        libc::close(epoll);
    }
}

/// Child processes that make `calls` system calls and exit.
fn fork_children(children: u64, calls: u64) {
    for _ in 0..children {
        // SAFETY: the child only makes system calls and leaves with _exit.
        match unsafe { nix::unistd::fork() }.expect("fork") {
            nix::unistd::ForkResult::Child => {
                getppid_calls(calls);
                // SAFETY: leaves without running the parent's exit handlers.
                unsafe { libc::_exit(0) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                nix::sys::wait::waitpid(child, None).expect("waitpid");
                println!("child {child}");
            }
        }
    }
}

fn serve() {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    writeln!(stdout, "ready").unwrap();
    for line in stdin.lock().lines() {
        let line = line.expect("reading stdin");
        let mut words = line.split_whitespace();
        match words.next() {
            Some("burst") => {
                let n = number(words.next(), "N");
                on_thread("burst", move || getppid_calls(n));
            }
            Some("sleep") => {
                let k = number(words.next(), "K");
                let ms = number(words.next(), "MS");
                on_thread("sleeper", move || {
                    for _ in 0..k {
                        thread::sleep(Duration::from_millis(ms));
                    }
                });
            }
            Some("probed") => {
                let k = number(words.next(), "K");
                let ms = number(words.next(), "MS");
                let pause = Duration::from_millis(number(words.next(), "PAUSE"));
                on_thread("probed", move || {
                    for _ in 0..k {
                        thread::sleep(pause);
                        kd_probe_point(ms);
                    }
                });
            }
            Some("spin") => {
                let n = number(words.next(), "N");
                let ms = number(words.next(), "MS");
                spin_on_one_cpu(n, Duration::from_millis(ms), Busy::User);
            }
            Some("spin-read") => {
                let n = number(words.next(), "N");
                let ms = number(words.next(), "MS");
                spin_on_one_cpu(n, Duration::from_millis(ms), Busy::InRead);
            }
            Some("idle") => idle_threads(number(words.next(), "N")),
            Some("badfd") => {
                let n = number(words.next(), "N");
                on_thread("bad-reader", move || bad_reads(n));
            }
            Some("signals") => signalled_waits(number(words.next(), "N")),
            Some("udp") => {
                let n = number(words.next(), "N");
                on_thread("udp-sender", move || udp_datagrams(n));
            }
            Some("threads") => crowd(number(words.next(), "N"), number(words.next(), "K")),
            Some("churn") => churn(number(words.next(), "N"), number(words.next(), "K")),
            Some("fork") => fork_children(number(words.next(), "N"), number(words.next(), "K")),
            Some("poll") => {
                let n = number(words.next(), "N");
                let work = Duration::from_millis(number(words.next(), "MS"));
                on_thread("poller", move || poll_loop(n, work));
            }
            Some("epoll") => {
                let n = number(words.next(), "N");
                let work = Duration::from_millis(number(words.next(), "MS"));
                on_thread("epoller", move || epoll_loop(n, work));
            }
            Some("relay") => relay(number(words.next(), "N")),
            Some("fsync") => {
                let n = number(words.next(), "N");
                on_thread("syncer", move || fsync_writes(n));
            }
            Some("crowded-sleep") => {
                crowded_sleep(number(words.next(), "K"), number(words.next(), "MS"));
            }
            Some("udp-receive") => {
                let n = number(words.next(), "N");
                on_thread("udp-receiver", move || udp_receive(n));
            }
            _ => panic!("kd-workload: unknown command {line:?}"),
        }
        writeln!(stdout, "done").unwrap();
    }
}

/// Each round trip: two writes, two reads, two wakeups, two context
/// switches. Both threads share one CPU: waking an idle CPU (slow in a VM
/// whose idle vCPUs halt) would dwarf what is measured.
fn ping_pong(round_trips: u64) {
    let (ping_read, ping_write) = nix::unistd::pipe().expect("pipe");
    let (pong_read, pong_write) = nix::unistd::pipe().expect("pipe");
    pin_to_last_cpu();
    let ponger = thread::spawn(move || {
        let mut byte = [0u8; 1];
        for _ in 0..round_trips {
            nix::unistd::read(&ping_read, &mut byte).expect("read");
            nix::unistd::write(&pong_write, &byte).expect("write");
        }
    });
    let mut byte = [0u8; 1];
    for _ in 0..round_trips {
        nix::unistd::write(&ping_write, &byte).expect("write");
        nix::unistd::read(&pong_read, &mut byte).expect("read");
    }
    ponger.join().expect("ponger panicked");
}

fn demo(seconds: u64) {
    let until = Instant::now() + Duration::from_secs(seconds);
    let (reader, writer) = nix::unistd::pipe().expect("pipe");
    let threads = vec![
        thread::Builder::new()
            .name("sleeper".into())
            .spawn(move || {
                while Instant::now() < until {
                    thread::sleep(Duration::from_millis(5));
                }
            }),
        thread::Builder::new()
            .name("spinner".into())
            .spawn(move || {
                while Instant::now() < until {
                    getppid_calls(1_000);
                }
            }),
        thread::Builder::new()
            .name("pipe-writer".into())
            .spawn(move || {
                while Instant::now() < until {
                    nix::unistd::write(&writer, &[0u8; 512]).expect("write");
                    thread::sleep(Duration::from_micros(200));
                }
            }),
        thread::Builder::new()
            .name("pipe-reader".into())
            .spawn(move || event_loop_reader(reader)),
    ];
    for t in threads {
        t.expect("spawning a thread")
            .join()
            .expect("demo thread panicked");
    }
}

/// Reads `pipe` as an event loop does (nginx, redis): non-blocking reads
/// until EAGAIN, then poll() until there is more; ends at end of file.
fn event_loop_reader(pipe: std::os::fd::OwnedFd) {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    fcntl(&pipe, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).expect("O_NONBLOCK");
    let mut buf = [0u8; 4096];
    loop {
        match nix::unistd::read(&pipe, &mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(nix::errno::Errno::EAGAIN) => {
                let mut ready = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
                poll(&mut ready, PollTimeout::from(100u16)).expect("poll");
            }
            Err(err) => panic!("reading the pipe: {err}"),
        }
    }
}

/// Runs `work` of `iterations` iterations; prints the wall ns per
/// iteration and the CPU seconds this process used in all.
fn timed(iterations: u64, work: impl FnOnce()) {
    let start = Instant::now();
    work();
    let ns = start.elapsed().as_nanos() as f64 / iterations as f64;
    // SAFETY: rusage is plain integers; getrusage fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a local.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let cpu = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    println!("{ns:.1} {:.3}", cpu(usage.ru_utime) + cpu(usage.ru_stime));
}

/// The main thread leaves; the process lives on in its worker.
fn leaderless(run_for: Duration) -> ! {
    thread::Builder::new()
        .name("worker".into())
        .spawn(move || {
            let until = Instant::now() + run_for;
            while Instant::now() < until {
                getppid_calls(1);
                thread::sleep(Duration::from_millis(10));
            }
        })
        .expect("spawning a thread");
    // The exit system call (not exit_group) ends only the calling thread;
    // pthread_exit would unwind through Rust's main and abort.
    // SAFETY: nothing of this thread is used after it.
    unsafe { libc::syscall(libc::SYS_exit, 0) };
    unreachable!("the thread has exited")
}

/// exec() from a thread other than the main one: the kernel ends every
/// other thread and gives the exec'ing one the process id.
fn exec_from_thread(calls: u64) -> ! {
    use std::os::unix::process::CommandExt;
    let execer = thread::Builder::new()
        .name("execer".into())
        .spawn(move || {
            let err = std::process::Command::new("/proc/self/exe")
                .arg0("kd-workload")
                .args(["run", &calls.to_string(), "0"])
                .exec();
            panic!("exec failed: {err}");
        })
        .expect("spawning a thread");
    let _ = execer.join();
    unreachable!("exec ends the main thread")
}

/// A function for uprobe and uretprobe triggers (`up:kd_probe_point`,
/// `ur:kd_probe_point`): three getppid() calls and a sleep of `ms`.
#[no_mangle]
#[inline(never)]
pub extern "C" fn kd_probe_point(ms: u64) {
    getppid_calls(3);
    thread::sleep(Duration::from_millis(ms));
}

/// `threads` threads ("leaver") make `calls` getppid() calls each and
/// sleep; then the process exits (exit_group): every thread exits at once,
/// on every CPU.
fn exit_together(threads: u64, calls: u64) -> ! {
    let done = std::sync::Arc::new(std::sync::Barrier::new(threads as usize + 1));
    for _ in 0..threads {
        let done = done.clone();
        thread::Builder::new()
            .name("leaver".into())
            .stack_size(CROWD_STACK)
            .spawn(move || {
                getppid_calls(calls);
                done.wait();
                thread::sleep(Duration::from_secs(60));
            })
            .expect("spawning a thread");
    }
    done.wait();
    std::process::exit(0)
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("wait") {
        let mut go = String::new();
        std::io::stdin().read_line(&mut go).expect("reading stdin");
        args.remove(0);
    }
    let arg = |i: usize| args.get(i).map(String::as_str);
    match arg(0) {
        Some("serve") => serve(),
        Some("run") => {
            getppid_calls(number(arg(1), "N"));
            println!("workload finished");
            return ExitCode::from(number(arg(2), "CODE") as u8);
        }
        Some("loop") => {
            let n = number(arg(1), "N");
            timed(n, || getppid_calls(n));
        }
        Some("pingpong") => {
            let n = number(arg(1), "N");
            timed(n, || ping_pong(n));
        }
        Some("crowd") => {
            let (n, k) = (number(arg(1), "N"), number(arg(2), "K"));
            timed(n * k, || crowd(n, k));
        }
        Some("churn") => {
            let (n, k) = (number(arg(1), "N"), number(arg(2), "K"));
            timed(n * k, || churn(n, k));
        }
        Some("udp-send") => udp_send(number(arg(1), "PORT"), number(arg(2), "N")),
        Some("demo") => demo(number(arg(1), "SECONDS")),
        Some("leaderless") => leaderless(Duration::from_millis(number(arg(1), "MS"))),
        Some("exec-from-thread") => exec_from_thread(number(arg(1), "N")),
        Some("exit-together") => exit_together(number(arg(1), "N"), number(arg(2), "K")),
        _ => {
            eprintln!(
                "usage: kd-workload serve | run N CODE | loop N | pingpong N | crowd N K \
                 | churn N K | udp-send PORT N | demo SECONDS | leaderless MS | exec-from-thread N \
                 | exit-together N K"
            );
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
