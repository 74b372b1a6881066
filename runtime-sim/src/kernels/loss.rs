//! Softmax cross-entropy loss (mean over the batch), its gradient and accuracy.

use super::{check_len, invalid, Result};

/// Loss and softmax probabilities of a `batch × classes` logit matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct SoftmaxXent {
    /// Mean cross-entropy over the batch.
    pub loss: f32,
    /// Softmax probabilities (`batch × classes`).
    pub probs: Vec<f32>,
}

fn check(logits: &[f32], labels: &[u32], classes: usize) -> Result<()> {
    if classes == 0 {
        return Err(invalid("classes", "must be positive"));
    }
    check_len("logits", logits, labels.len() * classes)?;
    match labels.iter().find(|&&l| l as usize >= classes) {
        Some(l) => Err(invalid("label", format!("{l} is not below {classes} classes"))),
        None => Ok(()),
    }
}

/// Forward: numerically stable softmax and mean cross-entropy.
pub fn softmax_xent(logits: &[f32], labels: &[u32], classes: usize) -> Result<SoftmaxXent> {
    check(logits, labels, classes)?;
    let mut probs = vec![0.0f32; logits.len()];
    let mut total = 0.0f64;
    for ((row, p), &l) in logits
        .chunks_exact(classes)
        .zip(probs.chunks_exact_mut(classes))
        .zip(labels)
    {
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let sum: f32 = row.iter().map(|&v| (v - max).exp()).sum();
        p.iter_mut()
            .zip(row)
            .for_each(|(o, &v)| *o = (v - max).exp() / sum);
        total += f64::from(sum.ln() - (row[l as usize] - max));
    }
    let loss = if labels.is_empty() {
        0.0
    } else {
        (total / labels.len() as f64) as f32
    };
    Ok(SoftmaxXent { loss, probs })
}

/// Backward: `dlogits = (softmax - onehot) / N · loss_scale`.
pub fn softmax_xent_backward(
    probs: &[f32],
    labels: &[u32],
    classes: usize,
    loss_scale: f32,
) -> Result<Vec<f32>> {
    check(probs, labels, classes)?;
    let k = loss_scale / labels.len().max(1) as f32;
    let mut d: Vec<f32> = probs.iter().map(|&p| p * k).collect();
    for (row, &l) in d.chunks_exact_mut(classes).zip(labels) {
        row[l as usize] -= k;
    }
    Ok(d)
}

/// Number of rows whose arg-max (first index on ties) equals the label.
pub fn correct_count(logits: &[f32], labels: &[u32], classes: usize) -> Result<usize> {
    check(logits, labels, classes)?;
    Ok(logits
        .chunks_exact(classes)
        .zip(labels)
        .filter(|(row, &l)| {
            let best = (0..classes).fold(0, |b, i| if row[i] > row[b] { i } else { b });
            best == l as usize
        })
        .count())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{assert_close, sparse_vec, Rng};

    #[test]
    fn loss_gradient_and_accuracy() {
        let mut rng = Rng::new(4);
        let (n, c) = (4, 5);
        let logits: Vec<f32> = sparse_vec(&mut rng, n * c, 1.0).iter().map(|v| v * 4.0).collect();
        let labels = [0u32, 3, 4, 1];
        let out = softmax_xent(&logits, &labels, c).unwrap();
        let mut want = 0.0f64;
        let mut wd = vec![0.0f64; n * c];
        for b in 0..n {
            let row: Vec<f64> = logits[b * c..(b + 1) * c].iter().map(|&v| f64::from(v)).collect();
            let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
            want += lse - row[labels[b] as usize];
            for j in 0..c {
                let onehot = f64::from(u8::from(j == labels[b] as usize));
                wd[b * c + j] = ((row[j] - lse).exp() - onehot) / n as f64 * 8.0;
            }
        }
        assert!((f64::from(out.loss) - want / n as f64).abs() < 1e-5);
        let d = softmax_xent_backward(&out.probs, &labels, c, 8.0).unwrap();
        assert_close(&d, &wd, 1e-5);
        // Finite differences of the unscaled loss.
        for i in 0..n * c {
            let mut lp = logits.clone();
            lp[i] += 1e-2;
            let fd = (f64::from(softmax_xent(&lp, &labels, c).unwrap().loss) - f64::from(out.loss)) / 1e-2;
            assert!((fd - f64::from(d[i]) / 8.0).abs() < 2e-3);
        }
        assert_eq!(correct_count(&[1.0, 1.0, 0.0, 2.0], &[0, 1], 2).unwrap(), 2);
        assert_eq!(correct_count(&[1.0, 1.0], &[1], 2).unwrap(), 0);
        assert!(softmax_xent(&logits, &[0, 1, 2, 5], c).is_err());
    }
}
