//! Why the int8 compiler refuses a model or fails on it.

/// Where a refusal points: the ONNX node and its operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The node's name (may be empty: ONNX does not require one).
    pub name: String,
    /// Its operator, e.g. `Conv`.
    pub op: String,
}

impl std::fmt::Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "node {:?} ({})", self.name, self.op)
    }
}

/// Why the int8 compiler refuses a model or fails on it. Each prints as one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantizeError {
    /// A node the firmware cannot run, or cannot run in this place of the graph.
    #[error("{node}: {reason}")]
    Unsupported {
        /// The node.
        node: Node,
        /// What is refused.
        reason: String,
    },
    /// The graph as a whole does not fit the firmware's model (no image input, no layer,
    /// an output that does not depend on the input).
    #[error("{0}")]
    Graph(String),
    /// The network does not end in ten scores.
    #[error("the network ends in {0} values, not 10 scores")]
    NotTenScores(usize),
    /// Running the float model through tract to calibrate failed.
    #[error("calibration: {0}")]
    Calibration(String),
    /// A bug: the compiler panicked (contained, so the caller reports it).
    #[error("the quantizer failed on it: {0}")]
    Internal(String),
}

impl QuantizeError {
    /// The node at fault, when one is.
    pub fn node(&self) -> Option<&Node> {
        match self {
            QuantizeError::Unsupported { node, .. } => Some(node),
            _ => None,
        }
    }
}

impl From<String> for QuantizeError {
    /// A graph-level reason, from the readers that work on the graph as a whole.
    fn from(reason: String) -> Self {
        QuantizeError::Graph(reason)
    }
}

impl From<&str> for QuantizeError {
    fn from(reason: &str) -> Self {
        QuantizeError::Graph(reason.to_string())
    }
}
