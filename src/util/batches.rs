//! Epoch batching: the order in which a training or evaluation pass visits its samples, in
//! batches (seeded shuffles through `util::rng`).

use super::rng::SplitMix64;

/// Batches of sample indices for one epoch: shuffled with `seed` when `shuffle`, the last batch
/// possibly smaller.
pub fn epoch_batches(len: usize, batch_size: usize, shuffle: bool, seed: u64) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..len).collect();
    if shuffle {
        let mut rng = SplitMix64::new(seed);
        for i in (1..len).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
    }
    order
        .chunks(batch_size.max(1))
        .map(|c| c.to_vec())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cover_every_sample_once() {
        let batches = epoch_batches(10, 4, true, 3);
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![4, 4, 2]
        );
        let mut all: Vec<usize> = batches.concat();
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(batches, epoch_batches(10, 4, true, 3), "seeded");
        assert_ne!(batches, epoch_batches(10, 4, true, 4));
    }
}
