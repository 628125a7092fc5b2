//! Newtypes for user input, each with a `parse` that states the rule it enforces.

use crate::error::ApiError;

fn char_len(s: &str) -> usize {
    s.chars().count()
}

fn has_control_chars(s: &str) -> bool {
    s.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
}

macro_rules! bounded_text {
    ($(#[$meta:meta])* $name:ident, $field:literal, max = $max:expr, single_line = $single:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub const MAX_CHARS: usize = $max;

            /// Trims surrounding white space; refuses empty text, text over
            /// [`Self::MAX_CHARS`] characters and control characters.
            pub fn parse(raw: &str) -> Result<Self, ApiError> {
                let text = raw.trim();
                if text.is_empty() {
                    return Err(ApiError::validation(concat!($field, " must not be empty")));
                }
                if char_len(text) > $max {
                    return Err(ApiError::validation(format!(
                        "{} must be at most {} characters",
                        $field, $max
                    )));
                }
                let bad = if $single { text.chars().any(char::is_control) } else { has_control_chars(text) };
                if bad {
                    return Err(ApiError::validation(concat!($field, " contains control characters")));
                }
                Ok($name(text.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_inner(self) -> String {
                self.0
            }
        }
    };
}

bounded_text!(
    /// A ticket title: 1 to 200 characters on one line.
    Title, "title", max = 200, single_line = true
);
bounded_text!(
    /// A project name: 1 to 200 characters on one line.
    ProjectName, "name", max = 200, single_line = true
);
bounded_text!(
    /// A user id as found in a token's `sub`: 1 to 200 characters on one line.
    UserId, "userId", max = 200, single_line = true
);
bounded_text!(
    /// Who or what triggered a transition: 1 to 200 characters on one line.
    TriggeredBy, "triggeredBy", max = 200, single_line = true
);

/// A ticket or project description: up to 10 000 characters; empty means none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description(Option<String>);

impl Description {
    pub const MAX_CHARS: usize = 10_000;

    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let Some(text) = raw.map(str::trim).filter(|t| !t.is_empty()) else {
            return Ok(Description(None));
        };
        if char_len(text) > Self::MAX_CHARS {
            return Err(ApiError::validation(format!(
                "description must be at most {} characters",
                Self::MAX_CHARS
            )));
        }
        if has_control_chars(text) {
            return Err(ApiError::validation(
                "description contains control characters",
            ));
        }
        Ok(Description(Some(text.to_owned())))
    }

    pub fn into_inner(self) -> Option<String> {
        self.0
    }
}

/// The reason given for a transition: up to 1 000 characters; empty means none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason(Option<String>);

impl Reason {
    pub const MAX_CHARS: usize = 1_000;

    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let Some(text) = raw.map(str::trim).filter(|t| !t.is_empty()) else {
            return Ok(Reason(None));
        };
        if char_len(text) > Self::MAX_CHARS || has_control_chars(text) {
            return Err(ApiError::validation(format!(
                "reason must be at most {} characters of text",
                Self::MAX_CHARS
            )));
        }
        Ok(Reason(Some(text.to_owned())))
    }

    pub fn into_inner(self) -> Option<String> {
        self.0
    }
}

/// Ticket labels: at most 20, each 1 to 50 characters on one line, duplicates removed
/// (first occurrence kept).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Labels(Vec<String>);

impl Labels {
    pub const MAX_COUNT: usize = 20;
    pub const MAX_CHARS: usize = 50;

    pub fn parse(raw: &[String]) -> Result<Self, ApiError> {
        if raw.len() > Self::MAX_COUNT {
            return Err(ApiError::validation(format!(
                "at most {} labels are allowed",
                Self::MAX_COUNT
            )));
        }
        let mut labels: Vec<String> = Vec::with_capacity(raw.len());
        for label in raw {
            let label = label.trim();
            if label.is_empty()
                || char_len(label) > Self::MAX_CHARS
                || label.chars().any(char::is_control)
            {
                return Err(ApiError::validation(format!(
                    "each label must be 1 to {} characters on one line",
                    Self::MAX_CHARS
                )));
            }
            if !labels.iter().any(|l| l == label) {
                labels.push(label.to_owned());
            }
        }
        Ok(Labels(labels))
    }

    pub fn into_inner(self) -> Vec<String> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn titles_are_trimmed_and_bounded() {
        assert_eq!(Title::parse("  Fix login  ").unwrap().as_str(), "Fix login");
        assert!(Title::parse("").is_err());
        assert!(Title::parse("   ").is_err());
        assert!(Title::parse(&"x".repeat(200)).is_ok());
        assert!(Title::parse(&"x".repeat(201)).is_err());
        assert!(
            Title::parse(&"é".repeat(200)).is_ok(),
            "limit counts characters, not bytes"
        );
        assert!(Title::parse("two\nlines").is_err());
    }

    #[test]
    fn descriptions_allow_newlines_and_treat_blank_as_none() {
        assert_eq!(
            Description::parse(Some("a\nb"))
                .unwrap()
                .into_inner()
                .as_deref(),
            Some("a\nb")
        );
        assert_eq!(Description::parse(Some("  ")).unwrap().into_inner(), None);
        assert_eq!(Description::parse(None).unwrap().into_inner(), None);
        assert!(Description::parse(Some(&"d".repeat(10_001))).is_err());
        assert!(Description::parse(Some("bell\u{7}")).is_err());
    }

    #[test]
    fn labels_are_deduplicated_and_bounded() {
        let labels = Labels::parse(&["bug".into(), " bug ".into(), "ui".into()]).unwrap();
        assert_eq!(
            labels.into_inner(),
            vec!["bug".to_string(), "ui".to_string()]
        );
        assert!(Labels::parse(&vec!["x".to_string(); 21]).is_err());
        assert!(Labels::parse(&["".to_string()]).is_err());
        assert!(Labels::parse(&["l".repeat(51)]).is_err());
    }

    proptest! {
        #[test]
        fn title_parse_accepts_exactly_the_documented_inputs(s in "\\PC{0,260}") {
            let trimmed = s.trim();
            let ok = !trimmed.is_empty() && trimmed.chars().count() <= 200;
            prop_assert_eq!(Title::parse(&s).is_ok(), ok);
        }
    }
}
