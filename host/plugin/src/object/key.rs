//! Object keys from the `s3_key_format` template.
//!
//! A template is parsed and checked once ([`KeyTemplate::parse`]), then rendered when an
//! object is opened ([`KeyTemplate::render`]); the key is fixed from then on, so a retry
//! after a crash writes the same key. Rendering is pure: everything that varies (the
//! window, the tag, the index, the random part, the host) comes in a [`KeyContext`].
//!
//! | token | becomes |
//! |---|---|
//! | `%Y`, `%m`, `%d`, `%H`, `%M`, `%S`, ... | strftime of the window start, in UTC |
//! | `$TAG` | the whole tag |
//! | `$TAG[n]` | part `n` (from 0) of the tag split on the delimiter characters; empty if the tag has fewer parts |
//! | `$INDEX` | the object's number in its series (the keys that differ only in `$INDEX` and `$UUID`), from 0, kept in `store_dir` |
//! | `$UUID` | 8 random characters, drawn when the object opens |
//! | `$HOSTNAME` | the host name |
//! | `$AGENT_ID` | an id drawn once per `store_dir`, so two agents on one host differ |
//! | `${NAME}` | the environment variable `NAME` when the template is parsed |
//!
//! A `$` that starts no token stays as it is. A leading `/` is dropped: S3 keys and paths
//! under a directory are relative.

use std::fmt::Write;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Utc};

use crate::config::parse;

/// A template that cannot be used, with what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(String);

/// What a key is rendered from.
#[derive(Debug, Clone, Copy)]
pub struct KeyContext<'a> {
    /// The start of the object's time window.
    pub window_start: DateTime<Utc>,
    /// The records' tag.
    pub tag: &'a str,
    /// The object's sequence number.
    pub index: u64,
    /// 8 random characters drawn for this object.
    pub uuid: &'a str,
    /// The host name.
    pub hostname: &'a str,
    /// The agent's id.
    pub agent_id: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Text that may hold strftime specifiers.
    Text(String),
    Tag,
    TagPart(usize),
    Index,
    Uuid,
    Hostname,
    AgentId,
}

/// A parsed `s3_key_format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    parts: Vec<Piece>,
    tag_delimiters: String,
}

const TOKENS: [(&str, Piece); 5] = [
    ("$TAG", Piece::Tag),
    ("$INDEX", Piece::Index),
    ("$UUID", Piece::Uuid),
    ("$HOSTNAME", Piece::Hostname),
    ("$AGENT_ID", Piece::AgentId),
];

impl KeyTemplate {
    /// Parses a template; `tag_delimiters` are the characters `$TAG[n]` splits on.
    ///
    /// # Errors
    ///
    /// An unknown strftime specifier, a malformed `$TAG[n]`, an unclosed `${`, or a
    /// template that yields an empty key.
    pub fn parse(template: &str, tag_delimiters: &str) -> Result<KeyTemplate, TemplateError> {
        let template = parse::expand_variables(template, |name| std::env::var(name).ok())
            .map_err(TemplateError)?;
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = template.trim_start_matches('/');
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("$TAG[") {
                let end = after.find(']').ok_or_else(|| {
                    TemplateError(format!("'$TAG[' in '{template}' has no closing ']'"))
                })?;
                let index = after[..end].parse().map_err(|_| {
                    TemplateError(format!(
                        "'$TAG[{}]' in '{template}': the part number must be a whole number",
                        &after[..end]
                    ))
                })?;
                flush_text(&mut text, &mut parts)?;
                parts.push(Piece::TagPart(index));
                rest = &after[end + 1..];
                continue;
            }
            if let Some((token, part)) = TOKENS.iter().find(|(token, _)| rest.starts_with(token)) {
                flush_text(&mut text, &mut parts)?;
                parts.push(part.clone());
                rest = &rest[token.len()..];
                continue;
            }
            let next = rest.chars().next().expect("rest is not empty");
            text.push(next);
            rest = &rest[next.len_utf8()..];
        }
        flush_text(&mut text, &mut parts)?;
        if parts.is_empty() {
            return Err(TemplateError("the key template is empty".into()));
        }
        Ok(KeyTemplate {
            parts,
            tag_delimiters: tag_delimiters.to_owned(),
        })
    }

    /// Whether keys differ for every object without help from the window: the template has
    /// `$INDEX` or `$UUID`.
    pub fn is_unique_per_object(&self) -> bool {
        self.parts
            .iter()
            .any(|part| matches!(part, Piece::Index | Piece::Uuid))
    }

    /// Whether keys carry `$INDEX`.
    pub fn uses_index(&self) -> bool {
        self.parts.iter().any(|part| matches!(part, Piece::Index))
    }

    /// The text every key begins with: the template up to its first token or strftime
    /// specifier (`logs/%Y/...` gives `logs/`). IAM policies are scoped to it.
    pub fn fixed_prefix(&self) -> String {
        let mut prefix = String::new();
        let Some(Piece::Text(text)) = self.parts.first() else {
            return prefix;
        };
        for item in StrftimeItems::new(text) {
            match item {
                Item::Literal(literal) => prefix.push_str(literal),
                Item::OwnedLiteral(literal) => prefix.push_str(&literal),
                Item::Space(space) => prefix.push_str(space),
                Item::OwnedSpace(space) => prefix.push_str(&space),
                _ => break,
            }
        }
        prefix
    }

    /// The key of an object.
    pub fn render(&self, context: &KeyContext<'_>) -> String {
        self.write(context, Some(context.index), context.uuid)
    }

    /// The series of an object's key: the key with `$INDEX` and `$UUID` left as they are.
    /// `$INDEX` counts the objects of one series.
    pub fn series(&self, context: &KeyContext<'_>) -> String {
        self.write(context, None, "$UUID")
    }

    fn write(&self, context: &KeyContext<'_>, index: Option<u64>, uuid: &str) -> String {
        let mut key = String::new();
        for part in &self.parts {
            match part {
                Piece::Text(text) => {
                    // Checked at parse time, so formatting cannot fail.
                    let _ = write!(key, "{}", context.window_start.format(text));
                }
                Piece::Tag => key.push_str(context.tag),
                Piece::TagPart(n) => key.push_str(
                    context
                        .tag
                        .split(|c| self.tag_delimiters.contains(c))
                        .nth(*n)
                        .unwrap_or(""),
                ),
                Piece::Index => match index {
                    Some(index) => {
                        let _ = write!(key, "{index}");
                    }
                    None => key.push_str("$INDEX"),
                },
                Piece::Uuid => key.push_str(uuid),
                Piece::Hostname => key.push_str(context.hostname),
                Piece::AgentId => key.push_str(context.agent_id),
            }
        }
        key
    }
}

/// Ends a text part, checking its strftime specifiers.
fn flush_text(text: &mut String, parts: &mut Vec<Piece>) -> Result<(), TemplateError> {
    if text.is_empty() {
        return Ok(());
    }
    if StrftimeItems::new(text).any(|item| matches!(item, Item::Error)) {
        return Err(TemplateError(format!(
            "'{text}' has a % that is not a strftime specifier (write %% for a literal %)"
        )));
    }
    parts.push(Piece::Text(std::mem::take(text)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn context(tag: &str) -> KeyContext<'_> {
        KeyContext {
            window_start: Utc.with_ymd_and_hms(2021, 12, 3, 15, 0, 0).unwrap(),
            tag,
            index: 7,
            uuid: "a1b2c3d4",
            hostname: "ip-10-0-0-1",
            agent_id: "k3x9",
        }
    }

    fn render(template: &str, tag: &str) -> String {
        KeyTemplate::parse(template, ".")
            .unwrap()
            .render(&context(tag))
    }

    #[test]
    fn the_fixed_prefix_ends_at_the_first_token_or_specifier() {
        let prefix = |template: &str| KeyTemplate::parse(template, ".").unwrap().fixed_prefix();
        assert_eq!(prefix("/dev/app logs/%Y/$UUID"), "dev/app logs/");
        assert_eq!(prefix("dev/100%%/$TAG/$UUID"), "dev/100%/");
        assert_eq!(prefix("$TAG/%Y/$UUID"), "");
        assert_eq!(prefix("%Y/$UUID"), "");
        assert_eq!(prefix("rustsink/$TAG/$INDEX"), "rustsink/");
    }

    #[test]
    fn fluentd_layout_with_an_index() {
        assert_eq!(
            render("dev/%Y%m%d%H_$INDEX.gz", "s3.app"),
            "dev/2021120315_7.gz"
        );
    }

    #[test]
    fn every_token_renders() {
        assert_eq!(
            render(
                "/logs/$TAG/$TAG[0]/$TAG[1]/$TAG[5]/dt=%Y-%m-%d/hour=%H/$HOSTNAME-$AGENT_ID-$UUID-$INDEX",
                "kube.var.log"
            ),
            "logs/kube.var.log/kube/var//dt=2021-12-03/hour=15/ip-10-0-0-1-k3x9-a1b2c3d4-7"
        );
    }

    #[test]
    fn tag_parts_split_on_every_delimiter() {
        let template = KeyTemplate::parse("$TAG[1]/$TAG[2]", ".-").unwrap();
        assert_eq!(
            template.render(&context("nginx-firelens.abc")),
            "firelens/abc"
        );
    }

    #[test]
    fn environment_variables_expand_when_parsed() {
        // cargo sets CARGO_PKG_NAME for the tests it runs; compare with whatever it is.
        let name = std::env::var("CARGO_PKG_NAME").unwrap_or_default();
        assert_eq!(render("${CARGO_PKG_NAME}/$TAG", "t"), format!("{name}/t"));
        assert_eq!(render("${RUSTSINK_KEY_TEST_UNSET}x", "t"), "x");
    }

    #[test]
    fn a_lone_dollar_and_literal_percent_stay() {
        assert_eq!(render("cost$/100%%/$TAGS", "t"), "cost$/100%/tS");
    }

    #[test]
    fn bad_templates_say_what_is_wrong() {
        for (template, expected) in [
            ("logs/%Q/$INDEX", "not a strftime specifier"),
            ("$TAG[x]", "must be a whole number"),
            ("$TAG[1", "no closing ']'"),
            ("${HOME", "no closing '}'"),
            ("/", "empty"),
        ] {
            let error = KeyTemplate::parse(template, ".").unwrap_err().to_string();
            assert!(error.contains(expected), "{template}: {error}");
        }
    }

    #[test]
    fn uniqueness_needs_index_or_uuid() {
        assert!(
            KeyTemplate::parse("a/$INDEX", ".")
                .unwrap()
                .is_unique_per_object()
        );
        assert!(
            KeyTemplate::parse("a/$UUID", ".")
                .unwrap()
                .is_unique_per_object()
        );
        assert!(
            !KeyTemplate::parse("a/%H/$HOSTNAME", ".")
                .unwrap()
                .is_unique_per_object()
        );
    }
}
