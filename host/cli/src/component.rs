//! `rustsink describe` and `rustsink filter`: for authors of components, what a
//! component declares, and what a filter makes of a file of records.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use rmpv::Value;

use rustsink::config::{ComponentLimits, DateFormat, JsonLines};
use rustsink::event::chunk::{ChunkWriter, EventFormat, TimeForm};
use rustsink::event::{EventTime, events};
use rustsink::log::{Logger, Threshold};
use rustsink::object::encode::write_json_line;
use rustsink::wasm::chain;
use rustsink::wasm::filter::FilterComponent;
use rustsink::wasm::sandbox::{self, World};

/// The arguments of `rustsink filter`.
#[derive(Debug, clap::Args)]
pub struct FilterArgs {
    /// The component (`.wasm`).
    component: PathBuf,
    /// An option of the component, `name=value`; repeat for more.
    #[arg(short = 'o', long = "option", value_name = "NAME=VALUE")]
    options: Vec<String>,
    /// The records: JSON objects one per line (other lines become `{"log": line}`).
    /// Default: standard input.
    #[arg(short, long)]
    input: Option<PathBuf>,
    /// The memory cap of the instance.
    #[arg(long, default_value = "64M")]
    memory_limit: String,
    /// The deadline of the batch.
    #[arg(long, default_value = "10s")]
    timeout: String,
    /// The tag of the records, as the filter sees it.
    #[arg(long, default_value = "rustsink.filter")]
    tag: String,
}

/// Prints what a component says of itself and the options it accepts.
pub fn describe(path: &std::path::Path) -> Result<bool> {
    let (world, version, description) = sandbox::describe(path, &cache_dir(), &logger())?;
    let (kind, prefix) = match world {
        World::Filter => ("filter", "filter.N"),
        World::Sink => ("sink", "sink"),
    };
    println!("{} ({kind}): {}", description.name, description.summary);
    println!("built for {version}");
    if description.options.is_empty() {
        println!("no options");
    }
    for option in &description.options {
        let default = match (&option.default_value, option.required) {
            (_, true) => "required".to_owned(),
            (Some(value), false) => format!("default '{value}'"),
            (None, false) => "optional".to_owned(),
        };
        println!(
            "  {prefix}.{} ({default}): {}",
            option.name, option.description
        );
    }
    Ok(true)
}

/// Runs the records of a file through a component as one batch and prints what comes
/// out, one JSON object per line.
pub fn filter(args: &FilterArgs) -> Result<bool> {
    let memory = rustsink::config::parse::size(&args.memory_limit).map_err(|expected| {
        anyhow::anyhow!(
            "--memory-limit '{}': expected {expected}",
            args.memory_limit
        )
    })?;
    let timeout = rustsink::config::parse::duration(&args.timeout)
        .map_err(|expected| anyhow::anyhow!("--timeout '{}': expected {expected}", args.timeout))?;
    let options = args
        .options
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) => Ok((name.trim().to_owned(), value.to_owned())),
            None => bail!("--option '{pair}': expected name=value"),
        })
        .collect::<Result<Vec<_>>>()?;
    let limits = ComponentLimits {
        memory: memory as usize,
        timeout,
    };
    let mut component = FilterComponent::load(&args.component, &cache_dir(), limits, &logger())?;
    component.configure(&|name: &str| {
        options
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    })?;
    let component = Arc::new(component);
    let mut instance = component
        .start()
        .map_err(|failure| anyhow::anyhow!("component '{}': {failure}", component.name()))?;
    let batch = read_records(args.input.as_deref())?;
    let output = chain::run_once(&mut instance, &args.tag, &batch)
        .map_err(|failure| anyhow::anyhow!("component '{}': {failure}", component.name()))?;
    let format = JsonLines {
        date_key: None,
        date_format: DateFormat::Iso8601,
        log_key: None,
    };
    let mut out = Vec::new();
    for event in events(&output) {
        let event = event.context("the component returned a malformed batch")?;
        write_json_line(&mut out, &event, &format);
    }
    std::io::stdout().write_all(&out)?;
    Ok(true)
}

/// Where the command keeps compiled components: a folder of this user's under the
/// temporary folder, which anyone may write in (the cache checks the folder is its own).
pub(super) fn cache_dir() -> PathBuf {
    let uid = rustix::process::geteuid().as_raw();
    std::env::temp_dir().join(format!("rustsink-components-{uid}"))
}

fn logger() -> Logger {
    Logger::stderr("component", Threshold::from_env())
}

/// The records of a file (or stdin) as one batch.
fn read_records(input: Option<&std::path::Path>) -> Result<Vec<u8>> {
    let reader: Box<dyn BufRead> = match input {
        Some(path) => Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let time = EventTime::new(now.as_secs() as i64, now.subsec_nanos());
    let mut writer = ChunkWriter::new();
    for line in reader.lines() {
        let line = line?;
        let body = match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(object @ serde_json::Value::Object(_)) => rmpv::ext::to_value(&object)
                .with_context(|| format!("converting '{line}' to msgpack"))?,
            _ => Value::Map(vec![(Value::from("log"), Value::from(line))]),
        };
        writer.push(EventFormat::V2, TimeForm::EventTime, time, None, body);
    }
    Ok(writer.finish())
}
