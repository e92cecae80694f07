//! Built-in baselines, computed in the same run as the models so every gain
//! is a ratio: global popularity, personal top-frequency, and "the most
//! popular items this member never bought".

use super::history::History;
use crate::rng::IdSet;

/// Items by the number of training baskets that hold them, most first (ties: lower index).
pub fn popularity(train: &History) -> Vec<u32> {
    let mut counts = vec![0u32; train.n_items()];
    for trips in &train.trips {
        for trip in trips {
            for item in &trip.items {
                counts[*item as usize] += 1;
            }
        }
    }
    let mut items: Vec<u32> = (0..train.n_items() as u32).collect();
    items.sort_by_key(|item| (std::cmp::Reverse(counts[*item as usize]), *item));
    items
}

/// The member's items by how many of their baskets hold them (ties: most
/// recent first), then popular items.
pub fn top_frequency(train: &History, member: u32, popular: &[u32], k: usize) -> Vec<u32> {
    let mut stats: crate::rng::IdMap<u32, (u32, usize)> = crate::rng::IdMap::default();
    for (trip_idx, trip) in train.trips[member as usize].iter().enumerate() {
        for item in &trip.items {
            let entry = stats.entry(*item).or_insert((0, 0));
            entry.0 += 1;
            entry.1 = trip_idx;
        }
    }
    let mut items: Vec<(u32, (u32, usize))> = stats.into_iter().collect();
    items.sort_by_key(|(item, (count, last))| {
        (std::cmp::Reverse(*count), std::cmp::Reverse(*last), *item)
    });
    let mut list: Vec<u32> = items.into_iter().map(|(item, _)| item).take(k).collect();
    fill(&mut list, popular, k, &IdSet::default());
    list
}

/// The most popular items the member never bought.
pub fn popular_unbought(train: &History, member: u32, popular: &[u32], k: usize) -> Vec<u32> {
    let bought: IdSet<u32> = train.trips[member as usize]
        .iter()
        .flat_map(|t| t.items.iter().copied())
        .collect();
    let mut list = Vec::with_capacity(k);
    fill(&mut list, popular, k, &bought);
    list
}

/// Appends items of `from` not already listed nor in `exclude`, up to `k`.
pub fn fill(list: &mut Vec<u32>, from: &[u32], k: usize, exclude: &IdSet<u32>) {
    let mut listed: IdSet<u32> = list.iter().copied().collect();
    for item in from {
        if list.len() >= k {
            break;
        }
        if !exclude.contains(item) && listed.insert(*item) {
            list.push(*item);
        }
    }
}
