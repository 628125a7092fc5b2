//! The W3C `traceparent` between the wire and `tracing` spans: parsing (a malformed value
//! is ignored), making a span a child of a remote parent, and writing a span's own.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header (and event field) name.
pub const TRACEPARENT: &str = "traceparent";

/// The span context in a well-formed `traceparent`: version `00`, then a 32-digit trace
/// id and a 16-digit parent id (lowercase hex, neither all zeros) and two flag digits,
/// separated by `-` (55 characters). Anything else is `None`.
pub fn parse(value: &str) -> Option<SpanContext> {
    let value = value.trim();
    let mut parts = value.split('-');
    let (Some(version), Some(trace), Some(parent), Some(flags), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let lower_hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if version != "00" || !lower_hex(trace, 32) || !lower_hex(parent, 16) || !lower_hex(flags, 2) {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    let context = SpanContext::new(
        TraceId::from_hex(trace).ok()?,
        SpanId::from_hex(parent).ok()?,
        TraceFlags::new(flags) & TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    context.is_valid().then_some(context)
}

/// A well-formed `traceparent` in its canonical form; `None` for anything else.
pub fn normalize(value: &str) -> Option<String> {
    parse(value).map(|context| format(&context))
}

/// The `traceparent` of a span context.
fn format(context: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        context.trace_id(),
        context.span_id(),
        context.trace_flags().to_u8()
    )
}

/// Makes `span` a child of the remote parent in `traceparent` when that is well-formed
/// (and the span has not started yet). Returns whether it did: `false` also when tracing
/// is off, where spans have no OpenTelemetry side.
pub fn set_parent(span: &tracing::Span, traceparent: Option<&str>) -> bool {
    let Some(parent) = traceparent.and_then(parse) else {
        return false;
    };
    span.set_parent(Context::new().with_remote_span_context(parent))
        .is_ok()
}

/// The `traceparent` that names `span` as the parent, or `None` when tracing is off.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let span_ref = context.span();
    let span_context = span_ref.span_context();
    span_context.is_valid().then(|| format(span_context))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_well_formed_value_is_read() {
        let context = parse(GOOD).unwrap();
        assert_eq!(
            context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(context.span_id().to_string(), "00f067aa0ba902b7");
        assert!(context.is_sampled());
        assert!(context.is_remote());
        assert_eq!(normalize(GOOD).as_deref(), Some(GOOD));
    }

    #[test]
    fn malformed_values_are_ignored() {
        for bad in [
            "",
            "garbage",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-00",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "-----------------------------------------------------------",
        ] {
            assert!(parse(bad).is_none(), "{bad:?}");
            assert!(normalize(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn unknown_flags_are_dropped() {
        assert_eq!(
            normalize("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03").as_deref(),
            Some(GOOD)
        );
    }

    #[test]
    fn without_a_tracing_layer_nothing_is_set_or_read() {
        let span = tracing::info_span!("x");
        assert!(!set_parent(&span, Some(GOOD)));
        assert_eq!(traceparent_of(&span), None);
    }
}
