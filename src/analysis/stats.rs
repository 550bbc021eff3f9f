//! Statistics of similarity matrices over seeds and levels (what `compare-schedules`
//! summarises): the cell-wise mean of matrices, each level against the same level, and the means
//! of the defined diagonal and off-diagonal cells. Means and sds of Dice live in `metrics`.

use super::similarity::SimilarityMatrix;

/// The cell-wise mean of matrices over the same levels (NaN where any is undefined).
pub fn mean_matrix<'a>(matrices: impl Iterator<Item = &'a SimilarityMatrix>) -> SimilarityMatrix {
    let matrices: Vec<&SimilarityMatrix> = matrices.collect();
    let first = matrices[0];
    let n = matrices.len() as f64;
    SimilarityMatrix {
        rows: first.rows.clone(),
        columns: first.columns.clone(),
        values: (0..first.values.len())
            .map(|r| {
                (0..first.values[r].len())
                    .map(|c| matrices.iter().map(|m| m.values[r][c]).sum::<f64>() / n)
                    .collect()
            })
            .collect(),
        slices: first.slices,
    }
}

/// Each level against the same level of the other model.
pub fn diagonal(matrix: &SimilarityMatrix) -> Vec<(String, f64)> {
    matrix
        .rows
        .iter()
        .enumerate()
        .map(|(i, layer)| (layer.clone(), matrix.values[i][i]))
        .collect()
}

/// Mean of a square matrix's defined off-diagonal cells (how alike different levels are);
/// levels without variance over the slices have no CKA and are left out.
pub fn off_diagonal_mean(matrix: &SimilarityMatrix) -> f64 {
    let n = matrix.values.len();
    finite_mean(
        (0..n)
            .flat_map(|r| (0..n).filter(move |&c| c != r).map(move |c| (r, c)))
            .map(|(r, c)| matrix.values[r][c]),
    )
}

/// Mean of the defined diagonal cells (each level against the same level of the other model).
pub fn diagonal_mean(matrix: &SimilarityMatrix) -> f64 {
    finite_mean((0..matrix.values.len()).map(|i| matrix.values[i][i]))
}

/// Mean of the finite values (NaN when there are none).
pub fn finite_mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, count) = values
        .filter(|v| v.is_finite())
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if count == 0 {
        f64::NAN
    } else {
        sum / count as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(values: Vec<Vec<f64>>) -> SimilarityMatrix {
        let names: Vec<String> = (0..values.len()).map(|i| format!("l{i}")).collect();
        SimilarityMatrix {
            rows: names.clone(),
            columns: names,
            values,
            slices: 4,
        }
    }

    #[test]
    fn matrix_means_leave_out_undefined_cells() {
        let a = matrix(vec![vec![1.0, 0.2], vec![f64::NAN, 0.8]]);
        let b = matrix(vec![vec![0.5, 0.4], vec![0.6, 0.6]]);
        let mean = mean_matrix([&a, &b].into_iter());
        let close = |x: f64, y: f64| (x - y).abs() < 1e-12;
        assert!(close(mean.values[0][0], 0.75) && close(mean.values[0][1], 0.3));
        assert!(mean.values[1][0].is_nan());
        assert_eq!(
            diagonal(&a),
            [("l0".to_string(), 1.0), ("l1".to_string(), 0.8)]
        );
        assert!(close(diagonal_mean(&a), 0.9));
        assert!(close(off_diagonal_mean(&a), 0.2));
        assert!(finite_mean([f64::NAN].into_iter()).is_nan());
    }
}
