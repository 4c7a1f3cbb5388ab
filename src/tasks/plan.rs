//! Plans: a TOML file that describes a whole set of tasks at once, with symbolic ids, so a
//! Captain script or an operator can load a piece of work in one step.
//!
//! ```toml
//! [defaults]              # optional; any task key except id, title, depends_on
//! category = "release"
//!
//! [[task]]
//! id = "fetch"
//! title = "Fetch the sources"
//! priority = "high"
//!
//! [[task]]
//! id = "build"
//! title = "Build"
//! depends_on = ["fetch"]  # symbols of this plan, or ids of existing tasks (numbers)
//! payload = { target = "release" }
//! deadline = "2h"         # from the moment of import
//! ```
//!
//! Import is all or nothing: every task is checked (names, dependencies, cycles) before one
//! transaction stores them all, so a plan is never half-loaded.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use super::{dag, validate, DepRef, Priority, TaskError, TaskId, TaskSpec, Tasks};

/// A parsed plan: tasks in file order, each with its symbol and dependencies.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub tasks: Vec<PlanTask>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlanTask {
    pub key: String,
    /// Everything but the dependencies, which are symbolic here.
    pub spec: TaskSpec,
    pub depends_on: Vec<PlanDep>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum PlanDep {
    /// An existing task's id.
    Id(TaskId),
    /// Another task of this plan.
    Symbol(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    #[serde(default)]
    defaults: Defaults,
    #[serde(default, rename = "task")]
    tasks: Vec<TaskEntry>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Defaults {
    description: Option<String>,
    priority: Option<String>,
    assignee: Option<String>,
    category: Option<String>,
    tags: Option<Vec<String>>,
    payload: Option<toml::Value>,
    max_attempts: Option<u32>,
    deadline: Option<DurationValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskEntry {
    id: String,
    title: String,
    description: Option<String>,
    priority: Option<String>,
    #[serde(default)]
    depends_on: Vec<PlanDep>,
    assignee: Option<String>,
    category: Option<String>,
    tags: Option<Vec<String>>,
    payload: Option<toml::Value>,
    max_attempts: Option<u32>,
    deadline: Option<DurationValue>,
}

#[derive(Clone, Deserialize)]
#[serde(untagged)]
enum DurationValue {
    Text(String),
    Seconds(f64),
}

impl DurationValue {
    fn parse(&self) -> Result<Duration, String> {
        match self {
            DurationValue::Text(t) => crate::units::parse_duration(t),
            DurationValue::Seconds(s) => crate::units::seconds(*s)
                .ok_or_else(|| format!("invalid duration {s}: use seconds or \"2h\"")),
        }
    }
}

impl Plan {
    /// Parses plan text; errors give the line (TOML) or the task's symbol.
    pub fn parse(text: &str) -> Result<Plan, TaskError> {
        let file: PlanFile = toml::from_str(text).map_err(|e| TaskError::Plan(e.to_string()))?;
        if file.tasks.is_empty() {
            return Err(TaskError::Plan(
                "the plan has no [[task]] entries".to_string(),
            ));
        }
        let d = file.defaults;
        let mut seen = HashMap::new();
        let mut tasks = Vec::with_capacity(file.tasks.len());
        for entry in file.tasks {
            let key = entry.id.clone();
            let at = |e: String| TaskError::Plan(format!("task '{key}': {e}"));
            if key.trim().is_empty() {
                return Err(TaskError::Plan("a task has an empty id".into()));
            }
            if seen.insert(key.clone(), ()).is_some() {
                return Err(at("the id is used by an earlier task too".into()));
            }
            let priority = match entry.priority.or(d.priority.clone()) {
                Some(p) => p.parse::<Priority>().map_err(at)?,
                None => Priority::Normal,
            };
            let payload = entry
                .payload
                .or(d.payload.clone())
                .map(serde_json::to_value)
                .transpose()
                .map_err(|e| at(format!("payload: {e}")))?;
            let deadline = entry
                .deadline
                .or(d.deadline.clone())
                .map(|v| v.parse())
                .transpose()
                .map_err(|e| at(format!("deadline: {e}")))?;
            let spec = TaskSpec {
                title: entry.title,
                description: entry.description.or(d.description.clone()),
                priority,
                depends_on: Vec::new(),
                assignee: entry.assignee.or(d.assignee.clone()),
                category: entry.category.or(d.category.clone()),
                tags: entry.tags.or(d.tags.clone()).unwrap_or_default(),
                payload,
                max_attempts: entry.max_attempts.or(d.max_attempts),
                deadline,
            };
            validate::spec(&spec).map_err(|e| at(e.to_string()))?;
            tasks.push(PlanTask {
                key,
                spec,
                depends_on: entry.depends_on,
            });
        }
        Ok(Plan { tasks })
    }
}

impl Tasks {
    /// Creates every task of `plan` in one transaction (all or nothing); returns each
    /// symbol with its new id, in file order. A symbol that names no task of the plan, an
    /// id that names no existing task, or a cycle refuses the whole plan.
    pub async fn import(&self, plan: Plan) -> Result<Vec<(String, TaskId)>, TaskError> {
        let index: HashMap<&str, usize> = plan
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.key.as_str(), i))
            .collect();
        let names: Vec<String> = plan.tasks.iter().map(|t| t.key.clone()).collect();
        let mut batch_deps: Vec<Vec<usize>> = Vec::with_capacity(plan.tasks.len());
        for t in &plan.tasks {
            let mut deps = Vec::new();
            for dep in &t.depends_on {
                if let PlanDep::Symbol(symbol) = dep {
                    let Some(&i) = index.get(symbol.as_str()) else {
                        let hint = crate::config::did_you_mean(symbol, &names)
                            .map(|s| format!(" (did you mean '{s}'?)"))
                            .unwrap_or_default();
                        return Err(TaskError::Plan(format!(
                            "task '{}' depends on '{symbol}', which the plan does not define{hint}",
                            t.key
                        )));
                    };
                    deps.push(i);
                }
            }
            deps.sort_unstable();
            deps.dedup();
            batch_deps.push(deps);
        }
        let order = dag::topological_order(&names, &batch_deps).map_err(TaskError::Cycle)?;
        // Position of each plan task in the insertion order, for DepRef::Batch.
        let mut position = vec![0usize; order.len()];
        for (pos, &i) in order.iter().enumerate() {
            position[i] = pos;
        }
        let mut batch = Vec::with_capacity(order.len());
        for &i in &order {
            let t = &plan.tasks[i];
            let mut deps: Vec<DepRef> = batch_deps[i]
                .iter()
                .map(|&d| DepRef::Batch(position[d]))
                .collect();
            for dep in &t.depends_on {
                if let PlanDep::Id(id) = dep {
                    if *id <= 0 {
                        return Err(TaskError::Plan(format!(
                            "task '{}': depends_on: {id} is not a task id",
                            t.key
                        )));
                    }
                    if !deps.contains(&DepRef::Existing(*id)) {
                        deps.push(DepRef::Existing(*id));
                    }
                }
            }
            batch.push(self.prepare(t.spec.clone(), Some(t.key.clone()), deps)?);
        }
        let events = self.insert(batch).await?;
        let mut ids = vec![0; order.len()];
        for (pos, event) in events.iter().enumerate() {
            if let Some(&i) = order.get(pos) {
                ids[i] = event.id;
            }
        }
        Ok(plan.tasks.into_iter().map(|t| t.key).zip(ids).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_symbols_defaults_and_existing_ids() {
        let plan = Plan::parse(
            r#"
            [defaults]
            category = "release"
            tags = ["ci"]

            [[task]]
            id = "fetch"
            title = "Fetch"
            priority = "high"

            [[task]]
            id = "build"
            title = "Build"
            depends_on = ["fetch", 12]
            payload = { target = "release" }
            deadline = "2h"
            "#,
        )
        .expect("parse");
        assert_eq!(plan.tasks.len(), 2);
        let build = &plan.tasks[1];
        assert_eq!(build.key, "build");
        assert_eq!(
            build.depends_on,
            vec![PlanDep::Symbol("fetch".into()), PlanDep::Id(12)]
        );
        assert_eq!(build.spec.category.as_deref(), Some("release"));
        assert_eq!(build.spec.tags, vec!["ci".to_string()]);
        assert_eq!(build.spec.deadline, Some(Duration::from_secs(7200)));
        assert_eq!(
            build.spec.payload,
            Some(serde_json::json!({"target": "release"}))
        );
        assert_eq!(plan.tasks[0].spec.priority, Priority::High);
    }

    #[test]
    fn refuses_bad_plans_with_a_reason() {
        let err = |text: &str| Plan::parse(text).expect_err("refused").to_string();
        assert!(
            err("[[task]]\nid = \"a\"\ntitle = \"A\"\nprioriti = \"high\"").contains("prioriti")
        );
        assert_eq!(
            err("[[task]]\nid = \"a\"\ntitle = \"A\"\npriority = \"urgent\""),
            "task 'a': unknown priority 'urgent': use one of critical, high, normal, low"
        );
        assert_eq!(
            err("[[task]]\nid = \"a\"\ntitle = \"A\"\n[[task]]\nid = \"a\"\ntitle = \"B\""),
            "task 'a': the id is used by an earlier task too"
        );
        assert_eq!(err(""), "the plan has no [[task]] entries");
    }
}
