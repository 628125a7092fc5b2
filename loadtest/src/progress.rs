//! A progress bar on the terminal while a scenario waits for something that takes long
//! (sockets joining, a phase of traffic); drawn on stderr only when it is a terminal, so
//! logs and CI output stay clean.

use indicatif::{ProgressBar, ProgressStyle};
use std::time::Duration;

/// A bar counting `len` things (`what`: "joined", …).
pub fn count(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("  {msg:<24} [{bar:32}] {pos}/{len} ({elapsed})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// A bar for a phase of `seconds`, advanced by [`tick`] from the phase's own loop.
pub fn phase(seconds: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(seconds.max(1) * 10);
    if let Ok(style) = ProgressStyle::with_template("  {msg:<24} [{bar:32}] {elapsed}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// Moves a [`phase`] bar to `elapsed` into the phase.
pub fn tick(bar: &ProgressBar, elapsed: Duration) {
    bar.set_position((elapsed.as_millis() / 100) as u64);
}
