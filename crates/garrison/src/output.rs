//! Printing results as a table for people or as JSON for scripts (`--output json`).

use clap::ValueEnum;
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use serde_json::Value;

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
}

/// Prints `items` (JSON objects) as a table with `columns`, or as a JSON array.
pub fn print_list(format: Format, items: &[Value], columns: &[&str]) {
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(items).unwrap_or_default()
        ),
        Format::Table => {
            if items.is_empty() {
                println!("(none)");
                return;
            }
            let mut table = Table::new();
            table
                .load_preset(UTF8_BORDERS_ONLY)
                .set_header(columns.iter().map(|c| c.to_uppercase()));
            for item in items {
                table.add_row(columns.iter().map(|c| cell(item.get(*c))));
            }
            println!("{table}");
        }
    }
}

/// Prints one object as `key: value` lines, or as JSON.
pub fn print_object(format: Format, item: &Value) {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(item).unwrap_or_default()),
        Format::Table => {
            if let Some(map) = item.as_object() {
                let width = map.keys().map(String::len).max().unwrap_or(0);
                for (k, v) in map {
                    println!("{k:>width$}: {}", cell(Some(v)));
                }
            }
        }
    }
}

fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| cell(Some(v)))
            .collect::<Vec<_>>()
            .join(", "),
        Some(other) => other.to_string(),
    }
}

/// A progress bar counting bytes, drawn on standard error when it is a terminal.
pub fn bytes_progress(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{prefix} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(what.to_owned());
    bar
}
