//! The container health probe behind each service's `--healthcheck` flag: one GET of the
//! service's own `/healthz`, so that an image with no shell and no curl (distroless) can
//! still carry a Docker `HEALTHCHECK`.
//!
//! Plain HTTP/1.1 over `std::net`, because the probe runs once per interval in a fresh
//! process: it must start fast, need no runtime and pull in no HTTP client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

/// How long the probe waits for the connection and for the answer.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// Probes `http://<host>:<port>/healthz` (the service's listen address) and turns the
/// result into the process exit code Docker expects: 0 healthy, 1 unhealthy.
pub fn run(service: &str, host: &str, port: u16) -> ExitCode {
    match check(host, port, "/healthz", TIMEOUT) {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("{service}: unhealthy: {reason}");
            ExitCode::FAILURE
        }
    }
}

/// GETs `path` from the server that listens on `host:port` and succeeds on status 200.
pub fn check(host: &str, port: u16, path: &str, timeout: Duration) -> Result<(), String> {
    let address = probe_address(host, port)?;
    let mut stream = TcpStream::connect_timeout(&address, timeout)
        .map_err(|e| format!("cannot connect to {address}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("cannot send the request: {e}"))?;
    // The status line is all that matters; 64 bytes hold it with room to spare.
    let mut head = [0u8; 64];
    let mut read = 0;
    while read < head.len() && !head[..read].contains(&b'\n') {
        match stream.read(&mut head[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) => return Err(format!("no answer: {e}")),
        }
    }
    let status_line = String::from_utf8_lossy(&head[..read]);
    let status_line = status_line.lines().next().unwrap_or_default();
    match status_line.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        Some(status) => Err(format!("{path} answered {status}")),
        None => Err(format!("{path} gave no HTTP status line")),
    }
}

/// The address to connect to for a server bound to `host:port`. A wildcard bind address
/// (`0.0.0.0`, `::`), the usual one in a container, is reached through loopback.
fn probe_address(host: &str, port: u16) -> Result<SocketAddr, String> {
    let host = match host.trim_matches(|c| c == '[' || c == ']') {
        "" | "0.0.0.0" => "127.0.0.1",
        "::" => "::1",
        other => other,
    };
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    /// A one-shot server that answers the first request with `status_line`.
    fn serve_once(status_line: &'static str) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut buffer = [0u8; 1024];
            let _ = socket.read(&mut buffer);
            let response = format!("{status_line}\r\ncontent-length: 0\r\n\r\n");
            socket.write_all(response.as_bytes()).unwrap();
        });
        port
    }

    #[test]
    fn a_200_is_healthy() {
        let port = serve_once("HTTP/1.1 200 OK");
        assert_eq!(check("127.0.0.1", port, "/healthz", TIMEOUT), Ok(()));
    }

    #[test]
    fn a_503_is_unhealthy() {
        let port = serve_once("HTTP/1.1 503 Service Unavailable");
        let error = check("127.0.0.1", port, "/healthz", TIMEOUT).unwrap_err();
        assert!(error.contains("503"), "{error}");
    }

    #[test]
    fn a_wildcard_bind_address_is_probed_on_loopback() {
        let port = serve_once("HTTP/1.1 200 OK");
        assert_eq!(check("0.0.0.0", port, "/healthz", TIMEOUT), Ok(()));
    }

    #[test]
    fn nothing_listening_is_unhealthy() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert!(check("127.0.0.1", port, "/healthz", TIMEOUT).is_err());
    }
}
