//! Value parsers of options with bounds: clap refuses a value outside them with the
//! option's name and what it takes, before any file is opened, whether or not the option
//! ends up used.

use clap::builder::RangedU64ValueParser;

/// A count from `low` to `high`, both included.
pub fn between(low: usize, high: usize) -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::new().range(low as u64..=high as u64)
}

/// A count of at least one.
pub fn at_least_one() -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::new().range(1..)
}

/// A share strictly between 0 and 1.
pub fn share(s: &str) -> Result<f32, String> {
    match s.trim().parse::<f32>() {
        Ok(v) if v > 0.0 && v < 1.0 => Ok(v),
        _ => Err(format!("'{s}' is not a share between 0 and 1 (both excluded)")),
    }
}

/// A positive, finite number of seconds.
pub fn seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("'{s}' is not a positive number of seconds")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_seconds_refuse_what_means_nothing() {
        for bad in ["NaN", "5", "0", "1", "-0.1", "x"] {
            assert!(share(bad).is_err(), "{bad}");
        }
        assert_eq!(share("0.05"), Ok(0.05));
        for bad in ["NaN", "inf", "0", "-1", "1e400"] {
            assert!(seconds(bad).is_err(), "{bad}");
        }
        assert_eq!(seconds("0.5"), Ok(0.5));
    }
}
