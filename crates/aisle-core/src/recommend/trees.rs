//! Gradient-boosted decision trees for binary labels (log loss), small and
//! deterministic: features are binned into quantiles once, trees grow level by
//! level from gradient histograms. Enough to learn the interactions a linear
//! ranker misses (recency matters more for frequent shoppers, due-ness only
//! for items with a cycle) without a dependency.

use serde::{Deserialize, Serialize};

/// Knobs of boosting.
#[derive(Debug, Clone, Copy)]
pub struct BoostOptions {
    pub trees: usize,
    pub depth: usize,
    pub learning_rate: f64,
    pub bins: usize,
    /// L2 penalty on leaf values.
    pub lambda: f64,
    /// Smallest hessian sum a child may have.
    pub min_child_weight: f64,
}

impl Default for BoostOptions {
    fn default() -> Self {
        Self {
            trees: 120,
            depth: 4,
            learning_rate: 0.1,
            bins: 32,
            lambda: 1.0,
            min_child_weight: 5.0,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum Node {
    /// Go left when `x[feature] <= threshold`.
    Split {
        feature: u16,
        threshold: f32,
        left: u32,
        right: u32,
    },
    Leaf {
        value: f32,
    },
}

/// A fitted ensemble.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Forest {
    base: f64,
    trees: Vec<Vec<Node>>,
}

impl Forest {
    /// The raw score (log-odds).
    pub fn margin(&self, x: &[f64]) -> f64 {
        let mut total = self.base;
        for tree in &self.trees {
            let mut idx = 0usize;
            loop {
                match tree[idx] {
                    Node::Leaf { value } => {
                        total += f64::from(value);
                        break;
                    }
                    Node::Split {
                        feature,
                        threshold,
                        left,
                        right,
                    } => {
                        let value = x.get(feature as usize).copied().unwrap_or(0.0);
                        idx = if value <= f64::from(threshold) {
                            left as usize
                        } else {
                            right as usize
                        };
                    }
                }
            }
        }
        total
    }

    pub fn probability(&self, x: &[f64]) -> f64 {
        1.0 / (1.0 + (-self.margin(x)).exp())
    }

    pub fn n_trees(&self) -> usize {
        self.trees.len()
    }

    /// Fits on `rows` (all of one width) and their labels.
    pub fn fit(rows: &[Vec<f64>], labels: &[bool], options: &BoostOptions) -> Self {
        let n_rows = rows.len();
        let n_features = rows.first().map_or(0, Vec::len);
        if n_rows == 0 || n_features == 0 {
            return Self::default();
        }
        // Quantile bin edges per feature.
        let mut edges: Vec<Vec<f64>> = Vec::with_capacity(n_features);
        let mut binned: Vec<Vec<u8>> = Vec::with_capacity(n_features);
        for feature in 0..n_features {
            let mut values: Vec<f64> = rows.iter().map(|r| r[feature]).collect();
            values.sort_by(f64::total_cmp);
            let mut cuts: Vec<f64> = (1..options.bins)
                .map(|b| values[(b * (n_rows - 1)) / options.bins])
                .collect();
            cuts.dedup();
            let column = rows
                .iter()
                .map(|r| cuts.partition_point(|c| *c < r[feature]) as u8)
                .collect();
            edges.push(cuts);
            binned.push(column);
        }
        let positives = labels.iter().filter(|l| **l).count() as f64;
        let mean = (positives / n_rows as f64).clamp(1e-6, 1.0 - 1e-6);
        let base = (mean / (1.0 - mean)).ln();
        let mut margin = vec![base; n_rows];
        let mut trees = Vec::with_capacity(options.trees);
        let mut gradient = vec![0.0f64; n_rows];
        let mut hessian = vec![0.0f64; n_rows];
        let mut node_of = vec![0u32; n_rows];
        for _ in 0..options.trees {
            for idx in 0..n_rows {
                let p = 1.0 / (1.0 + (-margin[idx]).exp());
                gradient[idx] = p - f64::from(u8::from(labels[idx]));
                hessian[idx] = (p * (1.0 - p)).max(1e-12);
            }
            node_of.iter_mut().for_each(|n| *n = 0);
            let mut tree: Vec<Node> = vec![Node::Leaf { value: 0.0 }];
            // Nodes of the current level (tree indices), and their (G, H).
            let mut level: Vec<u32> = vec![0];
            for _depth in 0..options.depth {
                let n_level = level.len();
                let width = edges.iter().map(|e| e.len() + 1).max().unwrap_or(1);
                let mut hist = vec![(0.0f64, 0.0f64); n_level * n_features * width];
                let mut totals = vec![(0.0f64, 0.0f64); n_level];
                let slots: Vec<Option<usize>> = {
                    let max_node = tree.len();
                    let mut map = vec![None; max_node];
                    for (slot, node) in level.iter().enumerate() {
                        map[*node as usize] = Some(slot);
                    }
                    map
                };
                for row in 0..n_rows {
                    let Some(slot) = slots.get(node_of[row] as usize).copied().flatten() else {
                        continue;
                    };
                    let (g, h) = (gradient[row], hessian[row]);
                    totals[slot].0 += g;
                    totals[slot].1 += h;
                    for (feature, column) in binned.iter().enumerate() {
                        let cell =
                            &mut hist[(slot * n_features + feature) * width + column[row] as usize];
                        cell.0 += g;
                        cell.1 += h;
                    }
                }
                let score = |g: f64, h: f64| g * g / (h + options.lambda);
                let mut next_level = Vec::new();
                // (slot) -> (feature, bin) of its split, if any.
                let mut splits: Vec<Option<(usize, usize)>> = vec![None; n_level];
                for slot in 0..n_level {
                    let (total_g, total_h) = totals[slot];
                    let parent = score(total_g, total_h);
                    let mut best: Option<(f64, usize, usize)> = None;
                    for feature in 0..n_features {
                        let (mut left_g, mut left_h) = (0.0, 0.0);
                        for bin in 0..edges[feature].len() {
                            let cell = hist[(slot * n_features + feature) * width + bin];
                            left_g += cell.0;
                            left_h += cell.1;
                            let (right_g, right_h) = (total_g - left_g, total_h - left_h);
                            if left_h < options.min_child_weight
                                || right_h < options.min_child_weight
                            {
                                continue;
                            }
                            let gain = score(left_g, left_h) + score(right_g, right_h) - parent;
                            if gain > 1e-9 && best.is_none_or(|(b, _, _)| gain > b) {
                                best = Some((gain, feature, bin));
                            }
                        }
                    }
                    if let Some((_, feature, bin)) = best {
                        let node = level[slot];
                        let left = tree.len() as u32;
                        tree.push(Node::Leaf { value: 0.0 });
                        tree.push(Node::Leaf { value: 0.0 });
                        tree[node as usize] = Node::Split {
                            feature: feature as u16,
                            threshold: edges[feature][bin] as f32,
                            left,
                            right: left + 1,
                        };
                        next_level.push(left);
                        next_level.push(left + 1);
                        splits[slot] = Some((feature, bin));
                    }
                }
                if next_level.is_empty() {
                    break;
                }
                for row in 0..n_rows {
                    let Some(slot) = slots.get(node_of[row] as usize).copied().flatten() else {
                        continue;
                    };
                    if let (Some((feature, bin)), Node::Split { left, right, .. }) =
                        (splits[slot], tree[level[slot] as usize])
                    {
                        node_of[row] = if (binned[feature][row] as usize) <= bin {
                            left
                        } else {
                            right
                        };
                    }
                }
                level = next_level;
            }
            // Leaf values: Newton steps, shrunk.
            let mut sums = vec![(0.0f64, 0.0f64); tree.len()];
            for row in 0..n_rows {
                let cell = &mut sums[node_of[row] as usize];
                cell.0 += gradient[row];
                cell.1 += hessian[row];
            }
            for (idx, node) in tree.iter_mut().enumerate() {
                if let Node::Leaf { value } = node {
                    let (g, h) = sums[idx];
                    *value = (-g / (h + options.lambda) * options.learning_rate) as f32;
                }
            }
            for row in 0..n_rows {
                if let Node::Leaf { value } = tree[node_of[row] as usize] {
                    margin[row] += f64::from(value);
                }
            }
            trees.push(tree);
        }
        Self { base, trees }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    #[test]
    fn learns_an_interaction_a_line_cannot() {
        // y = x0 > 0.5 XOR x1 > 0.5, with noise features.
        let mut rng = SplitMix64::new(7);
        let rows: Vec<Vec<f64>> = (0..4000)
            .map(|_| (0..4).map(|_| rng.unit()).collect())
            .collect();
        let labels: Vec<bool> = rows.iter().map(|r| (r[0] > 0.5) != (r[1] > 0.5)).collect();
        let options = BoostOptions {
            trees: 60,
            depth: 3,
            ..BoostOptions::default()
        };
        let forest = Forest::fit(&rows, &labels, &options);
        let correct = rows
            .iter()
            .zip(&labels)
            .filter(|(r, l)| (forest.probability(r) > 0.5) == **l)
            .count();
        assert!(correct > 3800, "{correct} of 4000");
        let again = Forest::fit(&rows, &labels, &options);
        assert_eq!(
            forest.margin(&rows[0]).to_bits(),
            again.margin(&rows[0]).to_bits(),
            "deterministic"
        );
    }
}
