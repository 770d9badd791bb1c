//! A real server: Debian's redis-server on 127.0.0.1, driven by its own
//! load generator (redis-benchmark, a fixed number of requests from a
//! fixed number of connections), untraced, under the floors and under
//! kernel-delay. What a user sees: requests per second, and the share of
//! them each kind of tracing costs.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::floors::Level;
use super::{median, Attached, Others, Run, Targets, Tracing, ROUNDS};

/// Requests of each kind (SET, then GET) per run, and the connections
/// that make them.
const REQUESTS: &str = "200000";
const CONNECTIONS: &str = "20";

const VARIANTS: [(Tracing, &str); 4] = [
    (Tracing::Untraced, "untraced"),
    (Tracing::Floor(Level::Filter), "floor: filter only"),
    (Tracing::Floor(Level::Timing), "floor: timing only"),
    (Tracing::KernelDelay(Targets::Workload), "kernel-delay"),
];

/// A redis-server of its own (no persistence), stopped when dropped.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Redis {
        // A port the kernel says is free now.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("starting redis-server (make bench installs redis-server)");
        let redis = Redis { child, port };
        redis.wait_until_ready();
        redis
    }

    fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let mut reply = String::new();
                if stream.write_all(b"PING\r\n").is_ok()
                    && BufReader::new(stream).read_line(&mut reply).is_ok()
                    && reply.starts_with("+PONG")
                {
                    return;
                }
            }
            sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not answer on port {}", self.port);
    }

    /// Requests per second over the SET and GET runs together.
    fn load(&self) -> f64 {
        let output = Command::new("redis-benchmark")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-n", REQUESTS, "-c", CONNECTIONS, "-t", "set,get", "--csv"])
            .stderr(Stdio::null())
            .output()
            .expect("running redis-benchmark");
        assert!(output.status.success(), "redis-benchmark failed");
        let csv = String::from_utf8(output.stdout).expect("redis-benchmark prints text");
        let rates: Vec<f64> = csv
            .lines()
            .filter(|line| line.starts_with("\"SET\"") || line.starts_with("\"GET\""))
            .map(|line| {
                line.split(',')
                    .nth(1)
                    .and_then(|rps| rps.trim_matches('"').parse().ok())
                    .expect("a rate in redis-benchmark's CSV")
            })
            .collect();
        assert_eq!(rates.len(), 2, "redis-benchmark's CSV: {csv}");
        // The same number of each: all requests over the time of both.
        2.0 / rates.iter().map(|rate| 1.0 / rate).sum::<f64>()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Requests per second of each variant, and the loss of kernel-delay's
/// against the timing floor's.
pub fn requests_per_second(others: &Others) {
    let redis = Redis::start();
    let pid = redis.child.id();
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    let kernel_delay = Tracing::KernelDelay(Targets::Workload);
    let (mut seconds, mut tool_cpu, mut lost) = (Vec::new(), Vec::new(), 0);
    for round in 0..ROUNDS {
        for i in (0..VARIANTS.len()).map(|i| (i + round) % VARIANTS.len()) {
            let mut attached = Attached::to(VARIANTS[i].0, &[], others, pid);
            attached.going();
            let started = Instant::now();
            samples[i].push(redis.load());
            let elapsed = started.elapsed();
            let mut measured = Run::default();
            attached.detach(&mut measured);
            if VARIANTS[i].0 == kernel_delay {
                seconds.push(elapsed.as_secs_f64());
                tool_cpu.push(measured.tool_cpu_s);
                lost += measured.lost;
            }
        }
    }
    let medians: Vec<f64> = samples.into_iter().map(median).collect();
    let untraced = medians[0];
    let loss = |i: usize| 1.0 - medians[i] / untraced;
    let loss_of = |tracing: Tracing| {
        loss(
            VARIANTS
                .iter()
                .position(|(v, _)| *v == tracing)
                .expect("a variant"),
        )
    };
    println!();
    println!(
        "redis-server (Debian), redis-benchmark on 127.0.0.1: {REQUESTS} SET + {REQUESTS} GET from {CONNECTIONS} connections"
    );
    println!("  {:<40} {:>10} {:>10}", "", "requests/s", "loss");
    for (i, ((_, label), rps)) in VARIANTS.iter().zip(&medians).enumerate() {
        println!("  {label:<40} {rps:>10.0} {:>9.1}%", 100.0 * loss(i));
    }
    println!(
        "  kernel-delay: {:.2} s of CPU (from the load's start to its own end) per {:.1} s run, lost records in all {ROUNDS} rounds: {lost}",
        median(tool_cpu),
        median(seconds)
    );
    println!(
        "  kernel-delay loses {:.2}x what timing alone loses; target <= 1.10",
        loss_of(kernel_delay) / loss_of(Tracing::Floor(Level::Timing))
    );
}
