//! Progress bars for hashing, uploads and downloads. The speed and the time left count only
//! the bytes moved in this run: a resumed download starts its bar at the bytes already on
//! disk, and counting those as if they had just arrived would show "197 GiB/s".

use std::time::{Duration, Instant};

use bytesize::ByteSize;
use indicatif::style::ProgressTracker;
use indicatif::{ProgressBar, ProgressState, ProgressStyle};

use super::units::human_duration;

/// A byte progress bar on stderr that starts at `start` bytes (those already there). indicatif
/// already hides it when stderr is not a terminal; `quiet` hides it always.
pub fn byte_progress(len: Option<u64>, start: u64, quiet: bool, message: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let (bar, template) = match len {
        Some(len) => (
            ProgressBar::new(len),
            "{msg:>11} [{wide_bar}] {bytes}/{total_bytes} {speed} ETA {time_left}",
        ),
        // Without a known length there is no bar or ETA to show, only how much arrived.
        None => (
            ProgressBar::new_spinner(),
            "{spinner} {msg:>11} {bytes} {speed}",
        ),
    };
    let style = ProgressStyle::with_template(template)
        .expect("valid template")
        .progress_chars("=> ")
        .with_key("speed", ThisRun::new(Show::Speed))
        .with_key("time_left", ThisRun::new(Show::TimeLeft));
    // The position is set before the first tick, so the trackers take it as this run's start.
    let bar = bar.with_position(start).with_style(style);
    // A steady tick keeps the speed and ETA moving while the network stalls.
    bar.enable_steady_tick(Duration::from_millis(200));
    bar.with_message(message.to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Show {
    Speed,
    TimeLeft,
}

/// Speed or time left, averaged over this run: from the position and time of the first tick
/// (or of a restart from a lower position, when the server sent the whole file again).
#[derive(Debug, Clone)]
struct ThisRun {
    show: Show,
    start: Option<(u64, Instant)>,
}

impl ThisRun {
    fn new(show: Show) -> Self {
        Self { show, start: None }
    }

    fn observe(&mut self, position: u64, now: Instant) {
        match self.start {
            Some((from, _)) if position >= from => {}
            _ => self.start = Some((position, now)),
        }
    }

    /// Bytes per second moved since the start; none until half a second has passed, when a
    /// rate would be mostly noise.
    fn rate(&self, position: u64, now: Instant) -> Option<f64> {
        let (from, at) = self.start?;
        let seconds = now.saturating_duration_since(at).as_secs_f64();
        (seconds >= 0.5 && position > from).then(|| (position - from) as f64 / seconds)
    }

    fn text(&self, position: u64, len: Option<u64>, now: Instant) -> String {
        let rate = self.rate(position, now);
        match (self.show, rate, len) {
            (Show::Speed, Some(rate), _) => format!("{}/s", ByteSize(rate as u64)),
            (Show::TimeLeft, Some(rate), Some(len)) => {
                let left = len.saturating_sub(position) as f64 / rate;
                human_duration(left.ceil() as u64)
            }
            _ => "-".to_owned(),
        }
    }
}

impl ProgressTracker for ThisRun {
    fn clone_box(&self) -> Box<dyn ProgressTracker> {
        Box::new(self.clone())
    }

    fn tick(&mut self, state: &ProgressState, now: Instant) {
        self.observe(state.pos(), now);
    }

    fn reset(&mut self, state: &ProgressState, now: Instant) {
        self.start = Some((state.pos(), now));
    }

    fn write(&self, state: &ProgressState, w: &mut dyn std::fmt::Write) {
        let _ = w.write_str(&self.text(state.pos(), state.len(), Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;

    #[test]
    fn a_resumed_download_counts_only_the_bytes_moved_in_this_run() {
        let t0 = Instant::now();
        let mut speed = ThisRun::new(Show::Speed);
        let mut left = ThisRun::new(Show::TimeLeft);
        // 100 GiB were on disk from an earlier run; 10 MiB arrive in 10 s.
        for tracker in [&mut speed, &mut left] {
            tracker.observe(100 * GIB, t0);
            tracker.observe(100 * GIB + 10 * MIB, t0 + Duration::from_secs(10));
        }
        let now = t0 + Duration::from_secs(10);
        let len = Some(100 * GIB + 70 * MIB);
        assert_eq!(speed.text(100 * GIB + 10 * MIB, len, now), "1.0 MiB/s");
        assert_eq!(left.text(100 * GIB + 10 * MIB, len, now), "1m");
    }

    #[test]
    fn starting_over_from_byte_zero_restarts_the_count() {
        let t0 = Instant::now();
        let mut speed = ThisRun::new(Show::Speed);
        speed.observe(50 * MIB, t0);
        speed.observe(0, t0 + Duration::from_secs(5));
        let now = t0 + Duration::from_secs(7);
        assert_eq!(speed.text(2 * MIB, None, now), "1.0 MiB/s");
    }

    #[test]
    fn no_rate_is_shown_before_anything_moved() {
        let t0 = Instant::now();
        let mut left = ThisRun::new(Show::TimeLeft);
        assert_eq!(left.text(0, Some(10), t0), "-");
        left.observe(5, t0);
        assert_eq!(left.text(5, Some(10), t0 + Duration::from_secs(3)), "-");
        assert_eq!(left.text(6, Some(10), t0 + Duration::from_millis(100)), "-");
    }
}
