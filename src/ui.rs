//! What `ivsctl` shows while it works: a spinner per resource (on a terminal), one line per
//! resource with what changed and why, and a summary, or one JSON document with `--json`.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::error::AwsError;
use crate::stack::{Change, Mode};

/// One resource's line of a deploy or teardown.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub resource: String,
    #[serde(flatten)]
    pub change: Change,
}

/// What a step of a deploy or teardown returns: a change, and maybe a value later steps need.
pub trait Stepped {
    type Output;
    fn split(self) -> (Change, Self::Output);
}

impl Stepped for Change {
    type Output = ();
    fn split(self) -> (Change, ()) {
        (self, ())
    }
}

impl<T> Stepped for (Change, T) {
    type Output = T;
    fn split(self) -> (Change, T) {
        self
    }
}

pub struct Ui {
    json: bool,
    mode: Mode,
    outcomes: Mutex<Vec<Outcome>>,
}

impl Ui {
    pub fn new(json: bool, mode: Mode) -> Self {
        Self { json, mode, outcomes: Mutex::new(Vec::new()) }
    }

    /// A spinner on stderr; invisible with `--json` or when stderr is not a terminal.
    pub fn spinner(&self, message: impl Into<String>) -> ProgressBar {
        let bar = if self.json { ProgressBar::hidden() } else { ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()) };
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix} {msg} {pos}/{len}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(message.into());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    /// Runs one resource's step under a spinner and prints its line.
    pub async fn step<S: Stepped>(
        &self,
        resource: impl Into<String>,
        work: impl Future<Output = Result<S, AwsError>>,
    ) -> Result<S::Output, AwsError> {
        let resource = resource.into();
        let bar = self.spinner(resource.clone());
        bar.set_style(ProgressStyle::with_template("{spinner} {prefix}").unwrap_or_else(|_| ProgressStyle::default_spinner()));
        let result = work.await;
        bar.finish_and_clear();
        let (change, output) = result?.split();
        let outcome = Outcome { resource, change };
        if !self.json {
            println!("{}", self.line(&outcome));
        }
        self.outcomes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(outcome);
        Ok(output)
    }

    fn line(&self, outcome: &Outcome) -> String {
        let reasons = match &outcome.change {
            Change::Update(reasons) => format!(": {}", reasons.join("; ")),
            Change::Replace(reason) | Change::Defer(reason) | Change::Skip(reason) => format!(": {reason}"),
            _ => String::new(),
        };
        format!("  {:<10} {}{reasons}", outcome.change.verb(self.mode), outcome.resource)
    }

    pub fn outcomes(&self) -> Vec<Outcome> {
        self.outcomes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The closing summary: counts per kind of change, or the JSON document.
    pub fn finish(&self, command: &str, extra: serde_json::Value) {
        let outcomes = self.outcomes();
        if self.json {
            let mut document = serde_json::json!({ "command": command, "dry_run": self.mode == Mode::DryRun, "resources": outcomes });
            if let (Some(doc), serde_json::Value::Object(more)) = (document.as_object_mut(), extra) {
                doc.extend(more);
            }
            println!("{document:#}");
            return;
        }
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for outcome in &outcomes {
            let verb = outcome.change.verb(self.mode);
            match counts.iter_mut().find(|(v, _)| *v == verb) {
                Some((_, n)) => *n += 1,
                None => counts.push((verb, 1)),
            }
        }
        let summary: Vec<String> = counts.iter().map(|(verb, n)| format!("{n} {verb}")).collect();
        let tail = if self.mode == Mode::DryRun { " (dry run: nothing was written)" } else { "" };
        println!("{command}: {}{tail}", summary.join(", "));
    }
}
