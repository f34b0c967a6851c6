//! The one bounded poll: wait for something the kernel does asynchronously
//! (a device's driver binding, a PF's driver loading, VFs being set up), with
//! a deadline and a backoff, never a fixed sleep.

use std::time::{Duration, Instant};

/// Polls `check` until it returns `Some`, or until `wait` has passed; the
/// pause between checks starts at `first` and doubles up to `max`. Returns
/// the last answer: `Err(last)` when time ran out.
pub fn until<T, L>(
    wait: Duration,
    first: Duration,
    max: Duration,
    mut check: impl FnMut() -> Result<T, L>,
) -> Result<T, L> {
    let deadline = Instant::now() + wait;
    let mut pause = first;
    loop {
        match check() {
            Ok(v) => return Ok(v),
            Err(last) if Instant::now() >= deadline => return Err(last),
            Err(_) => {}
        }
        std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_up_with_the_last_answer_and_returns_as_soon_as_ready() {
        let mut n = 0;
        let r: Result<(), u32> = until(
            Duration::ZERO,
            Duration::from_millis(1),
            Duration::from_millis(1),
            || {
                n += 1;
                Err(n)
            },
        );
        assert_eq!(r, Err(1), "a zero wait checks once");
        let mut n = 0;
        let r = until(
            Duration::from_secs(5),
            Duration::from_millis(1),
            Duration::from_millis(2),
            || {
                n += 1;
                if n == 3 {
                    Ok(n)
                } else {
                    Err(n)
                }
            },
        );
        assert_eq!(r, Ok(3));
    }
}
