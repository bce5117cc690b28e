//! The login target, judged in rounds: windows of logins alternate with measurements of the
//! argon2 references, in the order R L, L R, R L, L R... This host's speed drifts, by a third
//! within minutes at times (BENCHMARKS.md, sessions 13 to 15); a reference measured once before
//! and once after a long login phase could miss the drift in between, while windows this short
//! and this interleaved see it on both sides alike, and a drift that runs one way cancels out.
use crate::ceiling::{self, ArgonRate};
use crate::load::Pace;
use crate::scenarios::{Runner, Spec};
use serde::Serialize;
use std::time::Duration;

/// What the rounds measured, and the ratio the target is judged on.
#[derive(Clone, Debug, Serialize)]
pub struct LoginRounds {
    /// The reference that was faster over all the rounds together.
    pub reference: String,
    /// Threads the references hashed on (one per core).
    pub threads: usize,
    /// Logins/s in each round's window.
    pub logins: Vec<f64>,
    /// That reference's verifications/s in each round.
    pub references: Vec<f64>,
    /// Measured seconds of each login window and of each reference.
    pub window_s: f64,
    /// Logins that failed in the windows.
    pub errors: u64,
}

fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() { 0.0 } else { xs.iter().sum::<f64>() / xs.len() as f64 }
}

impl LoginRounds {
    /// Pairs each round's logins with its two references, and keeps the reference that was
    /// faster over all the rounds (the faster one each round would favour whichever reference
    /// was lucky in a round, a bias against the logins). `errors`: logins that failed.
    pub fn from_rounds(
        logins: Vec<f64>,
        references: Vec<[ArgonRate; 2]>,
        window: Duration,
        errors: u64,
    ) -> LoginRounds {
        let total = |i: usize| references.iter().map(|r| r[i].per_second).sum::<f64>();
        let faster = usize::from(total(1) > total(0));
        let first = references.first().map(|r| &r[faster]);
        LoginRounds {
            reference: first.map(|r| r.name.clone()).unwrap_or_default(),
            threads: first.map_or(0, |r| r.threads),
            logins,
            references: references.iter().map(|r| r[faster].per_second).collect(),
            window_s: window.as_secs_f64(),
            errors,
        }
    }

    pub fn logins_per_second(&self) -> f64 {
        mean(&self.logins)
    }

    pub fn reference_per_second(&self) -> f64 {
        mean(&self.references)
    }

    /// Logins over the reference, both means; none without a reference.
    pub fn ratio(&self) -> Option<f64> {
        let reference = self.reference_per_second();
        (reference > 0.0).then(|| self.logins_per_second() / reference)
    }
}

/// Runs `rounds` login windows of `window` (after `warmup`) on `spec`'s connections, each next
/// to a measurement of both argon2 references for `window` each, on `threads` threads.
pub async fn judge(
    runner: &Runner,
    spec: Spec,
    rounds: usize,
    warmup: Duration,
    window: Duration,
    threads: usize,
) -> anyhow::Result<LoginRounds> {
    let mut workers = runner.open(spec).await?;
    let (mut logins, mut references, mut errors) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds), 0);
    for round in 0..rounds {
        let reference_first = round % 2 == 0;
        if reference_first {
            references.push(reference(threads, window).await?);
        }
        let (back, phase) = runner.window(workers, Pace::Closed, warmup, window).await;
        workers = back;
        // Failed logins count against the figure (only successes make `rps`), not the run.
        errors += phase.errors;
        logins.push(phase.rps);
        if !reference_first {
            references.push(reference(threads, window).await?);
        }
    }
    Ok(LoginRounds::from_rounds(logins, references, window, errors))
}

async fn reference(threads: usize, window: Duration) -> anyhow::Result<[ArgonRate; 2]> {
    Ok(tokio::task::spawn_blocking(move || ceiling::argon2_references(threads, window, b"warden-bench-salt")).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(name: &str, per_second: f64) -> ArgonRate {
        ArgonRate { name: name.into(), threads: 2, per_second, ms_each: 0.0, faults_each: 0.0, other_cores: 0.0 }
    }

    #[test]
    fn the_reference_faster_over_all_rounds_is_kept_in_every_round() {
        // "kept" wins one round of three, "wiped" the other two, but "kept" is faster overall.
        let rounds = vec![
            [rate("wiped", 300.0), rate("kept", 400.0)],
            [rate("wiped", 310.0), rate("kept", 305.0)],
            [rate("wiped", 320.0), rate("kept", 315.0)],
        ];
        let judged = LoginRounds::from_rounds(vec![270.0, 300.0, 330.0], rounds, Duration::from_secs(2), 0);
        assert_eq!(judged.reference, "kept");
        assert_eq!(judged.references, vec![400.0, 305.0, 315.0]);
        assert_eq!(judged.logins_per_second(), 300.0);
        assert!((judged.reference_per_second() - 340.0).abs() < 1e-9);
        assert_eq!((judged.threads, judged.window_s), (2, 2.0));
    }

    #[test]
    fn no_rounds_measure_nothing() {
        let judged = LoginRounds::from_rounds(Vec::new(), Vec::new(), Duration::from_secs(1), 0);
        assert_eq!((judged.logins_per_second(), judged.reference_per_second()), (0.0, 0.0));
    }
}
