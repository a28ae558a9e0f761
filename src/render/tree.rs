//! Builds one YAML document into a JSON value from parser events, iteratively and with limits.
//!
//! No recursion: a stack of open collections, so a deeply nested document cannot overflow the
//! thread stack; nesting is capped at [`MAX_DEPTH`] anyway so that later recursive consumers
//! (serializers, `Drop`) stay safe. Aliases are resolved by copying the anchored value, charged
//! to the application's render budget in bytes (see [`super::budget`]) and capped in nodes, so a
//! "billion laughs" document is refused before it eats memory.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::budget::{NODE_OVERHEAD, Remaining};

/// Deepest nesting of collections accepted in one document.
pub const MAX_DEPTH: usize = 200;

/// Most nodes that alias expansion may copy into one document.
pub const MAX_ALIAS_NODES: usize = 100_000;

/// A finished node with what the limits need to know about it.
#[derive(Debug, Clone)]
pub struct Node {
    pub value: Value,
    /// Collections levels below and including this node (a scalar is 0).
    pub height: usize,
    /// Number of nodes in this subtree.
    pub size: usize,
    /// What this subtree costs the render budget (keys included).
    pub bytes: u64,
}

impl Node {
    pub fn scalar(value: Value) -> Self {
        let text = match &value {
            Value::String(text) => text.len() as u64,
            _ => 8,
        };
        Self { value, height: 0, size: 1, bytes: text + NODE_OVERHEAD }
    }
}

/// What a mapping waits for next.
#[derive(Debug)]
enum Pending {
    Key,
    Value {
        key: String,
    },
    /// The value of a `<<` merge key.
    Merge {
        line: usize,
    },
}

#[derive(Debug)]
enum Frame {
    Seq {
        items: Vec<Value>,
        anchor: usize,
        height: usize,
        size: usize,
        bytes: u64,
    },
    Map {
        map: Map<String, Value>,
        pending: Pending,
        merges: Vec<(Value, usize)>,
        anchor: usize,
        height: usize,
        size: usize,
        bytes: u64,
    },
}

/// A structural problem; `line` is set when it is not the line of the current event.
#[derive(Debug)]
pub struct TreeError {
    pub message: String,
    pub line: Option<usize>,
    /// The render budget ran out (not a fault of the YAML itself).
    pub over_budget: bool,
}

impl TreeError {
    fn over_budget(message: String) -> Self {
        Self { message, line: None, over_budget: true }
    }
}

impl From<String> for TreeError {
    fn from(message: String) -> Self {
        Self { message, line: None, over_budget: false }
    }
}

/// Accumulates one document. Errors carry no file or document; the caller adds the location.
#[derive(Debug)]
pub struct Tree {
    stack: Vec<Frame>,
    root: Option<Value>,
    anchors: HashMap<usize, Node>,
    alias_nodes: usize,
    /// The application's render budget, carried from document to document.
    budget: Remaining,
    /// Lines of the elements of a root-level `items` sequence (for `kind: List`).
    pub item_lines: Vec<usize>,
}

impl Tree {
    /// A document charged to what is left of the application's budget.
    pub fn new(budget: Remaining) -> Self {
        Self { stack: Vec::new(), root: None, anchors: HashMap::new(), alias_nodes: 0, budget, item_lines: Vec::new() }
    }

    /// What is left of the budget, for the next document.
    pub fn budget(&self) -> Remaining {
        self.budget
    }

    /// Refuses a scalar of `bytes` before it is built (a substitution can be large).
    pub fn check_room(&self, bytes: u64) -> Result<(), TreeError> {
        self.budget.check(bytes.saturating_add(NODE_OVERHEAD)).map_err(TreeError::over_budget)
    }

    /// Whether the next node is a mapping key (keys are always strings, never typed).
    pub fn expects_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { pending: Pending::Key, .. }))
    }

    /// Records the line of a node that is about to start, if it is an element of root `items`.
    pub fn note_start(&mut self, line: usize) {
        if let [Frame::Map { pending: Pending::Value { key, .. }, .. }, Frame::Seq { .. }] = self.stack.as_slice() {
            if key == "items" {
                self.item_lines.push(line);
            }
        }
    }

    /// A mapping key read at `line`; `merge` when it is a plain `<<`.
    pub fn key(&mut self, key: String, line: usize, merge: bool, anchor: usize) -> Result<(), TreeError> {
        let Some(Frame::Map { map, pending, bytes, .. }) = self.stack.last_mut() else {
            return Err("internal error: key outside a mapping".to_owned().into());
        };
        if merge {
            *pending = Pending::Merge { line };
        } else if map.contains_key(&key) {
            return Err(format!("duplicate mapping key {key:?}").into());
        } else {
            let cost = key.len() as u64 + NODE_OVERHEAD;
            self.budget.spend(cost).map_err(TreeError::over_budget)?;
            *bytes = bytes.saturating_add(cost);
            if anchor != 0 {
                self.anchors.insert(anchor, Node::scalar(Value::String(key.clone())));
            }
            *pending = Pending::Value { key };
        }
        Ok(())
    }

    pub fn start_seq(&mut self, anchor: usize) -> Result<(), TreeError> {
        self.push(Frame::Seq { items: Vec::new(), anchor, height: 0, size: 1, bytes: NODE_OVERHEAD })
    }

    pub fn start_map(&mut self, anchor: usize) -> Result<(), TreeError> {
        let bytes = NODE_OVERHEAD;
        self.push(Frame::Map {
            map: Map::new(),
            pending: Pending::Key,
            merges: Vec::new(),
            anchor,
            height: 0,
            size: 1,
            bytes,
        })
    }

    fn push(&mut self, frame: Frame) -> Result<(), TreeError> {
        if self.expects_key() {
            return Err("mapping keys must be strings, not sequences or mappings".to_owned().into());
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(format!("nesting deeper than {MAX_DEPTH} levels").into());
        }
        self.budget.spend(NODE_OVERHEAD).map_err(TreeError::over_budget)?;
        self.stack.push(frame);
        Ok(())
    }

    /// Closes the innermost collection (sequence or mapping end).
    pub fn end(&mut self) -> Result<(), TreeError> {
        let (node, anchor) = match self.stack.pop() {
            Some(Frame::Seq { items, anchor, height, size, bytes }) => {
                (Node { value: Value::Array(items), height: height + 1, size, bytes }, anchor)
            }
            Some(Frame::Map { mut map, merges, anchor, height, size, bytes, .. }) => {
                for (merged, line) in merges {
                    apply_merge(&mut map, merged)
                        .map_err(|message| TreeError { line: Some(line), ..message.into() })?;
                }
                (Node { value: Value::Object(map), height: height + 1, size, bytes }, anchor)
            }
            None => {
                return Err("internal error: unbalanced collection end".to_owned().into());
            }
        };
        self.complete(node, anchor)
    }

    /// A finished scalar value (keys go through [`Tree::key`]).
    pub fn scalar(&mut self, value: Value, anchor: usize) -> Result<(), TreeError> {
        let node = Node::scalar(value);
        self.budget.spend(node.bytes).map_err(TreeError::over_budget)?;
        self.complete(node, anchor)
    }

    /// An alias: a copy of the anchored node, within the depth and copy budgets.
    pub fn alias(&mut self, id: usize) -> Result<(), TreeError> {
        if self.expects_key() {
            return Err("aliases cannot be used as mapping keys".to_owned().into());
        }
        let Some(node) = self.anchors.get(&id) else {
            return Err("alias to an unknown anchor".to_owned().into());
        };
        if self.stack.len() + node.height > MAX_DEPTH {
            return Err(format!("alias expands to nesting deeper than {MAX_DEPTH} levels").into());
        }
        self.alias_nodes = self.alias_nodes.saturating_add(node.size);
        if self.alias_nodes > MAX_ALIAS_NODES {
            return Err(format!("aliases expand to more than {MAX_ALIAS_NODES} nodes").into());
        }
        // Charged before the copy is made: the copy is what would exhaust memory.
        self.budget.spend(node.bytes).map_err(TreeError::over_budget)?;
        let node = node.clone();
        self.complete(node, 0)
    }

    fn complete(&mut self, node: Node, anchor: usize) -> Result<(), TreeError> {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                self.root = Some(node.value);
                Ok(())
            }
            Some(Frame::Seq { items, height, size, bytes, .. }) => {
                *height = (*height).max(node.height);
                *size = size.saturating_add(node.size);
                *bytes = bytes.saturating_add(node.bytes);
                items.push(node.value);
                Ok(())
            }
            Some(Frame::Map { map, pending, merges, height, size, bytes, .. }) => {
                *height = (*height).max(node.height);
                *size = size.saturating_add(node.size);
                *bytes = bytes.saturating_add(node.bytes);
                match std::mem::replace(pending, Pending::Key) {
                    Pending::Value { key, .. } => {
                        map.insert(key, node.value);
                        Ok(())
                    }
                    Pending::Merge { line } => {
                        merges.push((node.value, line));
                        Ok(())
                    }
                    Pending::Key => Err("internal error: value without a key".to_owned().into()),
                }
            }
        }
    }

    /// The document's value once all events are in; `None` for an empty document.
    pub fn finish(self) -> Result<Option<Value>, String> {
        if !self.stack.is_empty() {
            return Err("internal error: document ended inside a collection".to_owned());
        }
        Ok(self.root.filter(|v| !v.is_null()))
    }
}

/// `<<: *base` or `<<: [*a, *b]`: keys already present win, then earlier sources win.
fn apply_merge(map: &mut Map<String, Value>, merged: Value) -> Result<(), String> {
    let sources = match merged {
        Value::Object(source) => vec![source],
        Value::Array(list) => list
            .into_iter()
            .map(|v| match v {
                Value::Object(source) => Ok(source),
                _ => Err(()),
            })
            .collect::<Result<_, _>>()
            .map_err(|()| "merge key \"<<\" needs a mapping or a list of mappings".to_owned())?,
        _ => return Err("merge key \"<<\" needs a mapping or a list of mappings".to_owned()),
    };
    for source in sources {
        for (key, value) in source {
            map.entry(key).or_insert(value);
        }
    }
    Ok(())
}
