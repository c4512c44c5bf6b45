//! Slow clients of `ocicert serve` (issue 32): hundreds of connections that never finish their
//! headers, or go quiet after a request, are cut off by the header and idle timeouts, connections
//! past `max_connections` are closed at once and counted, and a fast client is answered
//! throughout.

use crate::support::{Service, free_port, http};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Whether the server has closed `stream` (EOF or reset) within `within`.
fn closed_within(mut stream: &TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

fn fast_healthz(service: &Service) -> Duration {
    let started = Instant::now();
    let (status, body) = http("GET", &service.url("/healthz"), &[], None);
    assert_eq!(status, 200, "{body}");
    started.elapsed()
}

fn metric(service: &Service, name: &str) -> u64 {
    http("GET", &service.url("/metrics"), &[], None)
        .1
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn slow_clients_are_cut_off_and_a_fast_client_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("serve.toml");
    fs_err::write(
        &config,
        "workers = 0\nheader_timeout_seconds = 2\nidle_timeout_seconds = 3\nmax_connections = 300\n\
         [[registry]]\nhost = \"127.0.0.1:1\"\nrepositories = [\"team/*\"]\n",
    )
    .unwrap();
    let service = Service::start(&config, &dir.path().join("data"), free_port(), &[], &[]);
    let address = format!("127.0.0.1:{}", service.port);

    // 250 clients start a request and never finish its headers (one byte more per half second
    // for some of them: the timeout is on the whole header, not between bytes).
    let mut slow: Vec<TcpStream> = (0..250)
        .map(|_| {
            let mut stream = TcpStream::connect(&address).unwrap();
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            stream
        })
        .collect();
    assert!(
        fast_healthz(&service) < Duration::from_secs(1),
        "slow clients delay a fast one"
    );
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(500));
        for stream in slow.iter_mut().take(20) {
            let _ = stream.write_all(b"X");
        }
    }
    let cut = slow
        .iter()
        .filter(|stream| closed_within(stream, Duration::from_secs(3)))
        .count();
    assert_eq!(
        cut, 250,
        "every slow header is cut off after header_timeout_seconds"
    );

    // A client that sends a request, reads the answer and stays: closed after the idle timeout.
    let mut quiet = TcpStream::connect(&address).unwrap();
    quiet
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = [0u8; 512];
    let read = quiet.read(&mut answer).unwrap();
    assert!(String::from_utf8_lossy(&answer[..read]).starts_with("HTTP/1.1 200"));
    let started = Instant::now();
    assert!(
        closed_within(&quiet, Duration::from_secs(8)),
        "an idle connection stays open"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // Past max_connections, new connections are closed at once and counted; once the slow ones
    // are cut off, a fast client is answered again.
    // In batches, so that the listen backlog never overflows (a dropped handshake would be
    // retried by the kernel later, when slots are free again).
    let mut crowd = Vec::new();
    for _ in 0..5 {
        crowd.extend((0..80).filter_map(|_| TcpStream::connect(&address).ok()));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(crowd.len(), 400);
    // The crowd's headers time out too; then the count of the ones closed at the limit is read.
    std::thread::sleep(Duration::from_secs(3));
    let refused = metric(&service, "ocicert_http_connections_refused_total ");
    assert!(
        refused >= 80,
        "refused {refused} of 400 connections past a limit of 300"
    );
    drop(crowd);
    assert!(fast_healthz(&service) < Duration::from_secs(1));
}
