//! From axes to points, and from a point to a scenario: the combinations
//! (grid, zip, random, Latin hypercube) and setting a value in the scenario's
//! JSON by its path (`clients[0].policies[1].attempts_max`).

use super::spec::{number, Axis, Mode, POINTS_MAX};
use crate::engine::rng::RngFactory;
use serde_json::Value;

/// One point: a value per axis, in axis order.
pub type Point = Vec<Value>;

/// The points of `axes` combined by `mode`, in a fixed order.
pub fn points(axes: &[Axis], mode: Mode) -> Result<Vec<Point>, String> {
    if axes.is_empty() {
        return Err("the sweep has no axes; give --set PATH=VALUES or axes in a sweep file".into());
    }
    match mode {
        Mode::Grid => {
            let count = axes
                .iter()
                .try_fold(1usize, |count, axis| count.checked_mul(axis.values.len()))
                .filter(|count| *count <= POINTS_MAX)
                .ok_or_else(|| format!("the grid has more than {POINTS_MAX} points; use random or latin_hypercube sampling"))?;
            let mut points = Vec::with_capacity(count);
            for index in 0..count {
                // The first axis varies slowest, as in nested loops.
                let mut rest = index;
                let mut point = vec![Value::Null; axes.len()];
                for (slot, axis) in axes.iter().enumerate().rev() {
                    point[slot] = axis.values[rest % axis.values.len()].clone();
                    rest /= axis.values.len();
                }
                points.push(point);
            }
            Ok(points)
        }
        Mode::Zip => {
            let length = axes[0].values.len();
            if let Some(axis) = axes.iter().find(|axis| axis.values.len() != length) {
                return Err(format!(
                    "zip needs axes of equal length: {} has {} values, {} has {}",
                    axes[0].path,
                    length,
                    axis.path,
                    axis.values.len()
                ));
            }
            Ok((0..length)
                .map(|index| axes.iter().map(|axis| axis.values[index].clone()).collect())
                .collect())
        }
        Mode::Random { points, seed } | Mode::LatinHypercube { points, seed } => {
            if points == 0 || points > POINTS_MAX {
                return Err(format!(
                    "points: must be in [1, {POINTS_MAX}] for random and latin_hypercube (got {points})"
                ));
            }
            let latin = matches!(mode, Mode::LatinHypercube { .. });
            let factory = RngFactory::new(seed);
            let columns: Vec<Vec<Value>> = axes
                .iter()
                .map(|axis| {
                    let mut rng = factory.stream(&format!("sweep/{}", axis.path));
                    // Latin hypercube: a shuffled stratum per point (Fisher-Yates).
                    let mut strata: Vec<usize> = (0..points).collect();
                    if latin {
                        for index in (1..points).rev() {
                            let other = rng.index(index + 1);
                            strata.swap(index, other);
                        }
                    }
                    strata
                        .iter()
                        .map(|stratum| {
                            let unit = if latin {
                                (*stratum as f64 + rng.unit()) / points as f64
                            } else {
                                rng.unit()
                            };
                            match axis.range {
                                Some((from, to, integer)) => {
                                    number(from + (to - from) * unit, integer)
                                }
                                None => {
                                    let index = ((unit * axis.values.len() as f64) as usize)
                                        .min(axis.values.len() - 1);
                                    axis.values[index].clone()
                                }
                            }
                        })
                        .collect()
                })
                .collect();
            Ok((0..points)
                .map(|index| columns.iter().map(|column| column[index].clone()).collect())
                .collect())
        }
    }
}

/// One step of a JSON path.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

fn parse_path(path: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(at) => (&part[..at], &part[at..]),
            None => (part, ""),
        };
        if key.is_empty() && (steps.is_empty() || rest.is_empty()) {
            return Err(format!("{path}: not a JSON path (write it as a.b[2].c)"));
        }
        if !key.is_empty() {
            steps.push(Step::Key(key.to_string()));
        }
        while !rest.is_empty() {
            let close = rest
                .find(']')
                .ok_or_else(|| format!("{path}: not a JSON path (unclosed [)"))?;
            let index = rest[1..close]
                .parse::<usize>()
                .map_err(|_| format!("{path}: not a JSON path (an index is a whole number)"))?;
            steps.push(Step::Index(index));
            rest = &rest[close + 1..];
            if !rest.is_empty() && !rest.starts_with('[') {
                return Err(format!("{path}: not a JSON path (write it as a.b[2].c)"));
            }
        }
    }
    Ok(steps)
}

/// Sets `value` at `path` in `root`. Every step but the last must exist; the
/// last may name an absent key (a defaulted field), which the scenario's
/// validation then accepts or refuses exactly as in a file.
pub fn set_path(root: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let steps = parse_path(path)?;
    let mut node = root;
    let mut walked = String::new();
    for (position, step) in steps.iter().enumerate() {
        let last = position + 1 == steps.len();
        match step {
            Step::Key(key) => {
                let where_ = if walked.is_empty() {
                    "the top level".to_string()
                } else {
                    walked.clone()
                };
                let Value::Object(map) = node else {
                    return Err(format!(
                        "{path}: no field {key:?} here: {where_} is not an object"
                    ));
                };
                if last {
                    map.insert(key.clone(), value);
                    return Ok(());
                }
                if !walked.is_empty() {
                    walked.push('.');
                }
                walked.push_str(key);
                // An absent object (a defaulted section such as `limits`) is
                // created; validation refuses it if the key is not a field.
                if !map.contains_key(key) {
                    if let Some(Step::Key(_)) = steps.get(position + 1) {
                        map.insert(key.clone(), Value::Object(Default::default()));
                    }
                }
                node = map.get_mut(key).ok_or_else(|| {
                    format!("{path}: names no field: {walked} is not in the scenario")
                })?;
            }
            Step::Index(index) => {
                let Value::Array(items) = node else {
                    return Err(format!("{path}: {walked} is not an array"));
                };
                let length = items.len();
                let slot = items.get_mut(*index).ok_or_else(|| {
                    format!("{path}: names no field: {walked}[{index}] is out of range ({walked} has {length})")
                })?;
                walked.push_str(&format!("[{index}]"));
                if last {
                    *slot = value;
                    return Ok(());
                }
                node = slot;
            }
        }
    }
    Err(format!("{path}: not a JSON path"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn axis(path: &str, values: Vec<Value>) -> Axis {
        Axis {
            path: path.into(),
            values,
            range: None,
        }
    }

    // A grid's first axis varies slowest; zip pairs values side by side.
    #[test]
    fn grid_and_zip_orders() {
        let axes = [
            axis("a", vec![json!(1), json!(2)]),
            axis("b", vec![json!("x"), json!("y"), json!("z")]),
        ];
        let grid = points(&axes, Mode::Grid).unwrap();
        assert_eq!(grid.len(), 6);
        assert_eq!(grid[0], vec![json!(1), json!("x")]);
        assert_eq!(grid[1], vec![json!(1), json!("y")]);
        assert_eq!(grid[3], vec![json!(2), json!("x")]);
        assert!(points(&axes, Mode::Zip)
            .unwrap_err()
            .starts_with("zip needs axes of equal length"));
        let zipped = points(&axes[..1], Mode::Zip).unwrap();
        assert_eq!(zipped, vec![vec![json!(1)], vec![json!(2)]]);
    }

    // A Latin hypercube puts exactly one point in each stratum of every axis,
    // and the same sampling seed draws the same points.
    #[test]
    fn latin_hypercube_covers_each_stratum_once() {
        let axes = [
            Axis {
                path: "a".into(),
                values: vec![],
                range: Some((0.0, 10.0, false)),
            },
            Axis {
                path: "b".into(),
                values: vec![],
                range: Some((100.0, 200.0, false)),
            },
        ];
        let mode = Mode::LatinHypercube {
            points: 10,
            seed: 7,
        };
        let drawn = points(&axes, mode).unwrap();
        assert_eq!(drawn, points(&axes, mode).unwrap());
        for (slot, (from, width)) in [(0.0, 1.0), (100.0, 10.0)].iter().enumerate() {
            let mut strata: Vec<usize> = drawn
                .iter()
                .map(|point| ((point[slot].as_f64().unwrap() - from) / width) as usize)
                .collect();
            strata.sort();
            assert_eq!(strata, (0..10).collect::<Vec<_>>());
        }
        let random = points(&axes, Mode::Random { points: 5, seed: 7 }).unwrap();
        assert_eq!(random.len(), 5);
        assert!(random
            .iter()
            .all(|point| (0.0..=10.0).contains(&point[0].as_f64().unwrap())));
    }

    // Paths reach into objects and arrays; a missing parent or index is named.
    #[test]
    fn set_path_walks_objects_and_arrays() {
        let mut root = json!({"clients": [{"policies": [{"kind": "retry", "attempts_max": 3}]}]});
        set_path(&mut root, "clients[0].policies[0].attempts_max", json!(5)).unwrap();
        assert_eq!(root["clients"][0]["policies"][0]["attempts_max"], json!(5));
        assert_eq!(
            set_path(&mut root, "clients[2].rate", json!(1)).unwrap_err(),
            "clients[2].rate: names no field: clients[2] is out of range (clients has 1)"
        );
        set_path(&mut root, "limits.events_max", json!(1)).unwrap();
        assert_eq!(root["limits"]["events_max"], json!(1));
        assert_eq!(
            set_path(&mut root, "services[0].workers", json!(1)).unwrap_err(),
            "services[0].workers: names no field: services is not in the scenario"
        );
        assert!(set_path(&mut root, "a..b", json!(1)).is_err());
    }
}
