//! The options a component receives at init.

use std::str::FromStr;

use crate::Error;

/// The options of a component, as the user set them (`filter.N.<name>`), defaults
/// applied.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pairs: Vec<(String, String)>,
}

impl Options {
    /// Options from `(name, value)` pairs.
    pub fn new(pairs: Vec<(String, String)>) -> Options {
        Options { pairs }
    }

    /// The value of option `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The value of option `name`, which must be set.
    ///
    /// # Errors
    ///
    /// When it is not.
    pub fn require(&self, name: &str) -> Result<&str, Error> {
        self.get(name)
            .ok_or_else(|| Error::fatal(format!("option '{name}' is required")))
    }

    /// The value of option `name` parsed as a `T`; `true`/`false`, numbers and anything
    /// with a `FromStr`.
    ///
    /// # Errors
    ///
    /// When the value does not parse; the message names the option and the value.
    pub fn parse<T: FromStr>(&self, name: &str) -> Result<Option<T>, Error>
    where
        T::Err: std::fmt::Display,
    {
        self.get(name)
            .map(|text| {
                text.trim()
                    .parse()
                    .map_err(|e| Error::fatal(format!("option '{name}': cannot use '{text}': {e}")))
            })
            .transpose()
    }
}
