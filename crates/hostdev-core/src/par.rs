//! Reading many parents' sysfs files at once: a large host's offer reads 16
//! GPUs' 32 types and facts, each read a round trip to the kernel (or the
//! simulator's FUSE server) that leaves the CPU idle while it waits.
//!
//! Owns: spreading independent reads over a few threads, answers in order.
//! Must not: write anything — what it runs must not depend on each other.

/// The most threads one call uses.
const THREADS: usize = 4;

/// Fewer items than this are read on the calling thread.
const ALONE: usize = 4;

/// `f` of every item, in order, on up to [`THREADS`] threads. A thread the
/// system will not give is done on the calling thread instead; a panic in
/// `f` is the caller's.
pub(crate) fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if items.len() < ALONE {
        return items.iter().map(&f).collect();
    }
    let per = items.len().div_ceil(THREADS);
    std::thread::scope(|s| {
        let f = &f;
        let parts: Vec<_> = items
            .chunks(per)
            .map(|c| {
                std::thread::Builder::new()
                    .name("hostdev-read".into())
                    .spawn_scoped(s, move || c.iter().map(f).collect::<Vec<R>>())
                    .map_err(|_| c)
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|p| match p {
                Ok(h) => h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)),
                Err(c) => c.iter().map(f).collect(),
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::map;

    #[test]
    fn answers_come_in_order_for_any_number_of_items() {
        for n in [0usize, 1, 3, 4, 5, 16, 17, 100] {
            let items: Vec<usize> = (0..n).collect();
            assert_eq!(
                map(&items, |i| i * 2),
                (0..n).map(|i| i * 2).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    #[should_panic(expected = "item 7")]
    fn a_panic_is_the_callers() {
        let items: Vec<usize> = (0..16).collect();
        map(&items, |i| {
            assert!(*i != 7, "item 7");
            *i
        });
    }
}
