//! Indexed view of what a provider returned: `type → [actions]` in provider order, with
//! O(1) lookup by name and prefix listing by range over sorted names.

use std::collections::{BTreeMap, HashMap};

/// One type's actions.
struct Kind<E> {
    /// Provider order, first occurrence of each name only (later duplicates are ignored).
    entries: Vec<(String, E)>,
    by_name: HashMap<String, usize>,
    sorted: BTreeMap<String, usize>,
}

pub struct ActionIndex<E> {
    kinds: HashMap<String, Kind<E>>,
    /// Types in the order the provider listed them.
    kind_order: Vec<String>,
}

impl<E> ActionIndex<E> {
    /// Builds the index from `(type, [(name, entry)])` groups.
    pub fn build(groups: Vec<(String, Vec<(String, E)>)>) -> Self {
        let mut kinds: HashMap<String, Kind<E>> = HashMap::new();
        let mut kind_order = Vec::new();
        for (kind_name, actions) in groups {
            let kind = kinds.entry(kind_name.clone()).or_insert_with(|| {
                kind_order.push(kind_name);
                Kind {
                    entries: Vec::new(),
                    by_name: HashMap::new(),
                    sorted: BTreeMap::new(),
                }
            });
            for (name, entry) in actions {
                if kind.by_name.contains_key(&name) {
                    continue;
                }
                let position = kind.entries.len();
                kind.by_name.insert(name.clone(), position);
                kind.sorted.insert(name.clone(), position);
                kind.entries.push((name, entry));
            }
        }
        ActionIndex { kinds, kind_order }
    }

    pub fn get(&self, kind: &str, name: &str) -> Option<&E> {
        let kind = self.kinds.get(kind)?;
        kind.by_name.get(name).map(|&i| &kind.entries[i].1)
    }

    /// `*` lists everything of the type, `prefix*` what starts with the prefix, anything
    /// else the exact name; always in provider order.
    pub fn list(&self, kind: &str, pattern: &str) -> Vec<&E> {
        let Some(kind) = self.kinds.get(kind) else {
            return Vec::new();
        };
        if pattern == "*" {
            return kind.entries.iter().map(|(_, e)| e).collect();
        }
        if let Some(prefix) = pattern.strip_suffix('*') {
            let mut positions: Vec<usize> = kind
                .sorted
                .range(prefix.to_owned()..)
                .take_while(|(name, _)| name.starts_with(prefix))
                .map(|(_, &i)| i)
                .collect();
            positions.sort_unstable();
            return positions.into_iter().map(|i| &kind.entries[i].1).collect();
        }
        kind.by_name
            .get(pattern)
            .map(|&i| vec![&kind.entries[i].1])
            .unwrap_or_default()
    }

    /// Every `(type, name, entry)`, types in provider order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, &E)> {
        self.kind_order.iter().flat_map(move |kind_name| {
            self.kinds[kind_name]
                .entries
                .iter()
                .map(move |(name, entry)| (kind_name.as_str(), name.as_str(), entry))
        })
    }

    pub fn len(&self) -> usize {
        self.kinds.values().map(|k| k.entries.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> ActionIndex<u32> {
        ActionIndex::build(vec![
            (
                "tool".into(),
                vec![
                    ("tool1".into(), 1),
                    ("tool2".into(), 2),
                    ("other-tool".into(), 3),
                    ("tool1".into(), 9),
                ],
            ),
            ("resource".into(), vec![("res1".into(), 4)]),
        ])
    }

    #[test]
    fn lookups() {
        let index = index();
        assert_eq!(index.get("tool", "tool2"), Some(&2));
        assert_eq!(
            index.get("tool", "tool1"),
            Some(&1),
            "first occurrence wins"
        );
        assert_eq!(index.get("tool", "nope"), None);
        assert_eq!(index.get("model", "tool1"), None);
        assert_eq!(index.len(), 4);
    }

    #[test]
    fn listing_patterns_keep_provider_order() {
        let index = index();
        assert_eq!(index.list("tool", "*"), [&1, &2, &3]);
        assert_eq!(index.list("tool", "tool*"), [&1, &2]);
        assert_eq!(index.list("tool", "other-tool"), [&3]);
        assert_eq!(index.list("tool", "x*"), Vec::<&u32>::new());
        assert_eq!(index.list("prompt", "*"), Vec::<&u32>::new());
        let all: Vec<_> = index.iter().map(|(k, n, _)| format!("{k}/{n}")).collect();
        assert_eq!(
            all,
            [
                "tool/tool1",
                "tool/tool2",
                "tool/other-tool",
                "resource/res1"
            ]
        );
    }
}
