//! Small range checks shared by every part of scenario validation. Each
//! returns an `Invalid` naming the path and the allowed range.

use super::error::Invalid;
use std::fmt::Display;

/// Appends a field name to a JSON path: `join("a[1]", "b") == "a[1].b"`.
pub fn join(base: &str, field: &str) -> String {
    if base.is_empty() {
        field.to_string()
    } else {
        format!("{base}.{field}")
    }
}

/// Appends an array index to a JSON path: `item("a", 2) == "a[2]"`.
pub fn item(base: &str, index: usize) -> String {
    format!("{base}[{index}]")
}

/// A finite number `>= 0`.
pub fn non_negative(path: &str, value: f64) -> Result<(), Invalid> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(Invalid::new(
            path,
            format!("must be a finite number >= 0 (got {value})"),
        ))
    }
}

/// A finite number `> 0`.
pub fn positive(path: &str, value: f64) -> Result<(), Invalid> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(Invalid::new(
            path,
            format!("must be a finite number > 0 (got {value})"),
        ))
    }
}

/// A probability in `[0, 1]`.
pub fn probability(path: &str, value: f64) -> Result<(), Invalid> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(Invalid::new(
            path,
            format!("must be a probability in [0, 1] (got {value})"),
        ))
    }
}

/// A value in `[low, high]`.
pub fn within<T: PartialOrd + Display + Copy>(
    path: &str,
    value: T,
    low: T,
    high: T,
) -> Result<(), Invalid> {
    if value >= low && value <= high {
        Ok(())
    } else {
        Err(Invalid::new(
            path,
            format!("must be in [{low}, {high}] (got {value})"),
        ))
    }
}

/// A finite float in `[low, high]`.
pub fn within_f64(path: &str, value: f64, low: f64, high: f64) -> Result<(), Invalid> {
    if value.is_finite() && value >= low && value <= high {
        Ok(())
    } else {
        Err(Invalid::new(
            path,
            format!("must be a finite number in [{low}, {high}] (got {value})"),
        ))
    }
}

/// A percentage in `(0, 100]`, as a rate threshold: 0% would trip on
/// every call, so it is not allowed.
pub fn percentage(path: &str, value: f64) -> Result<(), Invalid> {
    if value.is_finite() && value > 0.0 && value <= 100.0 {
        Ok(())
    } else {
        Err(Invalid::new(
            path,
            format!("must be a percentage in (0, 100] (got {value})"),
        ))
    }
}

/// A list of at most `max` entries: `must list at most 1000 services (got
/// 1001)`.
pub fn list_length_max(path: &str, length: usize, max: usize, what: &str) -> Result<(), Invalid> {
    if length <= max {
        Ok(())
    } else {
        Err(Invalid::new(
            path,
            format!("must list at most {max} {what} (got {length})"),
        ))
    }
}

/// A name usable in file names and random-stream names.
pub fn name(path: &str, value: &str) -> Result<(), Invalid> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            path,
            format!("must be 1 to 64 characters of a-z, A-Z, 0-9, '-' or '_' (got {value:?})"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_like_json_paths() {
        assert_eq!(join("", "services"), "services");
        assert_eq!(
            join(&item("services", 2), "queue_capacity"),
            "services[2].queue_capacity"
        );
    }

    #[test]
    fn ranges_name_the_path_and_the_allowed_values() {
        let err = probability("faults[0].probability", 1.5).unwrap_err();
        assert_eq!(
            err.to_string(),
            "faults[0].probability: must be a probability in [0, 1] (got 1.5)"
        );
        assert!(positive("x", f64::NAN).is_err());
        assert!(non_negative("x", -0.5).is_err());
        assert!(non_negative("x", 0.0).is_ok());
        assert!(within("x", 0u32, 1, 10).is_err());
        assert_eq!(
            percentage("x", 0.0).unwrap_err().message,
            "must be a percentage in (0, 100] (got 0)"
        );
        assert!(percentage("x", 100.0).is_ok());
        assert!(percentage("x", 100.5).is_err());
    }
}
