//! What every channel pruner (segmentation and classifier alike) shares: which channels to keep
//! by score, and slicing a row-major host tensor down to chosen indices along one axis.

/// The `keep` highest-scoring indices of `scores`, in ascending index order; ties go to the
/// lower index, so the choice is deterministic.
pub fn top_channels(scores: &[f32], keep: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut kept = order[..keep.min(scores.len())].to_vec();
    kept.sort_unstable();
    kept
}

/// Keeps `indices` along `axis` of a row-major tensor of `shape`; returns the values and shape.
pub fn slice_axis<T: Copy>(
    values: &[T],
    shape: &[usize],
    axis: usize,
    indices: &[usize],
) -> (Vec<T>, Vec<usize>) {
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let mut out = Vec::with_capacity(outer * indices.len() * inner);
    for o in 0..outer {
        for &i in indices {
            let start = (o * shape[axis] + i) * inner;
            out.extend_from_slice(&values[start..start + inner]);
        }
    }
    let mut new_shape = shape.to_vec();
    new_shape[axis] = indices.len();
    (out, new_shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_channels_come_back_in_index_order_with_ties_to_the_lower_index() {
        assert_eq!(top_channels(&[0.1, 0.9, 0.5, 0.7], 2), vec![1, 3]);
        assert_eq!(top_channels(&[1.0, 2.0, 2.0, 1.0], 1), vec![1]);
        assert_eq!(top_channels(&[1.0; 3], 5), vec![0, 1, 2]);
    }

    #[test]
    fn slicing_keeps_the_chosen_indices_of_any_axis() {
        // [2, 3]: rows 0..3 and 3..6.
        let values = [0, 1, 2, 3, 4, 5];
        assert_eq!(
            slice_axis(&values, &[2, 3], 1, &[0, 2]),
            (vec![0, 2, 3, 5], vec![2, 2])
        );
        assert_eq!(
            slice_axis(&values, &[2, 3], 0, &[1]),
            (vec![3, 4, 5], vec![1, 3])
        );
        assert_eq!(
            slice_axis(&[true, false], &[2], 0, &[1]),
            (vec![false], vec![1])
        );
    }
}
