//! The differentially private release of a decrypted total: discrete Laplace noise from
//! OpenDP (never a hand-written sampler), calibrated to one contributor's largest
//! possible influence on the total (the privacy unit is the contributor, whose value is
//! at most the aggregate's cap).

use super::FheError;
use opendp::domains::AtomDomain;
use opendp::measurements::make_laplace;
use opendp::measures::MaxDivergence;
use opendp::metrics::AbsoluteDistance;

/// The total with discrete Laplace noise of scale `sensitivity / epsilon`; refuses if
/// OpenDP's privacy map says the release would cost more than `epsilon`.
pub(crate) fn noisy_total(total: u128, sensitivity: u64, epsilon: f64) -> Result<i128, FheError> {
    if !(epsilon.is_finite() && epsilon > 0.0) {
        return Err(FheError::Invalid(
            "epsilon must be a positive number".into(),
        ));
    }
    let opendp = |e: opendp::error::Error| FheError::Internal(format!("OpenDP: {:?}", e.variant));
    let scale = sensitivity.max(1) as f64 / epsilon;
    let measurement = make_laplace::<_, _, MaxDivergence>(
        AtomDomain::<i128>::new_non_nan(),
        AbsoluteDistance::<i128>::default(),
        scale,
        None,
    )
    .map_err(opendp)?;
    let cost = measurement.map(&i128::from(sensitivity)).map_err(opendp)?;
    if cost > epsilon * (1.0 + 1e-9) {
        return Err(FheError::Internal(format!(
            "OpenDP charges {cost} for a release budgeted at {epsilon}"
        )));
    }
    let total =
        i128::try_from(total).map_err(|_| FheError::Internal("total out of range".into()))?;
    measurement.invoke(&total).map_err(opendp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_centred_on_the_total_and_scales_with_epsilon() {
        let total = 1_000_000u128;
        let spread = |epsilon: f64| {
            let draws: Vec<i128> = (0..400)
                .map(|_| noisy_total(total, 100, epsilon).unwrap())
                .collect();
            let mean = draws.iter().sum::<i128>() as f64 / draws.len() as f64;
            let mad = draws
                .iter()
                .map(|d| (*d as f64 - total as f64).abs())
                .sum::<f64>()
                / draws.len() as f64;
            (mean, mad)
        };
        let (mean, wide) = spread(0.1);
        // Scale 1000: mean absolute deviation about 1000, mean within a few standard errors.
        assert!((mean - total as f64).abs() < 300.0, "{mean}");
        assert!((600.0..1500.0).contains(&wide), "{wide}");
        let (_, narrow) = spread(10.0);
        assert!(narrow < 30.0, "{narrow}");
        assert!(noisy_total(total, 100, 0.0).is_err());
        assert!(noisy_total(total, 100, f64::NAN).is_err());
    }
}
