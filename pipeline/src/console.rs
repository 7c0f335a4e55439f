//! The terminal view of a run, fed by the event stream: a progress bar per running node
//! (rate and ETA) on a terminal, plain log lines otherwise.

use crate::events::{Event, EventRecord};
use crate::progress::Progress;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleMode {
    /// Live bars (stderr is a terminal).
    Bars,
    /// One line per event, progress every ten seconds (logs, CI).
    Lines,
    /// Failures only.
    Quiet,
}

impl ConsoleMode {
    /// Bars on a terminal, lines otherwise.
    pub fn detect() -> Self {
        use std::io::IsTerminal;
        if std::io::stderr().is_terminal() {
            ConsoleMode::Bars
        } else {
            ConsoleMode::Lines
        }
    }
}

pub struct Console {
    mode: ConsoleMode,
    multi: MultiProgress,
    bars: Mutex<BTreeMap<String, ProgressBar>>,
    last_lines: Mutex<BTreeMap<String, Instant>>,
    started: Instant,
}

impl Console {
    pub fn new(mode: ConsoleMode) -> Arc<Console> {
        let multi = if mode == ConsoleMode::Bars {
            MultiProgress::with_draw_target(ProgressDrawTarget::stderr())
        } else {
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
        };
        Arc::new(Console {
            mode,
            multi,
            bars: Mutex::default(),
            last_lines: Mutex::default(),
            started: Instant::now(),
        })
    }

    /// The event listener to hand to the run's sink.
    pub fn listener(self: &Arc<Self>) -> Arc<dyn Fn(&EventRecord) + Send + Sync> {
        let me = self.clone();
        Arc::new(move |r: &EventRecord| me.on_event(&r.event))
    }

    /// Print a line without tearing the bars.
    pub fn line(&self, text: &str) {
        match self.mode {
            ConsoleMode::Bars => {
                let _ = self.multi.println(text);
            }
            _ => eprintln!("{text}"),
        }
    }

    fn stamp(&self) -> String {
        let s = self.started.elapsed().as_secs();
        format!("[{:02}:{:02}]", s / 60, s % 60)
    }

    fn on_event(&self, event: &Event) {
        let quiet = self.mode == ConsoleMode::Quiet;
        let text = match event {
            Event::NodeStarted { node, stage, .. } => {
                if self.mode == ConsoleMode::Bars {
                    let bar = self.multi.add(ProgressBar::new_spinner());
                    bar.set_style(spinner_style());
                    bar.set_prefix(node.clone());
                    bar.enable_steady_tick(Duration::from_millis(120));
                    self.bars
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(node.clone(), bar);
                    None
                } else {
                    Some(format!("{node}: started ({stage})"))
                }
            }
            Event::NodeCached { node, digest, .. } => {
                Some(format!("{node}: fresh, cached {}", digest.short()))
            }
            Event::NodeFinished {
                node,
                digest,
                duration_ms,
                rows,
                unchanged,
                ..
            } => {
                self.remove_bar(node);
                let rows = rows.map(|r| format!(", {r} rows")).unwrap_or_default();
                let same = if *unchanged {
                    " (same content as before: downstream stays fresh)"
                } else {
                    ""
                };
                Some(format!(
                    "{node}: done in {} → {}{rows}{same}",
                    fmt_ms(*duration_ms),
                    digest.short()
                ))
            }
            Event::NodeFailed { node, error, .. } => {
                self.remove_bar(node);
                Some(format!("{node}: FAILED: {error}"))
            }
            Event::NodeSkipped { node, reason } => Some(format!("{node}: skipped ({reason})")),
            Event::NodeWaiting { node, reason } => Some(format!("{node}: {reason}")),
            Event::Message { node, text, .. } => Some(format!("{node}: {text}")),
            _ => None,
        };
        if let Some(text) = text {
            let failed = matches!(event, Event::NodeFailed { .. });
            if !quiet || failed {
                self.line(&format!("{} {text}", self.stamp()));
            }
        }
    }

    fn remove_bar(&self, node: &str) {
        if let Some(bar) = self
            .bars
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(node)
        {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }

    /// Refresh bars (or print a progress line every ten seconds per node).
    pub fn tick(&self, active: &[(String, Progress)]) {
        match self.mode {
            ConsoleMode::Bars => {
                let bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
                for (node, p) in active {
                    let Some(bar) = bars.get(node) else { continue };
                    let (done, total, unit) = p.snapshot();
                    if let Some(total) = total
                        && bar.length() != Some(total)
                    {
                        bar.set_length(total);
                        bar.set_style(bar_style());
                    }
                    bar.set_position(done);
                    bar.set_message(unit);
                }
            }
            ConsoleMode::Lines => {
                let mut last = self.last_lines.lock().unwrap_or_else(|p| p.into_inner());
                for (node, p) in active {
                    let due = last
                        .get(node)
                        .is_none_or(|t| t.elapsed() >= Duration::from_secs(10));
                    let (done, total, unit) = p.snapshot();
                    if due && done > 0 {
                        last.insert(node.clone(), Instant::now());
                        let total = total.map(|t| format!("/{t}")).unwrap_or_default();
                        self.line(&format!("{} {node}: {done}{total} {unit}", self.stamp()));
                    }
                }
            }
            ConsoleMode::Quiet => {}
        }
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix:24!} {elapsed:>4} {pos} {msg}")
        .expect("valid template")
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner} {prefix:24!} [{bar:30}] {pos}/{len} {msg} {per_sec} eta {eta}",
    )
    .expect("valid template")
    .progress_chars("=> ")
}

/// `1.2s`, `3m04s`, `15ms`.
pub fn fmt_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}
