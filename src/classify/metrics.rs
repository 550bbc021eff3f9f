//! Classification figures from logits: top-1 and top-5 accuracy, per-class recall, balanced
//! accuracy (mean recall over the classes present) and the confusion matrix.

use serde::Serialize;

/// What an evaluation reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    pub images: usize,
    /// Mean cross-entropy.
    pub loss: f64,
    pub top1: f64,
    pub top5: f64,
    /// Mean of the per-class recalls over the classes that occur (HAM10000's imbalance makes
    /// top-1 flatter the majority class).
    pub balanced_accuracy: f64,
    /// Recall per class; `None` for a class with no image.
    pub per_class_recall: Vec<Option<f64>>,
    /// `confusion[truth][prediction]`: image counts.
    pub confusion: Vec<Vec<u32>>,
}

/// Running totals over batches of logits.
#[derive(Debug, Clone)]
pub struct Tally {
    classes: usize,
    images: usize,
    loss_sum: f64,
    top5_hits: usize,
    confusion: Vec<Vec<u32>>,
}

impl Tally {
    pub fn new(classes: usize) -> Tally {
        Tally {
            classes,
            images: 0,
            loss_sum: 0.0,
            top5_hits: 0,
            confusion: vec![vec![0; classes]; classes],
        }
    }

    /// Adds a batch: `logits` row-major `[labels.len(), classes]`.
    pub fn add(&mut self, logits: &[f32], labels: &[u8]) {
        assert_eq!(
            logits.len(),
            labels.len() * self.classes,
            "one row per label"
        );
        for (row, &label) in logits.chunks_exact(self.classes).zip(labels) {
            let truth = usize::from(label);
            let score = row[truth];
            // Rank of the true class: how many classes score strictly higher (ties favour it).
            let higher = row.iter().filter(|&&s| s > score).count();
            if higher < 5 {
                self.top5_hits += 1;
            }
            let predicted = argmax(row);
            self.confusion[truth][predicted] += 1;
            self.loss_sum += cross_entropy(row, truth);
            self.images += 1;
        }
    }

    pub fn finish(self) -> Evaluation {
        let n = self.images.max(1) as f64;
        let correct: u32 = (0..self.classes).map(|c| self.confusion[c][c]).sum();
        let per_class_recall: Vec<Option<f64>> = self
            .confusion
            .iter()
            .enumerate()
            .map(|(c, row)| {
                let total: u32 = row.iter().sum();
                (total > 0).then(|| f64::from(row[c]) / f64::from(total))
            })
            .collect();
        let present: Vec<f64> = per_class_recall.iter().flatten().copied().collect();
        Evaluation {
            images: self.images,
            loss: self.loss_sum / n,
            top1: f64::from(correct) / n,
            top5: self.top5_hits as f64 / n,
            balanced_accuracy: present.iter().sum::<f64>() / present.len().max(1) as f64,
            per_class_recall,
            confusion: self.confusion,
        }
    }
}

/// Index of the largest value (the first of equals).
pub fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 { (i, v) } else { best }
        })
        .0
}

/// `-log softmax(row)[truth]`, computed stably.
fn cross_entropy(row: &[f32], truth: usize) -> f64 {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
    max + sum.ln() - row[truth] as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_of_a_small_hand_checked_batch() {
        // Three classes; truths 0, 0, 1, 2; predictions 0, 1, 1, 1.
        let logits = [
            3.0, 1.0, 0.0, //
            0.0, 2.0, 1.0, //
            0.0, 5.0, 1.0, //
            0.0, 2.0, 1.0,
        ];
        let mut tally = Tally::new(3);
        tally.add(&logits, &[0, 0, 1, 2]);
        let e = tally.finish();
        assert_eq!(e.top1, 0.5);
        assert_eq!(
            e.top5, 1.0,
            "three classes: the truth is always in the top five"
        );
        assert_eq!(e.per_class_recall, vec![Some(0.5), Some(1.0), Some(0.0)]);
        assert!((e.balanced_accuracy - 0.5).abs() < 1e-12);
        assert_eq!(
            e.confusion,
            vec![vec![1, 1, 0], vec![0, 1, 0], vec![0, 1, 0]]
        );
        // Uniform logits give ln(3) per image.
        let mut uniform = Tally::new(3);
        uniform.add(&[1.0; 3], &[2]);
        assert!((uniform.finish().loss - 3f64.ln()).abs() < 1e-9);
    }

    #[test]
    fn top5_counts_the_truth_among_the_five_highest() {
        let row: Vec<f32> = (0..10).map(|i| i as f32).collect(); // class 9 highest
        let mut tally = Tally::new(10);
        tally.add(&row, &[5]); // rank 5 (9, 8, 7, 6, 5): in
        tally.add(&row, &[4]); // rank 6: out
        let e = tally.finish();
        assert_eq!(e.top5, 0.5);
        assert_eq!(e.top1, 0.0);
        assert_eq!(e.per_class_recall[0], None, "absent classes have no recall");
    }
}
