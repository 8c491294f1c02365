//! What `conductor publish` shows while it works: progress bars on a terminal (one per file, one for the load),
//! plain lines when stderr is not a terminal, or with `--json` one JSON object per line on stdout for pipelines.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

/// Where progress goes.
#[derive(Debug)]
pub struct Report {
    json: bool,
    bars: MultiProgress,
    terminal: bool,
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

impl Report {
    pub fn new(json: bool) -> Self {
        let terminal = !json && std::io::stderr().is_terminal();
        let target = if terminal {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self {
            json,
            bars: MultiProgress::with_draw_target(target),
            terminal,
        }
    }

    /// One step's event: a JSON line with `--json`, else a line for people.
    pub fn event(&self, event: &str, fields: Value, line: impl FnOnce() -> String) {
        if self.json {
            let mut object = json!({"event": event});
            if let (Some(object), Value::Object(fields)) = (object.as_object_mut(), fields) {
                object.extend(fields);
            }
            super::super::print_line(&object.to_string());
        } else {
            let line = line();
            // Above the bars on a terminal, so they keep their place.
            if self.terminal {
                self.bars.suspend(|| eprintln!("{line}"));
            } else {
                eprintln!("{line}");
            }
        }
    }

    /// A bar for uploading one file of `length` bytes.
    pub fn file(&self, name: &str, length: u64) -> ProgressBar {
        let bar = self.bars.add(ProgressBar::new(length));
        bar.set_style(style(
            "  {msg:24!} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} eta {eta}",
        ));
        bar.set_message(name.to_owned());
        bar
    }

    /// The load's bar: a spinner with the status until the server estimates the rows in all (see
    /// [`Self::counted`]).
    pub fn load(&self) -> ProgressBar {
        let bar = self.bars.add(ProgressBar::new(0));
        bar.set_style(style("  {spinner} {msg:22!} {pos:>10} rows"));
        bar.enable_steady_tick(std::time::Duration::from_millis(250));
        bar
    }

    /// The load's bar once the total is estimated: rows against it.
    pub fn counted(bar: &ProgressBar) {
        bar.set_style(style("  {msg:24!} [{bar:30}] {pos:>10}/{len:<10} rows eta {eta}"));
    }

    pub fn is_json(&self) -> bool {
        self.json
    }
}
