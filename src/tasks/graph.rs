//! Draws the dependency graph for `dreamos task graph`: a tree in the terminal (each task
//! under what it depends on, so reading down follows the order work happens in) or
//! Graphviz `dot`.
//!
//! A task with several dependencies appears under each of them; after its first
//! appearance it is printed as a reference without its subtree, so a diamond stays small.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write;

use super::{Task, TaskId};

/// The tree: roots are tasks with no dependency among `tasks`; children depend on their
/// parent. Edges are `(task, depends_on)`; edges to tasks not in `tasks` are ignored.
pub fn tree(tasks: &[Task], edges: &[(TaskId, TaskId)]) -> String {
    let by_id: BTreeMap<TaskId, &Task> = tasks.iter().map(|t| (t.id, t)).collect();
    let mut dependents: BTreeMap<TaskId, BTreeSet<TaskId>> = BTreeMap::new();
    let mut has_dependency = HashSet::new();
    for &(task, dep) in edges {
        if by_id.contains_key(&task) && by_id.contains_key(&dep) {
            dependents.entry(dep).or_default().insert(task);
            has_dependency.insert(task);
        }
    }
    let mut out = String::new();
    let mut shown = HashSet::new();
    for id in by_id.keys().filter(|id| !has_dependency.contains(id)) {
        draw(*id, "", None, &by_id, &dependents, &mut shown, &mut out);
    }
    // Tasks only reachable through a cycle (which add refuses) would otherwise vanish.
    for id in by_id.keys() {
        if !shown.contains(id) {
            draw(*id, "", None, &by_id, &dependents, &mut shown, &mut out);
        }
    }
    out
}

fn draw(
    id: TaskId,
    prefix: &str,
    last: Option<bool>,
    by_id: &BTreeMap<TaskId, &Task>,
    dependents: &BTreeMap<TaskId, BTreeSet<TaskId>>,
    shown: &mut HashSet<TaskId>,
    out: &mut String,
) {
    let Some(task) = by_id.get(&id) else { return };
    let (branch, child_prefix) = match last {
        None => (String::new(), String::new()),
        Some(true) => (format!("{prefix}└── "), format!("{prefix}    ")),
        Some(false) => (format!("{prefix}├── "), format!("{prefix}│   ")),
    };
    if !shown.insert(id) {
        let _ = writeln!(out, "{branch}{} {} (see above)", task.label(), task.title);
        return;
    }
    let _ = writeln!(out, "{branch}{}", line(task));
    let children: Vec<TaskId> = dependents
        .get(&id)
        .map(|c| c.iter().copied().collect())
        .unwrap_or_default();
    let count = children.len();
    for (i, child) in children.into_iter().enumerate() {
        draw(
            child,
            &child_prefix,
            Some(i + 1 == count),
            by_id,
            dependents,
            shown,
            out,
        );
    }
}

/// `#3 build  Build the release  [running 40%]`
fn line(task: &Task) -> String {
    let status = if task.status.is_held() && task.progress > 0.0 {
        format!("{} {:.0}%", task.status, task.progress)
    } else {
        task.status.to_string()
    };
    format!("{}  {}  [{status}]", task.label(), task.title)
}

/// Graphviz: one node per task (labelled with title and status), one edge from each
/// dependency to its dependent.
pub fn dot(tasks: &[Task], edges: &[(TaskId, TaskId)]) -> String {
    let ids: HashSet<TaskId> = tasks.iter().map(|t| t.id).collect();
    let mut out = String::from("digraph tasks {\n  rankdir=LR;\n  node [shape=box];\n");
    for t in tasks {
        let label = format!("{}\\n{}\\n{}", t.label(), escape(&t.title), t.status);
        let color = match t.status {
            super::Status::Done => "palegreen",
            super::Status::Running | super::Status::Claimed => "lightblue",
            super::Status::Ready => "lightyellow",
            s if s.is_final() => "lightpink",
            _ => "white",
        };
        let _ = writeln!(
            out,
            "  t{} [label=\"{label}\", style=filled, fillcolor={color}];",
            t.id
        );
    }
    for &(task, dep) in edges {
        if ids.contains(&task) && ids.contains(&dep) {
            let _ = writeln!(out, "  t{dep} -> t{task};");
        }
    }
    out.push_str("}\n");
    out
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::{Priority, Status};

    fn task(id: TaskId, key: &str, status: Status) -> Task {
        Task {
            id,
            key: Some(key.into()),
            title: key.to_uppercase(),
            description: None,
            priority: Priority::Normal,
            status,
            category: None,
            tags: Vec::new(),
            payload: None,
            assignee: None,
            agent: None,
            attempts: 0,
            max_attempts: 3,
            progress: 0.0,
            note: None,
            result: None,
            error: None,
            lease_until: None,
            deadline: None,
            created_at: 0,
            updated_at: 0,
            depends_on: Vec::new(),
        }
    }

    #[test]
    fn draws_a_diamond_once_with_references() {
        let tasks = vec![
            task(1, "fetch", Status::Done),
            task(2, "build", Status::Ready),
            task(3, "docs", Status::Pending),
            task(4, "ship", Status::Pending),
        ];
        let edges = vec![(2, 1), (3, 1), (4, 2), (4, 3)];
        assert_eq!(
            tree(&tasks, &edges),
            "#1 fetch  FETCH  [done]\n\
             ├── #2 build  BUILD  [ready]\n\
             │   └── #4 ship  SHIP  [pending]\n\
             └── #3 docs  DOCS  [pending]\n\
             \x20   └── #4 ship SHIP (see above)\n"
        );
        let dot = dot(&tasks, &edges);
        assert!(dot.contains("t1 -> t2;"), "{dot}");
        assert!(dot.contains("t3 -> t4;"), "{dot}");
        assert!(dot.contains("label=\"#4 ship\\nSHIP\\npending\""), "{dot}");
    }
}
