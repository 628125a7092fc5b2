//! Which pages may talk to the Engine.IO endpoint (the Origin check), the CORS headers of
//! its answers, and Engine.IO's `{"code", "message"}` error bodies.

use super::engine::Engine;
use super::polling::PollError;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use kanban_protocol::ops::EngineIoError;

pub(super) fn error_response(error: PollError, origin: Allowed<'_>) -> HttpResponse {
    let mut response = HttpResponse::build(
        StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST),
    );
    cors(&mut response, origin);
    response.json(EngineIoError {
        code: error.code(),
        message: error.message(),
    })
}

/// How a request's Origin was allowed, which decides the CORS headers of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Allowed<'a> {
    /// No Origin header (a non-browser client): no CORS headers.
    NoOrigin,
    /// The page's own origin or a listed one: echoed, with credentials.
    Origin(&'a str),
    /// Only by a configured `*`: any page may read, never with credentials.
    Anyone,
}

pub(super) fn cors(response: &mut actix_web::HttpResponseBuilder, allowed: Allowed<'_>) {
    match allowed {
        Allowed::NoOrigin => {}
        Allowed::Origin(origin) => {
            response.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin));
            response.insert_header((header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true"));
            response.insert_header((header::VARY, "Origin"));
        }
        Allowed::Anyone => {
            response.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"));
        }
    }
}

/// Whether the request may proceed, by its Origin: none (non-browser clients), the
/// request's own host (`Origin` host:port equal to `Host`), an origin listed in
/// `gateway.allowed_origins`, or anything when the list holds `*`. `Err` otherwise.
pub(super) fn check_origin<'a, M>(
    engine: &Engine<M>,
    req: &'a HttpRequest,
) -> Result<Allowed<'a>, PollError> {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return Ok(Allowed::NoOrigin);
    };
    let Ok(origin) = origin.to_str() else {
        return Err(PollError::Forbidden);
    };
    let allowed = &engine.settings.gateway.allowed_origins;
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    if host.is_some_and(|host| same_origin(origin, host))
        || allowed.iter().any(|a| a.eq_ignore_ascii_case(origin))
    {
        Ok(Allowed::Origin(origin))
    } else if allowed.iter().any(|a| a == "*") {
        Ok(Allowed::Anyone)
    } else {
        Err(PollError::Forbidden)
    }
}

/// Whether `origin` (`scheme://host[:port]`) names the same host and port as the request's
/// `Host` header; a missing port is the scheme's default (80, 443).
fn same_origin(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return false,
    };
    match (host_port(authority, default), host_port(host, default)) {
        (Some((a, p)), Some((b, q))) => a.eq_ignore_ascii_case(b) && p == q,
        _ => false,
    }
}

/// `host[:port]` or `[v6][:port]`, split; `None` when malformed (a path, userinfo, a bad port).
fn host_port(authority: &str, default: u16) -> Option<(&str, u16)> {
    if authority.is_empty() || authority.contains(['/', '@', '?', '#']) {
        return None;
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            let (v6, after) = rest.split_once(']')?;
            let port = match after {
                "" => None,
                after => Some(after.strip_prefix(':')?),
            };
            (v6, port)
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port = match port {
        None => default,
        Some(port) => port.parse().ok()?,
    };
    (!host.is_empty()).then_some((host, port))
}

#[cfg(test)]
mod tests {
    use super::same_origin;

    #[test]
    fn an_origin_is_the_same_when_host_and_port_match() {
        assert!(same_origin("http://localhost:8080", "localhost:8080"));
        assert!(same_origin("https://Board.Example", "board.example:443"));
        assert!(same_origin("http://board.example", "board.example"));
        assert!(same_origin("http://[::1]:3000", "[::1]:3000"));
        assert!(!same_origin("http://localhost:8080", "localhost"));
        assert!(!same_origin("https://board.example", "board.example:80"));
        assert!(!same_origin("http://evil.example", "board.example"));
        assert!(!same_origin("null", "board.example"));
        assert!(!same_origin(
            "http://board.example@evil.example",
            "board.example"
        ));
        assert!(!same_origin("ftp://board.example", "board.example"));
        assert!(!same_origin("http://board.example:x", "board.example"));
    }
}
