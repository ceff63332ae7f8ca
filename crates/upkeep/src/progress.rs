//! Progress bars on stderr, only when it is a terminal. Libraries report events through
//! `upkeep_core::Progress`; this is the one place that turns them into bars.

use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use upkeep_core::{NoProgress, Progress, ProgressEvent};

pub struct Bar {
    bar: ProgressBar,
}

impl Progress for Bar {
    fn event(&self, event: ProgressEvent) {
        match event {
            ProgressEvent::Planned { estimated_rows, .. } => {
                if estimated_rows > 0 {
                    self.bar.set_length(estimated_rows);
                    self.bar.set_style(
                        ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {human_pos}/~{human_len} rows {per_sec} {eta}")
                            .unwrap_or_else(|_| ProgressStyle::default_bar())
                            .progress_chars("=> "),
                    );
                }
            }
            ProgressEvent::Rows { table, rows, .. } => {
                self.bar.set_message(table.to_string());
                self.bar.inc(rows);
            }
            ProgressEvent::TableDone { .. } => {}
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// A bar when `show`, else nothing.
pub fn reporter(show: bool) -> Arc<dyn Progress> {
    if !show {
        return Arc::new(NoProgress);
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {human_pos} rows {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    Arc::new(Bar { bar })
}
