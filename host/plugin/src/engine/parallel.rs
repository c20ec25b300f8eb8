//! Running one job per item on a few threads, largest items first.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Calls `job` on every item, on up to `threads` threads. Items are taken largest first
/// (by `weight`), so that one big item does not start last. With one item or one thread,
/// everything runs on the caller's thread.
pub fn for_each<T: Send>(
    items: &mut [T],
    threads: usize,
    weight: impl Fn(&T) -> usize,
    job: impl Fn(&mut T) + Sync,
) {
    let busy: Vec<usize> = (0..items.len())
        .filter(|&i| weight(&items[i]) > 0)
        .collect();
    let threads = threads.min(busy.len());
    if threads <= 1 {
        busy.into_iter().for_each(|i| job(&mut items[i]));
        return;
    }
    let mut queue: Vec<&mut T> = items.iter_mut().filter(|item| weight(item) > 0).collect();
    queue.sort_by_key(|item| std::cmp::Reverse(weight(item)));
    let queue: Vec<Mutex<&mut T>> = queue.into_iter().map(Mutex::new).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while let Some(item) = queue.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let mut item = item
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    job(&mut item);
                }
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_with_weight_is_worked_once() {
        for threads in [1, 2, 8] {
            let mut items: Vec<(usize, usize)> = (0..50).map(|n| (n % 7, 0)).collect();
            for_each(&mut items, threads, |item| item.0, |item| item.1 += 1);
            for (weight, runs) in items {
                assert_eq!(runs, usize::from(weight > 0), "{threads} threads");
            }
        }
    }
}
