//! Dependencies form a DAG. This module orders a batch of new tasks so every task comes
//! after the tasks it depends on, or names the cycle that makes that impossible.
//!
//! Why only batches: a task can only depend on tasks that already exist, and an existing
//! task can never gain a dependency, so a single `add` cannot close a cycle (its own id does
//! not exist yet). A plan is different: its tasks name each other symbolically, and a
//! plan can say `a` needs `b` and `b` needs `a`. That is checked here before anything is
//! stored.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Orders the batch: `deps[i]` lists the batch indices task `i` depends on. Returns the
/// indices so that each task follows its dependencies, keeping the batch's own order
/// wherever the dependencies allow (so FIFO within a priority follows the plan file).
/// A cycle is an error naming it: `"a -> b -> a"` (a depends on b, which depends on a).
pub fn topological_order(names: &[String], deps: &[Vec<usize>]) -> Result<Vec<usize>, String> {
    let n = names.len();
    let mut waiting_on = vec![0usize; n];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (task, its_deps) in deps.iter().enumerate() {
        for &dep in its_deps {
            if dep >= n {
                return Err(format!("dependency index {dep} is outside the batch"));
            }
            if dep == task {
                return Err(format!("{0} -> {0}", names[task]));
            }
            waiting_on[task] += 1;
            dependents[dep].push(task);
        }
    }
    // Kahn's algorithm with the lowest index first: a min-heap of tasks whose
    // dependencies are all placed.
    let mut free: BinaryHeap<Reverse<usize>> = (0..n)
        .filter(|&i| waiting_on[i] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(task)) = free.pop() {
        order.push(task);
        for &d in &dependents[task] {
            waiting_on[d] -= 1;
            if waiting_on[d] == 0 {
                free.push(Reverse(d));
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    Err(describe_cycle(names, deps, &waiting_on))
}

/// Every task Kahn's algorithm could not place still waits on another unplaced task, so
/// walking "depends on" edges among them from any of them must revisit a task: that loop
/// is a cycle.
fn describe_cycle(names: &[String], deps: &[Vec<usize>], waiting_on: &[usize]) -> String {
    let stuck = |i: usize| waiting_on[i] > 0;
    let Some(start) = (0..names.len()).find(|&i| stuck(i)) else {
        return "a dependency cycle".into();
    };
    let mut path = vec![start];
    let mut seen_at = vec![usize::MAX; names.len()];
    seen_at[start] = 0;
    let mut current = start;
    loop {
        let Some(&next) = deps[current].iter().find(|&&d| stuck(d)) else {
            return "a dependency cycle".into();
        };
        if seen_at[next] != usize::MAX {
            let cycle: Vec<&str> = path[seen_at[next]..]
                .iter()
                .chain(std::iter::once(&next))
                .map(|&i| names[i].as_str())
                .collect();
            return cycle.join(" -> ");
        }
        seen_at[next] = path.len();
        path.push(next);
        current = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn orders_dependencies_first_and_keeps_file_order_otherwise() {
        // deploy(0) needs build(2); build needs fetch(1); docs(3) needs nothing.
        let n = names(&["deploy", "fetch", "build", "docs"]);
        let deps = vec![vec![2], vec![], vec![1], vec![]];
        assert_eq!(topological_order(&n, &deps), Ok(vec![1, 2, 0, 3]));
        let independent = vec![vec![], vec![], vec![], vec![]];
        assert_eq!(topological_order(&n, &independent), Ok(vec![0, 1, 2, 3]));
    }

    #[test]
    fn a_diamond_is_fine() {
        let n = names(&["a", "b", "c", "d"]);
        let deps = vec![vec![], vec![0], vec![0], vec![1, 2]];
        assert_eq!(topological_order(&n, &deps), Ok(vec![0, 1, 2, 3]));
    }

    #[test]
    fn names_a_two_task_cycle() {
        let n = names(&["a", "b"]);
        let deps = vec![vec![1], vec![0]];
        assert_eq!(topological_order(&n, &deps), Err("a -> b -> a".into()));
    }

    #[test]
    fn names_a_longer_cycle_behind_a_tail() {
        // start needs a; a -> b -> c -> a is the loop; ok is unrelated.
        let n = names(&["ok", "start", "a", "b", "c"]);
        let deps = vec![vec![], vec![2], vec![3], vec![4], vec![2]];
        assert_eq!(topological_order(&n, &deps), Err("a -> b -> c -> a".into()));
    }

    #[test]
    fn a_task_cannot_depend_on_itself() {
        let n = names(&["solo"]);
        assert_eq!(
            topological_order(&n, &[vec![0]]),
            Err("solo -> solo".into())
        );
    }
}
