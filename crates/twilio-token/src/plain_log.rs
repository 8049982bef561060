//! Field formatting of the plain log format.
//!
//! `tracing-subscriber` writes a field recorded with `%` as its bare text, so a value with a
//! space or `=` in it, such as an identity that a backend sends, could read as several fields.
//! Here a value is quoted and escaped whenever it could be misread, and left bare otherwise.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

/// Formats fields as `name=value`, quoting values that need it.
#[derive(Debug, Default)]
pub(crate) struct PlainFields;

impl<'writer> FormatFields<'writer> for PlainFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = PlainVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct PlainVisitor<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl PlainVisitor<'_> {
    fn write(&mut self, field: &Field, text: &str) {
        if self.result.is_err() {
            return;
        }
        let separator = if self.first { "" } else { " " };
        self.first = false;
        self.result = if field.name() == "message" {
            write!(self.writer, "{separator}{text}")
        } else if needs_quotes(text) {
            write!(self.writer, "{separator}{}={text:?}", field.name())
        } else {
            write!(self.writer, "{separator}{}={text}", field.name())
        };
    }
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        self.write(field, &text);
    }
}

/// Returns true when `text` bare could be misread: empty, or with a character other than a
/// printable ASCII one that is not a quote, a backslash or `=`.
fn needs_quotes(text: &str) -> bool {
    text.is_empty()
        || text
            .chars()
            .any(|c| !c.is_ascii_graphic() || matches!(c, '"' | '\\' | '='))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(emit: impl FnOnce()) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(PlainFields)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .with_level(false)
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let bytes = captured.0.lock().expect("lock").clone();
        String::from_utf8(bytes).expect("UTF-8")
    }

    #[test]
    fn plain_values_stay_bare() {
        let line = logged(|| {
            tracing::info!(identity = %"customer-1", ttl = 1800, fail_open = false, "issued");
        });

        assert_eq!(
            line,
            "issued identity=customer-1 ttl=1800 fail_open=false\n"
        );
    }

    #[test]
    fn value_with_separators_quoted() {
        let forged = "customer-1 profile=other grants=[\"voice\"]";
        let line = logged(|| tracing::info!(identity = %forged, profile = "default", "issued"));

        assert_eq!(
            line,
            "issued identity=\"customer-1 profile=other grants=[\\\"voice\\\"]\" profile=default\n"
        );
    }

    #[test]
    fn unusual_characters_quoted() {
        let line = logged(|| {
            tracing::info!(a = %"", b = %"x\ny", c = %"a\u{202e}b", d = %"café", "event");
        });

        assert_eq!(
            line,
            "event a=\"\" b=\"x\\ny\" c=\"a\\u{202e}b\" d=\"café\"\n"
        );
    }
}
