//! User stacks of a real server built without frame pointers (Debian's
//! nginx), against those `perf record --call-graph dwarf` unwinds from the
//! same process at the same calls.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

/// An nginx of its own on 127.0.0.1 (one worker), stopped when dropped.
struct Nginx {
    master: Child,
    port: u16,
}

impl Nginx {
    fn start(dir: &Path) -> Nginx {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port();
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "worker_processes 1; daemon off; pid {dir}/nginx.pid; error_log {dir}/error.log;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{ access_log off; server {{ listen 127.0.0.1:{port}; \
                 location / {{ return 200 \"ok\\n\"; }} }} }}\n",
                dir = dir.display()
            ),
        )
        .unwrap();
        let master = Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting nginx (apt-get install nginx)");
        Nginx { master, port }
    }

    /// The worker's process id, once the master has forked it and it
    /// answers.
    fn worker(&self) -> u32 {
        let master = self.master.id();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let children =
                std::fs::read_to_string(format!("/proc/{master}/task/{master}/children"))
                    .unwrap_or_default();
            if let Some(worker) = children.split_whitespace().next() {
                if self.request() {
                    return worker.parse().unwrap();
                }
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!("nginx did not start a worker that answers");
    }

    /// One request; whether it was answered.
    fn request(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let mut reply = String::new();
        stream
            .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .is_ok()
            && stream.read_to_string(&mut reply).is_ok()
            && reply.starts_with("HTTP/1.1 200")
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.master.kill();
        let _ = self.master.wait();
        // The worker notices its master's death and exits; make sure.
        let _ = Command::new("pkill")
            .args(["-f", "nginx: worker process"])
            .status();
    }
}

/// A frame as both tools can say it: the file it is in, and its
/// function where it is named.
#[derive(Debug, PartialEq, Eq)]
struct Frame {
    file: String,
    function: Option<String>,
}

/// kernel-delay's `function+0x.. (file:line) [path]` or `0x.. [path]`.
fn ours(frame: &str) -> Frame {
    let (head, path) = frame.rsplit_once(" [").expect("a frame with its file");
    let file = path
        .trim_end_matches(']')
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let function = (!head.starts_with("0x")).then(|| {
        head.rsplit_once("+0x")
            .map_or(head, |(name, _)| name)
            .to_string()
    });
    Frame { file, function }
}

/// perf script's `ip symbol (dso)`, `[unknown]` for no symbol; a symbol
/// version (`@@GLIBC_2.34`) is not part of the name.
fn perfs(line: &str) -> Frame {
    let line = line.trim();
    let (head, dso) = line.rsplit_once(" (").expect("a frame with its dso");
    let file = dso
        .trim_end_matches(')')
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let symbol = head.split_once(' ').map_or("", |(_, symbol)| symbol).trim();
    let function = (symbol != "[unknown]").then(|| symbol.split("@@").next().unwrap().to_string());
    Frame { file, function }
}

/// The stacks in `perf script --no-inline -F ip,sym,dso` output: frames
/// innermost first, samples separated by blank lines.
fn perf_stacks(script: &str) -> Vec<Vec<Frame>> {
    script
        .split("\n\n")
        .map(|sample| {
            sample
                .lines()
                .filter(|line| !line.trim().is_empty())
                .map(perfs)
                .collect::<Vec<Frame>>()
        })
        .filter(|stack| !stack.is_empty())
        .collect()
}

/// Two stacks agree: the same frames in the same files, and the same
/// function wherever the server's own binary names one (libc's frames
/// are named from its DWARF by one tool and its symbol table by the
/// other: aliases of one function).
fn agree(ours: &[Frame], perf: &[Frame]) -> bool {
    ours.len() == perf.len()
        && ours
            .iter()
            .zip(perf)
            .all(|(a, b)| a.file == b.file && (a.file != "nginx" || a.function == b.function))
}

#[test]
fn nginx_stacks_without_frame_pointers_match_perf_dwarf_unwinding() {
    needs_root!();
    mount_tracefs();
    let dir = tempfile::tempdir().unwrap();
    let nginx = Nginx::start(dir.path());
    let worker = nginx.worker().to_string();
    let perf_data = dir.path().join("perf.data");
    let perf = Command::new("perf")
        .args(["record", "-q", "--call-graph", "dwarf", "-e"])
        .arg("syscalls:sys_exit_epoll_wait")
        .args(["-p", &worker, "-o"])
        .arg(&perf_data)
        .args(["--", "sleep", "4"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting perf (apt-get install linux-perf)");
    // Requests 100 ms apart once both tools are attached: the worker
    // waits in epoll_wait between them (slow calls of 1 ms or more).
    let load = thread::spawn(move || {
        thread::sleep(Duration::from_millis(1500));
        for _ in 0..10 {
            assert!(nginx.request(), "nginx did not answer");
            thread::sleep(Duration::from_millis(100));
        }
        nginx
    });
    let out = dir.path().join("report.json");
    run_tool(&[
        "--pid",
        &worker,
        "--duration",
        "3.5",
        "-s",
        "1000000",
        "--json",
        "-o",
        out.to_str().unwrap(),
    ]);
    let report: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_budgets_add_up(&report);
    let nginx = load.join().unwrap();
    let perf = perf.wait_with_output().unwrap();
    assert!(perf.status.success(), "perf record failed");
    drop(nginx);
    let script = Command::new("perf")
        .args(["script", "--no-inline", "-F", "ip,sym,dso", "-i"])
        .arg(&perf_data)
        .output()
        .unwrap();
    let perf_stacks = perf_stacks(&String::from_utf8_lossy(&script.stdout));
    assert!(!perf_stacks.is_empty(), "perf recorded no epoll_wait");
    let waits: Vec<&Value> = report["syscall_events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == "epoll_wait")
        .collect();
    assert!(waits.len() >= 5, "{} slow epoll_wait", waits.len());
    for wait in waits {
        let stack: Vec<Frame> = wait["user_stack"]
            .as_array()
            .unwrap()
            .iter()
            .map(|frame| ours(frame.as_str().unwrap()))
            .collect();
        assert!(
            stack
                .iter()
                .any(|f| f.function.as_deref() == Some("ngx_process_events_and_timers")),
            "{stack:?}"
        );
        assert!(
            perf_stacks.iter().any(|perf| agree(&stack, perf)),
            "no perf stack agrees with {stack:#?}\nperf: {:#?}",
            perf_stacks.first()
        );
    }
}

#[test]
fn frames_are_read_from_both_tools() {
    assert_eq!(
        ours("ngx_process_events_and_timers+0x86 [/usr/sbin/nginx]"),
        Frame {
            file: "nginx".into(),
            function: Some("ngx_process_events_and_timers".into())
        }
    );
    assert_eq!(
        ours("0x55ce6a648174 [/usr/sbin/nginx]"),
        Frame {
            file: "nginx".into(),
            function: None
        }
    );
    assert_eq!(
        ours("epoll_wait+0x13 (epoll_wait.c:30) [/usr/lib/x86_64-linux-gnu/libc.so.6]"),
        Frame {
            file: "libc.so.6".into(),
            function: Some("epoll_wait".into())
        }
    );
    assert_eq!(
        perfs("\t  54173 [unknown] (/usr/sbin/nginx)"),
        Frame {
            file: "nginx".into(),
            function: None
        }
    );
    assert_eq!(
        perfs("  27304 __libc_start_main@@GLIBC_2.34 (/usr/lib/x86_64-linux-gnu/libc.so.6)"),
        Frame {
            file: "libc.so.6".into(),
            function: Some("__libc_start_main".into())
        }
    );
}
