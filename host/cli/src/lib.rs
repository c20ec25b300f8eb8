//! The `rustsink` command: run the plugin over a log file without Fluent Bit, check a
//! configuration, list the configuration keys, print IAM policies, and describe and try
//! filter components.
//!
//! Its own crate, so that `librustsink.so` carries none of it: the harness, clap and
//! libloading are the command's alone.
#![deny(unsafe_code)]
#![deny(missing_docs)]

mod component;
pub mod fluent_conf;
pub mod harness;
mod run;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use rustsink::config::{Config, SinkConfig, keys};
use rustsink::destination::s3::policy;
use rustsink::log::PLUGIN_NAME;

/// rustsink: a Fluent Bit output plugin, and the tools around it.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Feed a log file through librustsink.so as Fluent Bit would, with the [OUTPUT]
    /// sections of a Fluent Bit configuration file.
    Run(run::RunArgs),
    /// Check the rustsink [OUTPUT] sections of a Fluent Bit configuration file.
    ///
    /// Components are compiled into the cache of each output's store_dir, so that Fluent
    /// Bit starts without compiling them, when store_dir is a folder of this user's; else
    /// into a cache of this command's.
    Check {
        /// The configuration file.
        #[arg(short, long)]
        config: PathBuf,
        /// Create a missing store_dir (0700, this user's) to keep the compiled components
        /// in. Run it as the user Fluent Bit runs as: rustsink refuses a store_dir of
        /// another user's.
        #[arg(long)]
        precompile: bool,
    },
    /// Print the least-privilege IAM policies (and role trust policies) that the
    /// `sink s3` outputs of a Fluent Bit configuration file need, as JSON.
    Policy {
        /// The configuration file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Try the quarantined objects of every rustsink output of a Fluent Bit configuration
    /// file again: a running Fluent Bit does it within a second, else its next start does.
    Redrive {
        /// The configuration file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Print the configuration keys with their defaults (Markdown).
    Keys,
    /// Print what a filter component is and the options it accepts.
    Describe {
        /// The component (`.wasm`).
        component: PathBuf,
    },
    /// Run a filter component over a file of records and print what comes out.
    Filter(component::FilterArgs),
}

/// Runs the command line; the binary's `main` is only this.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run(args) => run::run(&args),
        Command::Check { config, precompile } => check(&config, precompile),
        Command::Policy { config } => policy(&config),
        Command::Redrive { config } => redrive(&config),
        Command::Describe { component } => component::describe(&component),
        Command::Filter(args) => component::filter(&args),
        Command::Keys => {
            print!("{}", keys::reference_markdown());
            Ok(true)
        }
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("rustsink: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Validates every rustsink output of a file; Ok(false) when one is invalid.
fn check(path: &Path, precompile: bool) -> Result<bool> {
    let sections = fluent_conf::read(path)?;
    let mut valid = true;
    let mut count = 0;
    for section in fluent_conf::outputs_named(&sections, PLUGIN_NAME) {
        count += 1;
        for (key, _) in &section.entries.properties {
            if key.eq_ignore_ascii_case("tls.ca_file") || key.eq_ignore_ascii_case("tls.verify") {
                println!(
                    "{}: warning: Fluent Bit keeps '{key}' to itself and rustsink never sees \
                     it; a private CA goes in '{}' (certificates are always verified)",
                    section.origin,
                    keys::TLS_CA_FILE
                );
            } else if keys::find(key).is_none() && !keys::consumed_by_fluent_bit(key) {
                let hint =
                    did_you_mean(key).map_or(String::new(), |k| format!("; did you mean '{k}'?"));
                println!(
                    "{}: warning: unknown key '{key}' is ignored{hint}",
                    section.origin
                );
            }
        }
        let lookup = |key: &str| section.entries.get(key).map(str::to_owned);
        let checked = Config::from_lookup(lookup)
            .map_err(anyhow::Error::from)
            .and_then(|config| {
                let cache = component_cache(&config, precompile);
                check_components(&config, &lookup, &cache)
            });
        match checked {
            Ok(declared) => {
                let keys = section
                    .entries
                    .properties
                    .iter()
                    .map(|(key, _)| key.as_str());
                for warning in declared.unknown_options(keys) {
                    println!("{}: warning: {warning}", section.origin);
                }
                println!("{}: ok", section.origin);
            }
            Err(error) => {
                valid = false;
                println!("{}: error: {error:#}", section.origin);
            }
        }
    }
    if count == 0 {
        println!(
            "{}: no [OUTPUT] section with Name {PLUGIN_NAME}",
            path.display()
        );
        valid = false;
    }
    Ok(valid)
}

/// Loads and configures the filter and sink components of `config`, as the plugin's
/// start does, and returns the options they declare.
fn check_components(
    config: &Config,
    lookup: &dyn Fn(&str) -> Option<String>,
    cache: &Path,
) -> Result<DeclaredOptions> {
    let log = rustsink::log::Logger::stderr("check", rustsink::log::Threshold::from_env());
    let metrics = rustsink::metrics::Metrics::new("check");
    let chain =
        rustsink::wasm::chain::Chain::start(&config.filters, lookup, cache, &log, &metrics)?;
    let mut declared = DeclaredOptions {
        filters: chain
            .filters()
            .map(|(position, filter)| {
                let options = filter.description().options.iter();
                let names = options.map(|option| option.name.clone()).collect();
                (position, (filter.name().to_owned(), names))
            })
            .collect(),
        sink: None,
    };
    if let rustsink::config::SinkConfig::Component(sink) = &config.sink {
        let sink = rustsink::wasm::sink::start_sink(sink, lookup, cache, &log)?;
        let component = sink.component();
        let options = component.description().options.iter();
        let names = options.map(|option| option.name.clone()).collect();
        declared.sink = Some((component.name().to_owned(), names));
    }
    Ok(declared)
}

/// Where `check` keeps the components it compiles: the cache the plugin reads
/// (`<store_dir>/components`) when store_dir is this user's (created, with
/// `--precompile`, when missing), else the command's own.
fn component_cache(config: &Config, precompile: bool) -> PathBuf {
    let store_dir = &config.objects.store_dir;
    if precompile && !store_dir.exists() {
        let _ = rustsink::store::private::create_dir(store_dir);
    }
    match rustsink::store::private::check_folder(store_dir) {
        Ok(()) => rustsink::pipeline::component_cache_dir(store_dir),
        Err(_) => component::cache_dir(),
    }
}

/// The options the components of an output declare: by filter position, and the sink's,
/// each with the component's name.
struct DeclaredOptions {
    filters: std::collections::BTreeMap<usize, (String, Vec<String>)>,
    sink: Option<(String, Vec<String>)>,
}

impl DeclaredOptions {
    /// A warning for every `filter.N.<option>` and `sink.<option>` key that no component
    /// takes: a filter N that is not there, or an option its component does not declare.
    fn unknown_options<'a>(&self, keys: impl Iterator<Item = &'a str>) -> Vec<String> {
        keys.filter_map(|key| self.unknown_option(key)).collect()
    }

    fn unknown_option(&self, key: &str) -> Option<String> {
        let lower = key.to_ascii_lowercase();
        let (component, option, host) = match lower.strip_prefix("filter.") {
            Some(rest) => {
                let (position, option) = rest.split_once('.')?;
                let position = position.parse::<usize>().ok()?;
                let Some(filter) = self.filters.get(&position) else {
                    return Some(format!("'{key}' is ignored: there is no filter.{position}"));
                };
                (
                    filter,
                    option,
                    host_options("filter.N.", keys::FILTER_OPTION),
                )
            }
            None => {
                let option = lower.strip_prefix("sink.")?;
                let Some(sink) = &self.sink else {
                    return Some(format!("'{key}' is ignored: the sink is not a component"));
                };
                (sink, option, host_options("sink.", keys::SINK_OPTION))
            }
        };
        let (name, declared) = component;
        if host.contains(&option) || declared.iter().any(|declared| declared == option) {
            return None;
        }
        let known = declared.iter().map(String::as_str).chain(host);
        let hint = closest(option, known)
            .map_or(String::new(), |close| format!("; did you mean '{close}'?"));
        Some(format!(
            "'{key}' is ignored: component '{name}' has no option '{option}'{hint}"
        ))
    }
}

/// The options of a component that the host reads itself (`on_error`, `timeout`, ...), as
/// the key table names them under `prefix` beside the component's own (`generic`).
fn host_options(prefix: &str, generic: &str) -> Vec<&'static str> {
    keys::ALL
        .iter()
        .filter(|key| key.name != generic)
        .filter_map(|key| key.name.strip_prefix(prefix))
        .collect()
}

/// Prints the grants of every `sink s3` output of a file as a JSON array.
fn policy(path: &std::path::Path) -> Result<bool> {
    let sections = fluent_conf::read(path)?;
    let mut outputs = Vec::new();
    for section in fluent_conf::outputs_named(&sections, PLUGIN_NAME) {
        let config = Config::from_lookup(|key| section.entries.get(key).map(str::to_owned))
            .with_context(|| format!("{}: the configuration is not valid", section.origin))?;
        match &config.sink {
            SinkConfig::S3(s3) => outputs.push(serde_json::json!({
                "output": section.origin.to_string(),
                "bucket": s3.bucket,
                "grants": policy::grants(s3, &config.objects),
            })),
            _ => eprintln!("{}: not 'sink s3'; it needs no IAM policy", section.origin),
        }
    }
    if outputs.is_empty() {
        eprintln!(
            "{}: no [OUTPUT] section of {PLUGIN_NAME} with 'sink s3'",
            path.display()
        );
        return Ok(false);
    }
    println!("{}", serde_json::to_string_pretty(&outputs)?);
    Ok(true)
}

/// Asks every rustsink output of a file to try its quarantined objects again.
fn redrive(path: &std::path::Path) -> Result<bool> {
    let sections = fluent_conf::read(path)?;
    let mut count = 0;
    for (number, section) in fluent_conf::outputs_named(&sections, PLUGIN_NAME).enumerate() {
        count += 1;
        let config = Config::from_lookup(|key| section.entries.get(key).map(str::to_owned))
            .with_context(|| format!("{}: the configuration is not valid", section.origin))?;
        if let SinkConfig::Component(_) = config.sink {
            println!("{}: a sink component keeps no objects", section.origin);
            continue;
        }
        // The instance's name, as Fluent Bit gives it.
        let instance = section
            .entries
            .get("alias")
            .map_or_else(|| format!("{PLUGIN_NAME}.{number}"), str::to_owned);
        let folder = rustsink::store::Store::folder(&config.objects.store_dir, &instance);
        let found = rustsink::store::Store::request_redrive(&folder)
            .with_context(|| format!("{}: store folder {}", section.origin, folder.display()))?;
        let when = if found.objects == 0 {
            "nothing to do"
        } else if found.running {
            "the running instance tries them again within a second"
        } else {
            "they are tried again when Fluent Bit starts"
        };
        println!(
            "{}: {} objects ({} bytes) in {}; {when}",
            section.origin,
            found.objects,
            found.bytes,
            folder.join("quarantine").display()
        );
    }
    if count == 0 {
        println!(
            "{}: no [OUTPUT] section with Name {PLUGIN_NAME}",
            path.display()
        );
    }
    Ok(count > 0)
}

/// The documented key closest to `key`, if it is a likely misspelling.
fn did_you_mean(key: &str) -> Option<&'static str> {
    closest(
        &key.to_ascii_lowercase(),
        keys::ALL.iter().map(|key| key.name),
    )
}

/// The candidate closest to `word`, if it is a likely misspelling of it.
fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|candidate| (strsim::levenshtein(word, candidate), candidate))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_options_come_from_the_key_table() {
        let mut filter = host_options("filter.N.", keys::FILTER_OPTION);
        filter.sort_unstable();
        assert_eq!(filter, ["memory_limit", "on_error", "timeout"]);
        let mut sink = host_options("sink.", keys::SINK_OPTION);
        sink.sort_unstable();
        assert_eq!(sink, ["allowed_hosts", "memory_limit", "timeout"]);
    }

    #[test]
    fn misspelt_keys_get_a_suggestion() {
        assert_eq!(did_you_mean("pth"), Some("path"));
        assert_eq!(did_you_mean("json_date_fromat"), Some("json_date_format"));
        assert_eq!(did_you_mean("compression_level_of_doom"), None);
    }
}
