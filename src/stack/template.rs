//! The JSON documents of the stack (IAM policies, the task definition, the event pattern) live in
//! `templates/` as plain JSON with `${name}` placeholders, so they read like the AWS docs.
//! A string that is exactly one placeholder takes the value with its JSON type (numbers stay
//! numbers); placeholders inside longer strings are replaced by text.

use serde_json::Value;

pub const ECS_TASKS_TRUST: &str = include_str!("../../templates/ecs-tasks-trust.json");
pub const LAMBDA_TRUST: &str = include_str!("../../templates/lambda-trust.json");
pub const EXECUTION_ROLE_POLICY: &str = include_str!("../../templates/execution-role-policy.json");
pub const LAMBDA_ROLE_POLICY: &str = include_str!("../../templates/lambda-role-policy.json");
pub const FRONT_DOOR_ROLE_POLICY: &str = include_str!("../../templates/front-door-role-policy.json");
pub const TASK_ROLE_POLICY: &str = include_str!("../../templates/task-role-policy.json");
pub const TASK_DEFINITION: &str = include_str!("../../templates/task-definition.json");
pub const EVENT_PATTERN: &str = include_str!("../../templates/event-pattern.json");

/// Fills a template. Panics only on a broken template in this repository (tests render each).
pub fn render(template: &str, values: &[(&str, Value)]) -> Value {
    let mut document: Value = serde_json::from_str(template).expect("templates/ holds valid JSON");
    fill(&mut document, values);
    document
}

fn fill(node: &mut Value, values: &[(&str, Value)]) {
    match node {
        Value::String(text) => {
            if let Some((_, value)) = values.iter().find(|(name, _)| text.as_str() == format!("${{{name}}}")) {
                *node = value.clone();
                return;
            }
            for (name, value) in values {
                let placeholder = format!("${{{name}}}");
                if text.contains(&placeholder) {
                    let replacement = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
                    *text = text.replace(&placeholder, &replacement);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| fill(item, values)),
        Value::Object(fields) => fields.values_mut().for_each(|field| fill(field, values)),
        _ => {}
    }
}

/// The paths at which `live` differs from `desired` (fields only `live` has are AWS's defaults
/// and ignored). Paths, not values: values may be secrets.
pub fn differences(desired: &Value, live: &Value) -> Vec<String> {
    let mut found = Vec::new();
    walk(desired, live, String::new(), &mut found);
    found
}

fn walk(desired: &Value, live: &Value, path: String, found: &mut Vec<String>) {
    match (desired, live) {
        (Value::Object(want), Value::Object(have)) => {
            for (key, value) in want {
                let child = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                match have.get(key) {
                    Some(existing) => walk(value, existing, child, found),
                    None if value.is_null() => {}
                    None => found.push(child),
                }
            }
        }
        (Value::Array(want), Value::Array(have)) if want.len() == have.len() => {
            for (index, (w, h)) in want.iter().zip(have).enumerate() {
                walk(w, h, format!("{path}[{index}]"), found);
            }
        }
        (want, have) if want != have => found.push(if path.is_empty() { "document".to_owned() } else { path }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn whole_placeholders_keep_their_type_and_inner_ones_become_text() {
        let doc =
            render(r#"{"port": "${port}", "arn": "arn:${part}:x", "list": ["${port}"]}"#, &[("port", json!(443)), ("part", json!("aws"))]);
        assert_eq!(doc, json!({"port": 443, "arn": "arn:aws:x", "list": [443]}));
    }

    #[test]
    fn every_template_is_valid_json() {
        for template in [
            ECS_TASKS_TRUST,
            LAMBDA_TRUST,
            EXECUTION_ROLE_POLICY,
            LAMBDA_ROLE_POLICY,
            FRONT_DOOR_ROLE_POLICY,
            TASK_ROLE_POLICY,
            TASK_DEFINITION,
            EVENT_PATTERN,
        ] {
            render(template, &[]);
        }
    }

    #[test]
    fn differences_name_the_paths_that_differ_and_ignore_fields_aws_added() {
        let desired = json!({"a": 1, "b": {"c": [1, 2], "d": "x"}});
        let live = json!({"a": 1, "b": {"c": [2, 1], "d": "x", "extra": true}, "z": 0});
        assert_eq!(differences(&desired, &live), vec!["b.c[0]", "b.c[1]"]);
        assert_eq!(differences(&json!({"l": [1]}), &json!({"l": [1, 2]})), vec!["l"]);
        assert!(differences(&desired, &desired).is_empty());
        assert_eq!(differences(&json!({"a": 1}), &json!({})), vec!["a"]);
    }
}
