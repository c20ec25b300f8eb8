//! Reading the `[OUTPUT]` sections of a classic Fluent Bit configuration file.
//!
//! Supported: sections, `Key Value` lines (the first run of spaces separates them),
//! comments, `@INCLUDE` (relative to the including file), `@SET name=value` and
//! `${NAME}` in values (from `@SET`, else the environment), as Fluent Bit reads them.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::harness::OutputSection;
use rustsink::config::parse;

/// One section of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The section name (`OUTPUT`, `SERVICE`, ...), upper-cased.
    pub kind: String,
    /// Where it starts, for messages: `file:line`.
    pub origin: String,
    /// Its keys and values, variables expanded.
    pub entries: OutputSection,
}

/// Reads a configuration file and the files it includes.
///
/// # Errors
///
/// When a file cannot be read, or a line is neither a section, a key/value pair, a
/// comment nor a directive.
pub fn read(path: &Path) -> Result<Vec<Section>> {
    let mut sections = Vec::new();
    let mut variables = HashMap::new();
    read_into(path, &mut sections, &mut variables, 0)?;
    Ok(sections)
}

/// The `[OUTPUT]` sections whose `Name` is `plugin`.
pub fn outputs_named<'a>(
    sections: &'a [Section],
    plugin: &'a str,
) -> impl Iterator<Item = &'a Section> {
    sections.iter().filter(move |section| {
        section.kind == "OUTPUT"
            && section
                .entries
                .get("name")
                .is_some_and(|name| name.eq_ignore_ascii_case(plugin))
    })
}

fn read_into(
    path: &Path,
    sections: &mut Vec<Section>,
    variables: &mut HashMap<String, String>,
    depth: usize,
) -> Result<()> {
    if depth > 16 {
        bail!("{}: @INCLUDE nests more than 16 deep", path.display());
    }
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    for (index, raw) in text.lines().enumerate() {
        let origin = format!("{}:{}", path.display(), index + 1);
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(kind) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            sections.push(Section {
                kind: kind.trim().to_ascii_uppercase(),
                origin,
                entries: OutputSection::default(),
            });
            continue;
        }
        let (key, value) = match line.split_once(char::is_whitespace) {
            Some((key, value)) => (key, value.trim()),
            None => (line, ""),
        };
        if key.eq_ignore_ascii_case("@INCLUDE") {
            let included = resolve(path, &expand(value, variables, &origin)?);
            read_into(&included, sections, variables, depth + 1)
                .with_context(|| format!("included from {origin}"))?;
            continue;
        }
        if key.eq_ignore_ascii_case("@SET") {
            let Some((name, value)) = value.split_once('=') else {
                bail!("{origin}: @SET needs name=value");
            };
            variables.insert(name.trim().to_owned(), value.trim().to_owned());
            continue;
        }
        let Some(section) = sections.last_mut() else {
            bail!("{origin}: '{line}' is outside any [SECTION]");
        };
        if value.is_empty() {
            bail!("{origin}: key '{key}' has no value");
        }
        section
            .entries
            .properties
            .push((key.to_owned(), expand(value, variables, &origin)?));
    }
    Ok(())
}

fn resolve(including: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_owned()
    } else {
        including.parent().unwrap_or(Path::new(".")).join(path)
    }
}

/// Expands `${NAME}` from the `@SET` variables, else the environment.
fn expand(value: &str, variables: &HashMap<String, String>, origin: &str) -> Result<String> {
    parse::expand_variables(value, |name| {
        variables
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
    })
    .map_err(|error| anyhow::anyhow!("{origin}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sections_includes_and_variables() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("extra.conf"),
            "[OUTPUT]\n    Name  rustsink\n    Match app.*\n    sink  dir\n    path  ${OUT}/b\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("main.conf"),
            "@SET OUT=/data\n# comment\n[SERVICE]\n    Flush 1\n\n[OUTPUT]\n    Name rustsink\n    \
             Match *\n    path ${OUT}/a\n@INCLUDE extra.conf\n[OUTPUT]\n    Name null\n",
        )
        .unwrap();
        let sections = read(&dir.path().join("main.conf")).unwrap();
        let outputs: Vec<_> = outputs_named(&sections, "rustsink").collect();
        assert_eq!(outputs.len(), 2);
        assert_eq!(outputs[0].entries.get("PATH"), Some("/data/a"));
        assert_eq!(outputs[1].entries.get("match"), Some("app.*"));
        assert_eq!(outputs[1].entries.get("path"), Some("/data/b"));
        assert!(outputs[1].origin.ends_with("extra.conf:1"));
    }

    #[test]
    fn a_key_outside_a_section_is_an_error_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("bad.conf"), "Name rustsink\n").unwrap();
        let error = read(&dir.path().join("bad.conf")).unwrap_err().to_string();
        assert!(
            error.ends_with("bad.conf:1: 'Name rustsink' is outside any [SECTION]"),
            "{error}"
        );
    }
}
