//! What a sweep varies: axes (a JSON path and its values), how the axes are
//! combined (grid, zip, random, Latin hypercube) and the seeds. A sweep comes
//! from a sweep file, from `--set` flags, or both (flags add axes and
//! override `seeds`).
//!
//! Values are JSON values, kept as written, so a swept field is checked by
//! exactly the same validation as a scenario file.

use serde::Deserialize;
use serde_json::Value;

/// Most points one sweep may have (a limit like every other in `sim`).
pub const POINTS_MAX: usize = 100_000;
/// Most seeds per point.
pub const SEEDS_MAX: u64 = 100_000;

/// One swept field.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    /// The JSON path, in `clients[0].policies[1].attempts_max` form.
    pub path: String,
    /// The values, in order.
    pub values: Vec<Value>,
    /// For random and Latin-hypercube sampling: a continuous range
    /// `(from, to, integer)` instead of the listed values.
    pub range: Option<(f64, f64, bool)>,
}

/// How axes combine into points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Every combination; the first axis varies slowest.
    Grid,
    /// The i-th value of every axis together; all axes the same length.
    Zip,
    /// `points` independent uniform draws, seeded by `seed`.
    Random {
        /// How many points.
        points: usize,
        /// The sampling seed.
        seed: u64,
    },
    /// A Latin hypercube of `points` points, seeded by `seed`: each axis's
    /// range is cut into `points` strata and each stratum is used once.
    LatinHypercube {
        /// How many points.
        points: usize,
        /// The sampling seed.
        seed: u64,
    },
}

/// A sweep before its points are drawn.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The swept fields.
    pub axes: Vec<Axis>,
    /// How they combine.
    pub mode: Mode,
    /// How many seeds per point (seeds `seed_first ..`).
    pub seeds: u64,
    /// The first seed; default 1.
    pub seed_first: u64,
}

/// A sweep file as written (see docs/sweeps.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSweep {
    /// The scenario file, relative to the sweep file.
    pub scenario: String,
    /// Seeds per point; default 10.
    #[serde(default = "seeds_default")]
    pub seeds: u64,
    /// The first seed; default 1.
    #[serde(default = "seed_first_default")]
    pub seed_first: u64,
    /// `grid` (default), `zip`, `random` or `latin_hypercube`.
    #[serde(default)]
    pub mode: RawMode,
    /// Points to draw, for `random` and `latin_hypercube`.
    pub points: Option<usize>,
    /// Sampling seed, for `random` and `latin_hypercube`; default 1.
    #[serde(default = "seed_first_default")]
    pub sample_seed: u64,
    /// The axes.
    pub axes: Vec<RawAxis>,
}

fn seeds_default() -> u64 {
    10
}

fn seed_first_default() -> u64 {
    1
}

/// The `mode` of a sweep file.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawMode {
    /// Every combination.
    #[default]
    Grid,
    /// Axes side by side.
    Zip,
    /// Uniform random points.
    Random,
    /// A Latin hypercube.
    LatinHypercube,
}

/// One axis of a sweep file: `values`, or a `range`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAxis {
    /// The JSON path of the field.
    pub path: String,
    /// The values.
    pub values: Option<Vec<Value>>,
    /// `{"from": 500, "to": 1500, "steps": 5}`.
    pub range: Option<RawRange>,
}

/// An evenly spaced range, both ends included.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRange {
    /// First value.
    pub from: f64,
    /// Last value.
    pub to: f64,
    /// How many values for a grid (>= 1); ignored by random sampling.
    #[serde(default = "steps_default")]
    pub steps: usize,
}

fn steps_default() -> usize {
    5
}

/// Evenly spaced values from `from` to `to`, `steps` of them; integers when
/// both ends are integers and the spacing is whole.
pub fn linspace(from: f64, to: f64, steps: usize) -> Vec<Value> {
    let integer = is_whole(from)
        && is_whole(to)
        && (steps <= 1 || is_whole((to - from) / (steps - 1) as f64));
    (0..steps)
        .map(|index| {
            let value = if steps == 1 {
                from
            } else {
                from + (to - from) * index as f64 / (steps - 1) as f64
            };
            number(value, integer)
        })
        .collect()
}

/// `value` as a JSON number: an integer when asked (rounded), else a float
/// rounded to 6 significant decimals so points print readably.
pub fn number(value: f64, integer: bool) -> Value {
    if integer {
        let rounded = value.round();
        if rounded >= 0.0 {
            Value::from(rounded as u64)
        } else {
            Value::from(rounded as i64)
        }
    } else {
        let digits = 6 - (value.abs().max(1e-300).log10().floor() as i32) - 1;
        let scale = 10f64.powi(digits.clamp(0, 15));
        let rounded = (value * scale).round() / scale;
        serde_json::Number::from_f64(rounded).map_or(Value::Null, Value::Number)
    }
}

fn is_whole(value: f64) -> bool {
    value.is_finite() && value.fract() == 0.0 && value.abs() < 9e15
}

/// Parses one `--set` flag: `path=v1,v2,v3` (JSON values or bare words) or
/// `path=from..to/steps`.
pub fn parse_set(flag: &str) -> Result<Axis, String> {
    let Some((path, values)) = flag.split_once('=') else {
        return Err(format!(
            "--set {flag}: expected PATH=V1,V2,... or PATH=FROM..TO/STEPS"
        ));
    };
    let path = path.trim();
    if path.is_empty() {
        return Err(format!("--set {flag}: the path is empty"));
    }
    if let Some((range, steps)) = values.split_once('/') {
        if let Some((from, to)) = range.split_once("..") {
            let parse = |text: &str| text.trim().parse::<f64>().ok().filter(|x| x.is_finite());
            let (Some(from), Some(to), Ok(steps)) =
                (parse(from), parse(to), steps.trim().parse::<usize>())
            else {
                return Err(format!(
                    "--set {flag}: a range is FROM..TO/STEPS with finite numbers and a whole number of steps"
                ));
            };
            if steps == 0 {
                return Err(format!("--set {flag}: the grid is empty (0 steps)"));
            }
            let integer = is_whole(from) && is_whole(to);
            return Ok(Axis {
                path: path.to_string(),
                values: linspace(from, to, steps),
                range: Some((from, to, integer)),
            });
        }
    }
    let values: Vec<Value> = split_values(values)
        .into_iter()
        .filter(|text| !text.trim().is_empty())
        .map(|text| {
            let text = text.trim();
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
        })
        .collect();
    if values.is_empty() {
        return Err(format!("--set {flag}: the grid is empty (no values)"));
    }
    Ok(Axis {
        path: path.to_string(),
        values,
        range: None,
    })
}

/// Splits on commas outside brackets, braces and quotes, so that a value may
/// be a JSON array or object.
fn split_values(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0);
    let mut escaped = false;
    for (index, character) in text.char_indices() {
        if quoted {
            match (escaped, character) {
                (false, '\\') => escaped = true,
                (false, '"') => quoted = false,
                _ => escaped = false,
            }
            continue;
        }
        match character {
            '"' => quoted = true,
            '[' | '{' => depth += 1,
            ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// Turns a sweep file's axes into `Axis` values; `file` names the sweep file
/// in errors.
pub fn axes_of(file: &str, raw: &[RawAxis]) -> Result<Vec<Axis>, String> {
    raw.iter()
        .enumerate()
        .map(|(index, axis)| match (&axis.values, &axis.range) {
            (Some(values), None) if !values.is_empty() => Ok(Axis {
                path: axis.path.clone(),
                values: values.clone(),
                range: None,
            }),
            (Some(_), None) => Err(format!(
                "{file}: axes[{index}].values: the grid is empty; give at least one value"
            )),
            (None, Some(range)) => {
                if !range.from.is_finite() || !range.to.is_finite() {
                    return Err(format!(
                        "{file}: axes[{index}].range: from and to must be finite numbers"
                    ));
                }
                if range.steps == 0 {
                    return Err(format!(
                        "{file}: axes[{index}].range.steps: the grid is empty; must be >= 1 (got 0)"
                    ));
                }
                Ok(Axis {
                    path: axis.path.clone(),
                    values: linspace(range.from, range.to, range.steps),
                    range: Some((
                        range.from,
                        range.to,
                        is_whole(range.from) && is_whole(range.to),
                    )),
                })
            }
            _ => Err(format!(
                "{file}: axes[{index}]: give exactly one of values or range"
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // A range flag expands to evenly spaced integers when its ends are whole.
    #[test]
    fn set_flag_ranges_expand_inclusively() {
        let axis = parse_set("clients[0].load.rate.rps=500..1500/5").unwrap();
        assert_eq!(axis.path, "clients[0].load.rate.rps");
        assert_eq!(
            axis.values,
            vec![
                json!(500),
                json!(750),
                json!(1000),
                json!(1250),
                json!(1500)
            ]
        );
        let axis = parse_set("x=0..1/3").unwrap();
        assert_eq!(axis.values, vec![json!(0.0), json!(0.5), json!(1.0)]);
    }

    // Lists take JSON values, bare words as strings, and nested arrays whole.
    #[test]
    fn set_flag_lists_parse_json_and_bare_words() {
        let axis = parse_set("a.b=2, 3.5,none,\"full\",[1,2]").unwrap();
        assert_eq!(
            axis.values,
            vec![
                json!(2),
                json!(3.5),
                json!("none"),
                json!("full"),
                json!([1, 2])
            ]
        );
    }

    // An empty grid or a flag without `=` is refused with the flag named.
    #[test]
    fn set_flag_errors_name_the_flag() {
        assert_eq!(
            parse_set("a=").unwrap_err(),
            "--set a=: the grid is empty (no values)"
        );
        assert_eq!(
            parse_set("a=1..2/0").unwrap_err(),
            "--set a=1..2/0: the grid is empty (0 steps)"
        );
        assert!(parse_set("abc")
            .unwrap_err()
            .starts_with("--set abc: expected"));
    }
}
