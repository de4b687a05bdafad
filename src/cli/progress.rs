//! Progress on long operations (`fhe keygen`, `keys rewrap`, `audit verify`), on stderr
//! through indicatif.
//!
//! Drawn only when stderr is a terminal: scripts, pipes and tests see exactly the output
//! they saw before. `PRIVGATE_PROGRESS=always` draws it anyway, as plain lines (no cursor
//! movement), for logs of long runs and for tests; `PRIVGATE_PROGRESS=never` hides it on a
//! terminal too.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
use std::time::Duration;

/// The environment variable that forces progress on (`always`) or off (`never`).
pub(crate) const PROGRESS_ENV: &str = "PRIVGATE_PROGRESS";

/// How often a spinner's elapsed time is redrawn: a tenth of a second reads as live.
const TICK: Duration = Duration::from_millis(100);

/// Redraws per second when drawn as lines: two keep a log of a long run short.
const LINES_PER_SECOND: u8 = 2;

/// A spinner with `message` and the elapsed time, for work of unknown length, drawn from
/// now on; call `finish_and_clear` when the work is done.
pub(crate) fn spinner(message: impl Into<String>) -> ProgressBar {
    let spinner = idle_spinner(message);
    start(&spinner);
    spinner
}

/// A spinner not drawn until [`start`]ed (`privgate query` starts it only once a query has
/// taken long enough for one to be legible).
pub(crate) fn idle_spinner(message: impl Into<String>) -> ProgressBar {
    ProgressBar::with_draw_target(None, target())
        .with_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        )
        .with_message(message.into())
}

/// Starts drawing a spinner, redrawn every tick.
pub(crate) fn start(spinner: &ProgressBar) {
    spinner.enable_steady_tick(TICK);
}

/// A bar over `total` bytes with `message`, the bytes done and the time left.
pub(crate) fn bytes(total: u64, message: impl Into<String>) -> ProgressBar {
    ProgressBar::with_draw_target(Some(total), target())
        .with_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} ({eta} left)",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        )
        .with_message(message.into())
}

fn target() -> ProgressDrawTarget {
    match std::env::var(PROGRESS_ENV).as_deref() {
        Ok("always") => ProgressDrawTarget::term_like_with_hz(Box::new(Lines), LINES_PER_SECOND),
        Ok("never") => ProgressDrawTarget::hidden(),
        // Hidden by indicatif itself when stderr is not a terminal.
        _ => ProgressDrawTarget::stderr(),
    }
}

/// Progress as plain lines on stderr: each redraw one line, no cursor movement.
#[derive(Debug)]
struct Lines;

impl TermLike for Lines {
    fn width(&self) -> u16 {
        100
    }
    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        eprintln!("{s}");
        Ok(())
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        if !s.is_empty() {
            eprintln!("{s}");
        }
        Ok(())
    }
    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
}
